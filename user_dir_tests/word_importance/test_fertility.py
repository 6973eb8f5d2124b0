"""Fertility classes (He et al. 2019, §5.2, Table 4) on hand-made links and a hand-made corpus whose IBM-1
alignments are known: the paper's per-occurrence classes (default) and the per-type option."""

import json
import re

import pytest

from fairseq_interp.word_importance.evaluation import fertility
from fairseq_interp.common.ibm1 import IBM1
from fairseq_interp.common.errors import InterpretError

# "big" is translated by two words (très grand), "dog"/"cat" by one, "the" by none (French drops it here), "a"
# by "un" in 2 of its 3 occurrences.
CORPUS = [("big dog", "très grand chien"), ("dog", "chien"), ("big cat", "très grand chat"), ("cat", "chat"),
          ("the dog", "chien"), ("the cat", "chat"), ("a dog", "un chien"), ("a cat", "chat"), ("a", "un")]
PAIRS = [(s.split(), t.split()) for s, t in CORPUS]
# Importance × n: record 0 (n = 4) big 1.6, dog 0.8, the 0.4, bird 1.2 (unseen); record 1 (n = 2) a 0.4, cat 1.6.
RECORDS = [{"id": 0, "src_words": ["big", "dog", "the", "bird", "</s>"], "word_importance": [0.4, 0.2, 0.1, 0.3]},
           {"id": 1, "src_words": ["a", "cat", "</s>"], "word_importance": [0.2, 0.8]}]
# (class, words, count share, importance share) by hand from the two comments above; total mass 6.0.
EXPECTED = [("≥2", 1, 1 / 6, 1.6 / 6), ("[1,2)", 2, 2 / 6, 2.4 / 6), ("(0,1)", 1, 1 / 6, 0.4 / 6),
            ("0", 1, 1 / 6, 0.4 / 6), ("unseen", 1, 1 / 6, 1.2 / 6)]
TABLE = ["| ≥2 | 1 | 0.167 | 0.267 | +60.0% |", "| [1,2) | 2 | 0.333 | 0.400 | +20.0% |",
         "| (0,1) | 1 | 0.167 | 0.067 | -60.0% |", "| 0 | 1 | 0.167 | 0.067 | -60.0% |",
         "| unseen | 1 | 0.167 | 0.200 | +20.0% |"]


@pytest.mark.parametrize("null", [False, True])
def test_viterbi_links_and_average_fertility_by_hand(null):
    model = IBM1(null=null).fit(PAIRS, iterations=20)
    assert model.align(*PAIRS[0]) == {(1, 1), (1, 2), (2, 3)}  # big → très, grand; dog → chien
    assert model.align(*PAIRS[4]) == {(2, 1)}  # "the dog" → "chien": dog, "the" unaligned
    assert model.align(*PAIRS[6]) == {(1, 1), (2, 2)}  # a → un
    assert model.align(*PAIRS[7]) == {(2, 1)}  # "a cat" → "chat": "a" unaligned
    phi = fertility.fertilities(model, PAIRS)
    assert phi == {"big": 2.0, "dog": 1.0, "cat": 1.0, "the": 0.0, "a": pytest.approx(2 / 3)}
    assert fertility.train_fertilities(PAIRS, iterations=20, null=null) == phi


def test_per_type_class_boundaries():
    assert [fertility.fertility_class(v) for v in (3.0, 2.0, 1.999, 1.0, 0.999, 1e-9, 0.0, None)] == \
        ["≥2", "≥2", "[1,2)", "[1,2)", "(0,1)", "(0,1)", "0", "unseen"]


def test_per_type_distribution_shares_by_hand():
    phi = fertility.train_fertilities(PAIRS, iterations=20)
    rows = fertility.fertility_distribution(RECORDS, phi)
    assert [r["class"] for r in rows] == [e[0] for e in EXPECTED]  # fixed class order, not by frequency
    for row, (_, words, count_share, importance_share) in zip(rows, EXPECTED):
        assert row["words"] == words
        assert row["count_share"] == pytest.approx(count_share)
        assert row["importance_share"] == pytest.approx(importance_share)
        assert row["relative_change"] == pytest.approx((importance_share - count_share) / count_share)
    assert rows[0]["relative_change"] == pytest.approx(0.6)  # ≥2: 1.6/6 vs 1/6
    assert rows[2]["relative_change"] == pytest.approx(-0.6)  # (0,1): 0.4/6 vs 1/6
    assert fertility.markdown(rows).splitlines()[2:] == TABLE


def test_records_not_matching_the_training_text_are_refused():
    phi = fertility.train_fertilities(PAIRS, iterations=5)
    stranger = [{"id": 3, "src_words": ["Big", "Dog", "!", "</s>"], "word_importance": [0.3, 0.3, 0.4]}]
    with pytest.raises(InterpretError, match="3 of the records' 3 source words never occur in the training text"):
        fertility.fertility_distribution(stranger, phi)
    with pytest.raises(InterpretError, match="no attribution records"):
        fertility.fertility_distribution([], phi)


def _write_inputs(tmp_path, records=RECORDS):
    (tmp_path / "train.en").write_text("".join(s + "\n" for s, _ in CORPUS), encoding="utf-8")
    (tmp_path / "train.fr").write_text("".join(t + "\n" for _, t in CORPUS), encoding="utf-8")
    (tmp_path / "att.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_per_type_subcommand(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    _write_inputs(tmp_path)
    cli_main(["fertility", str(tmp_path / "att.jsonl"), "--train-src", str(tmp_path / "train.en"),
              "--train-tgt", str(tmp_path / "train.fr"), "--iterations", "20", "--out", str(tmp_path / "f.csv"),
              "--reading", "per-type"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("| fertility per word type, source→target IBM-1 (20 EM iterations, NULL word True): 9 training "
                      "pairs; 2 records")
    assert out[1] == "| fertility | words | count share | importance share | relative change |"
    assert out[3:] == TABLE
    csv = (tmp_path / "f.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0] == "class,words,count_share,importance_share,relative_change" and len(csv) == 6
    assert csv[1].startswith("≥2,1,0.1666") and float(csv[1].split(",")[3]) == pytest.approx(1.6 / 6)


def test_sentencepiece_training_text_is_merged_like_the_records(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    _write_inputs(tmp_path)
    def pieces(text):  # one "▁" piece per word, "big" and "grand" split in two
        return " ".join("▁" + w for w in text.split()).replace("▁big", "▁b ig").replace("▁grand", "▁gr and")

    for lang, side in (("en", 0), ("fr", 1)):
        (tmp_path / f"spm.{lang}").write_text("".join(pieces(p[side]) + "\n" for p in CORPUS), encoding="utf-8")
    cli_main(["fertility", str(tmp_path / "att.jsonl"), "--train-src", str(tmp_path / "spm.en"),
              "--train-tgt", str(tmp_path / "spm.fr"), "--iterations", "20", "--subword-scheme", "sentencepiece",
              "--reading", "per-type"])
    assert capsys.readouterr().out.splitlines()[3:] == TABLE


@pytest.mark.parametrize("case, message", [
    ("missing", "training text .*nope.en not found: pass the training source and target text"),
    ("lines", "has 9 lines but .* has 8: pass the two sides of the same parallel corpus"),
    ("empty", "hold no sentence pair: pass a non-empty training corpus"),
    ("no_records", "att.jsonl holds no attribution records: pass the attributions.jsonl of a fairseq-interpret run"),
    ("records_missing", "att2.jsonl not found: pass the attributions.jsonl written by fairseq-interpret"),
])
def test_fertility_subcommand_bad_input(tmp_path, capsys, case, message):
    from fairseq_interp.commands import cli_main

    _write_inputs(tmp_path, records=[] if case == "no_records" else RECORDS)
    src, tgt, jsonl = tmp_path / "train.en", tmp_path / "train.fr", tmp_path / "att.jsonl"
    if case == "missing":
        src = tmp_path / "nope.en"
    elif case == "lines":
        tgt.write_text("".join(t + "\n" for _, t in CORPUS[:-1]), encoding="utf-8")
    elif case == "empty":
        src.write_text("\n\n", encoding="utf-8")
        tgt.write_text("\n\n", encoding="utf-8")
    elif case == "records_missing":
        jsonl = tmp_path / "att2.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fertility", str(jsonl), "--train-src", str(src), "--train-tgt", str(tgt)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fairseq-interp: error: ")
    assert re.search(message, err[0]), err[0]


# ---- per occurrence (the paper's Table 4 classes) ------------------------------------------------------------------

def test_occurrence_classes_from_links_by_hand():
    # source word 0 → targets 0, 1 (one-to-many); 1 → 2 alone (one-to-one); 2 and 3 → target 3 (many-to-one);
    # 4 → nothing (null-aligned)
    links = {(0, 0), (0, 1), (1, 2), (2, 3), (3, 3)}
    assert fertility.occurrence_classes(5, links) == ["≥2", "1", "(0,1)", "(0,1)", "0"]
    assert fertility.occurrence_fertilities(5, links) == [2.0, 1.0, 0.5, 0.5, 0.0]
    with pytest.raises(InterpretError, match="outside the 2 source words"):
        fertility.occurrence_classes(2, {(2, 0)})


def test_grow_diag_final_and_by_hand():
    from fairseq_interp.word_importance.evaluation.word_alignment import symmetrize

    forward = {(0, 0), (0, 1), (1, 2), (3, 4), (0, 5)}  # source→target: one source per target word
    backward = {(0, 0), (1, 2), (2, 2)}  # target→source: one target per source word
    # intersection {(0,0), (1,2)}; grow-diag adds (0,1) (next to (0,0), target 1 unaligned) and (2,2) (next to
    # (1,2), source 2 unaligned); final-and adds (3,4) (both unaligned) but not (0,5) (source 0 aligned)
    assert symmetrize(forward, backward) == {(0, 0), (0, 1), (1, 2), (2, 2), (3, 4)}
    assert symmetrize(forward, backward, "intersection") == {(0, 0), (1, 2)}
    assert symmetrize(forward, backward, "union") == forward | backward
    assert symmetrize(forward, backward, "source-to-target") == forward
    # many-to-one exists only with the target→source direction: 1 and 2 share target 2
    assert fertility.occurrence_classes(4, symmetrize(forward, backward)) == ["≥2", "(0,1)", "(0,1)", "1"]
    assert "(0,1)" not in fertility.occurrence_classes(4, symmetrize(forward, backward, "source-to-target"))
    with pytest.raises(InterpretError, match="unknown symmetrization"):
        symmetrize(forward, backward, "grow")


def test_bidirectional_ibm1_directions():
    from fairseq_interp.word_importance.evaluation.word_alignment import BidirectionalIBM1

    aligner = BidirectionalIBM1(PAIRS, iterations=20)
    forward, backward = aligner.directional(*PAIRS[0])
    assert forward == {(0, 0), (0, 1), (1, 2)}  # the source→target links of test_viterbi_links..., 0-based
    assert backward == {(j - 1, i - 1) for i, j in IBM1().fit([(t, s) for s, t in PAIRS], 20).align(*PAIRS[0][::-1])}
    assert all(len({j for i, j in backward if i == src}) <= 1 for src in range(2))  # one target per source word
    assert BidirectionalIBM1(PAIRS, 20, heuristic="source-to-target").align(*PAIRS[0]) == forward


class FixedAligner:
    """Links given by hand per (source, target) pair."""

    def __init__(self, links):
        self.links = links

    def align(self, src, tgt):
        return self.links[(tuple(src), tuple(tgt))]


def test_occurrence_distribution_by_hand():
    records = [{"id": 0, "src_words": ["a", "big", "dog", "</s>"], "tgt_words": ["un", "très", "grand", "chien", "</s>"],
                "word_importance": [0.1, 0.6, 0.3]},
               {"id": 1, "src_words": ["the", "dog", "barks", "</s>"], "tgt_words": ["le", "chien", "aboie", "</s>"],
                "word_importance": [0.2, 0.2, 0.6], "reference": "chien aboie"}]
    aligner = FixedAligner({
        (("a", "big", "dog"), ("un", "très", "grand", "chien")): {(0, 0), (1, 1), (1, 2), (2, 3)},
        (("the", "dog", "barks"), ("le", "chien", "aboie")): {(0, 1), (1, 1), (2, 2)},  # "the dog" → chien
        (("the", "dog", "barks"), ("chien", "aboie")): {(1, 0), (2, 1)}})
    # a_i = importance · 3: record 0: a 0.3 (1), big 1.8 (≥2), dog 0.9 (1); record 1: the 0.6 ((0,1)),
    # dog 0.6 ((0,1)), barks 1.8 (1). Total mass 6; 6 words.
    rows = {r["class"]: r for r in fertility.occurrence_distribution(records, aligner)}
    assert list(rows) == ["≥2", "1", "(0,1)"]  # paper order, empty class left out
    assert rows["≥2"]["count_share"] == pytest.approx(1 / 6) and rows["≥2"]["importance_share"] == pytest.approx(0.3)
    assert rows["1"]["count_share"] == pytest.approx(3 / 6) and rows["1"]["importance_share"] == pytest.approx(0.5)
    assert rows["(0,1)"]["count_share"] == pytest.approx(2 / 6)
    assert rows["(0,1)"]["relative_change"] == pytest.approx((0.2 - 1 / 3) / (1 / 3))
    # aligned to the reference instead: "the" null-aligned, "dog" one-to-one
    rows = {r["class"]: r for r in fertility.occurrence_distribution(records[1:], aligner, align_to="reference")}
    assert rows["0"]["words"] == 1 and rows["1"]["words"] == 2


def test_per_occurrence_differs_from_per_type():
    """'a' is translated in 2 of its 3 training occurrences: per type (0,1); in "a dog" → "un chien" it is one-to-one."""
    phi = fertility.train_fertilities(PAIRS, iterations=20)
    assert fertility.fertility_class(phi["a"]) == "(0,1)"
    record = {"id": 0, "src_words": ["a", "dog", "</s>"], "tgt_words": ["un", "chien", "</s>"], "word_importance": [0.5, 0.5]}
    aligner = fertility.train_aligner(PAIRS, [record], iterations=20, heuristic="source-to-target")
    assert fertility.occurrence_classes(2, aligner.align(["a", "dog"], ["un", "chien"])) == ["1", "1"]


def test_per_occurrence_subcommand(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    records = [{"id": 0, "src_words": ["big", "dog", "</s>"], "tgt_words": ["très", "grand", "chien", "</s>"],
                "word_importance": [0.75, 0.25]},
               {"id": 1, "src_words": ["the", "cat", "</s>"], "tgt_words": ["chat", "</s>"], "word_importance": [0.1, 0.9]}]
    _write_inputs(tmp_path, records)
    cli_main(["fertility", str(tmp_path / "att.jsonl"), "--train-src", str(tmp_path / "train.en"),
              "--train-tgt", str(tmp_path / "train.fr"), "--iterations", "20", "--symmetrization", "source-to-target",
              "--paper-column", "En⇒Fr"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| fertility per occurrence, IBM-1 both directions (20 EM iterations")
    # big ≥2 (1.5), dog 1 (0.5), the 0 (0.2), cat 1 (1.8): total 4; 4 words
    assert out[3:6] == ["| ≥2 | 1 | 0.250 | 0.375 | +50.0% |", "| 1 | 2 | 0.500 | 0.575 | +15.0% |",
                        "| 0 | 1 | 0.250 | 0.050 | -80.0% |"]
    assert "| ≥2: count share | 0.126 | 0.250 | +0.124 |" in "\n".join(out)  # the paper's En⇒Fr Table 4 beside ours
    assert "| 0: Δ (%) | -8.140 | -80.000 | -71.860 |" in "\n".join(out)
