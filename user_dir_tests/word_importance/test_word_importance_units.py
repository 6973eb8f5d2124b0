"""He et al. 2019 study, model-free parts: baselines, perturbations, under-translation F1, AER (hand-made cases)."""

import json

import pytest
import torch

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.spacy_models import load_spacy
from fairseq_interp.word_importance.evaluation import aer, perturbation, undertranslation
from fairseq_interp.word_importance.methods.content import CONTENT_POS, ContentBaseline
from fairseq_interp.word_importance.methods.erasure import ErasureAttribution
from fairseq_interp.word_importance.methods.frequency import FrequencyBaseline, count_words
from fairseq_interp.word_importance.methods.random_baseline import RandomBaseline
from fairseq_interp.word_importance.records import build_word_record
from fairseq_interp.word_importance.views.text import render_record


def ranking(importance):
    return sorted(range(len(importance)), key=lambda i: (-importance[i], i))


# ---- frequency --------------------------------------------------------------------------------------------------

def test_frequency_ignores_top_words_and_ranks_by_count(tmp_path):
    text = tmp_path / "train.en"
    text.write_text("the the the the a a a dog dog cat\nthe a dog .\n", encoding="utf-8")
    counts = count_words(text)
    assert counts == {"the": 5, "a": 4, "dog": 3, "cat": 1, ".": 1}
    base = FrequencyBaseline(counts, ignore_top=2)  # "the" and "a" rank last
    words = ["the", "cat", "dog", "a", "zebra"]
    imp = base.word_importance(words)
    # scores: the 0, cat 2, dog 4, a 0, zebra (unseen) 1  → normalized by 7
    assert imp == pytest.approx([0, 2 / 7, 4 / 7, 0, 1 / 7])
    assert ranking(imp)[:3] == [2, 1, 4]
    assert FrequencyBaseline(counts, ignore_top=0).word_importance(["the", "dog"]) == pytest.approx([6 / 10, 4 / 10])
    assert FrequencyBaseline(counts, ignore_top=5).word_importance(["the", "dog"]) == pytest.approx([0.5, 0.5])


def test_frequency_missing_text(tmp_path):
    with pytest.raises(InterpretError, match="--frequency-text"):
        count_words(tmp_path / "nope.txt")


# ---- random and content -----------------------------------------------------------------------------------------

def test_random_is_a_seeded_permutation():
    words = list("abcdefgh")
    a = RandomBaseline(seed=1).word_importance(words, sentence_id=3)
    n = len(words)
    assert sorted(round(v * n * (n + 1) / 2) for v in a) == list(range(1, n + 1))  # ranks 1..n, normalized
    assert sum(a) == pytest.approx(1.0)
    assert a == RandomBaseline(seed=1).word_importance(words, sentence_id=3)  # reproducible
    others = [RandomBaseline(seed=s).word_importance(words, sentence_id=3) for s in range(2, 7)]
    assert any(o != a for o in others)


def test_content_words_rank_first_in_random_order():
    tags = {"A": "DET", "man": "NOUN", "is": "AUX", "running": "VERB", "on": "ADP", "green": "ADJ", "grass": "NOUN",
            ".": "PUNCT"}
    words = list(tags)
    orders = set()
    for seed in range(8):
        imp = ContentBaseline(lambda ws: [tags[w] for w in ws], seed=seed).word_importance(words, sentence_id=0)
        order = ranking(imp)
        top = {words[i] for i in order[:4]}
        assert top == {w for w, t in tags.items() if t in CONTENT_POS}
        orders.add(tuple(order[:4]))
        assert sum(imp) == pytest.approx(1.0)
    assert len(orders) > 1  # content words come in random order


def test_missing_spacy_model_is_one_clear_line():
    import importlib.util

    expected = (r"spaCy model 'xx_no_such_model' is not installed: pip install"
                if importlib.util.find_spec("spacy") else r"spaCy is not installed \(needed for POS tags\): pip install")
    with pytest.raises(InterpretError, match=expected) as e:
        load_spacy("xx_no_such_model")
    assert "\n" not in str(e.value)


# ---- erasure (formula on a stub translator) ---------------------------------------------------------------------

class StubTranslator:
    """Translation that drops the word whose tokens are masked: a known answer for the erasure formula."""

    def __init__(self, words):
        self.words = words

    def translate(self, sources, masks):
        outs = []
        for mask in masks:
            erased = {i for i, m in enumerate(mask.tolist()) if m}
            outs.append([w for i, w in enumerate(self.words) if i not in erased])
        return outs


def test_erasure_is_normalized_sentence_bleu_drop():
    import sacrebleu

    words = ["a", "small", "dog", "runs", "fast", "today"]
    tokens = torch.arange(len(words) + 1)  # + </s>
    t2w = list(range(len(words) + 1))
    ref = " ".join(words)
    erasure = ErasureAttribution(StubTranslator(words + ["</s>"]),
                                 lambda ws: " ".join(w for w in ws if w != "</s>"))
    imp, intact, erased = erasure.erase_words(tokens, t2w, ref)
    assert intact == pytest.approx(100.0)
    expected = [sacrebleu.sentence_bleu(" ".join(words[:i] + words[i + 1:]), [ref]).score for i in range(len(words))]
    assert erased == pytest.approx(expected)
    assert imp == pytest.approx([(100.0 - b) / 100.0 for b in expected])
    with pytest.raises(InterpretError, match="references"):
        erasure.erase_words(tokens, t2w, None)


def test_word_record_schema_and_text_view():
    rec = build_word_record(4, ["\u2581A", "\u2581do", "g", "</s>"], ["\u2581Un", "</s>"], [0.25, 0.75],
                            "sentencepiece", method="random")
    assert rec["src_words"] == ["A", "dog", "</s>"] and rec["contributions"] is None
    text = render_record(rec)
    assert "I-4\tdog=0.750 A=0.250" in text and "D-4" not in text
    with pytest.raises(ValueError):
        build_word_record(4, ["\u2581A", "</s>"], ["</s>"], [0.5, 0.5], "sentencepiece")


# ---- perturbations ----------------------------------------------------------------------------------------------

def test_top_k_words_and_bad_k():
    assert perturbation.top_k_words([0.1, 0.5, 0.2, 0.5], 3) == [1, 3, 2]  # ties: earlier first
    with pytest.raises(InterpretError, match="larger than the sentence"):
        perturbation.top_k_words([0.1, 0.9], 3)
    with pytest.raises(InterpretError):
        perturbation.top_k_words([0.1, 0.9], 0)


def test_perturbations_on_a_hand_made_sentence():
    # words: [10 11] [12] [13 14] </s>
    src = torch.tensor([10, 11, 12, 13, 14, 2])
    t2w = [0, 0, 1, 2, 2, 3]
    tokens, mask = perturbation.perturb(src, t2w, [0, 2], "deletion")
    assert tokens.tolist() == [12, 2] and not mask.any()
    tokens, mask = perturbation.perturb(src, t2w, [0, 2], "mask")
    assert tokens.tolist() == src.tolist() and mask.tolist() == [True, True, False, True, True, False]
    tokens, mask = perturbation.perturb(src, t2w, [2], "replacement", {2: 99})
    assert tokens.tolist() == [10, 11, 12, 99, 2] and not mask.any()
    with pytest.raises(InterpretError, match="replacement token"):
        perturbation.perturb(src, t2w, [1], "replacement", {2: 99})
    with pytest.raises(InterpretError, match="unknown perturbation"):
        perturbation.perturb(src, t2w, [1], "shuffle")


def test_replacement_vocabulary_draws_same_pos_other_word():
    tagged = [(["dog", "runs", "cat", "big"], ["NOUN", "VERB", "NOUN", "ADJ"]),
              (["dog", "walks", "long"], ["NOUN", "VERB", "ADJ"]),
              (["run"], ["NOUN"]), (["run"], ["VERB"]), (["run"], ["VERB"]),
              (["rare"], ["ADJ"])]
    ids = {"dog": 1, "runs": 2, "cat": 3, "big": 4, "walks": 5, "long": 6, "run": 7}  # "rare" is not one token
    vocab = perturbation.ReplacementVocabulary(tagged, ids.get, seed=0)
    assert sorted(vocab.by_tag["VERB"]) == [("run", 7), ("runs", 2), ("walks", 5)]  # run: majority tag VERB
    assert sorted(vocab.by_tag["ADJ"]) == [("big", 4), ("long", 6)]
    draws = {vocab.draw("dog", "NOUN", sid, 0) for sid in range(20)}
    assert draws == {3}  # the only other noun
    assert {vocab.draw("big", "ADJ", sid, 1) for sid in range(10)} == {6}
    assert vocab.draw("x", "NOUN", 1, 2) == vocab.draw("x", "NOUN", 1, 2)


# ---- under-translation F1 ---------------------------------------------------------------------------------------

UNDER_RECORDS = [
    {"id": 0, "word_importance": [0.4, 0.1, 0.3, 0.2]},          # least: 1 (gold), then 3
    {"id": 1, "word_importance": [0.05, 0.5, 0.3, 0.15]},        # least: 0 (gold), then 3 (gold)
    {"id": 2, "word_importance": [0.5, 0.5]},                    # least: 0 (tie → first)
    {"id": 9, "word_importance": [1.0]},                         # not annotated: ignored
]


def test_undertranslation_f1_per_sentence_known_answer(tmp_path):
    ann = tmp_path / "under.txt"
    ann.write_text("# id<TAB>indices\n0\t1\n1\t0 3\n2\t\n", encoding="utf-8")
    annotations = undertranslation.read_annotations(ann)
    assert annotations == {0: {1}, 1: {0, 3}, 2: set()}
    scores = undertranslation.f1_scores(UNDER_RECORDS, annotations, ratios=(0.1, 0.25, 0.5), selection="per-sentence")
    # 25%: ceil(1)=1, ceil(1)=1, ceil(0.5)=1 → predicted 3, correct 2 (ids 0, 1), gold 3
    s = scores[0.25]
    assert (s["predicted"], s["correct"], s["gold"]) == (3, 2, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert scores[0.1] == s  # ceil: 10 % of 2-4 words is one word too
    # 50%: 2 + 2 + 1 predicted; correct 1 + 2 = 3; P = 3/5, R = 1, F1 = 0.75
    s = scores[0.5]
    assert (s["predicted"], s["correct"]) == (5, 3)
    assert s["f1"] == pytest.approx(2 * 0.6 * 1.0 / 1.6)


def test_undertranslation_f1_corpus_level_known_answer():
    """The default: the lowest importance × sentence length over all 10 words of the 3 annotated sentences.
    a = (1.6, .4, 1.2, .8), (.2, 2.0, 1.2, .6), (1.0, 1.0); gold: (0, 1), (1, 0), (1, 3)."""
    annotations = {0: {1}, 1: {0, 3}, 2: set()}
    scores = undertranslation.f1_scores(UNDER_RECORDS, annotations, ratios=(0.1, 0.25, 0.5))
    # 10 %: ceil(1) word: .2 (1, 0), gold → P 1, R 1/3, F1 .5 (per sentence: 2/3, as at 25 %)
    assert (scores[0.1]["predicted"], scores[0.1]["correct"]) == (1, 1)
    assert scores[0.1]["f1"] == pytest.approx(0.5)
    # 25 %: ceil(2.5) = 3 words: .2 (1, 0), .4 (0, 1), .6 (1, 3): all gold → F1 1
    assert scores[0.25]["f1"] == pytest.approx(1.0)
    # 50 %: 5 words: + .8 (0, 3) and 1.0 (2, 0) (tie with (2, 1): earlier word) → P 3/5, R 1
    assert scores[0.5]["predicted"] == 5 and scores[0.5]["f1"] == pytest.approx(0.75)
    assert undertranslation.corpus_least_important([[0.4, 0.1, 0.3, 0.2], [0.05, 0.5, 0.3, 0.15], [0.5, 0.5]],
                                                   0.5) == [{1, 3}, {0, 3}, {0}]
    low, high = undertranslation.f1_intervals(UNDER_RECORDS, annotations, ratios=(0.25,), resamples=200)[0.25]
    assert 0.0 <= low <= high <= 1.0


def test_undertranslation_bad_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("zero\t1\n", encoding="utf-8")
    with pytest.raises(InterpretError, match="bad.txt:1"):
        undertranslation.read_annotations(bad)
    with pytest.raises(InterpretError, match="no attribution record"):
        undertranslation.f1_scores([], {3: {0}})
    with pytest.raises(InterpretError, match="index 5"):
        undertranslation.f1_scores([{"id": 0, "word_importance": [0.5, 0.5]}], {0: {5}})
    with pytest.raises(InterpretError, match="pass an existing file"):
        undertranslation.read_annotations(tmp_path / "none.txt")


# ---- alignment error rate ---------------------------------------------------------------------------------------

def test_aer_known_answer():
    sure, possible = aer.parse_links("1-1 2-3 3p2", zero_based=True)
    assert sure == {(0, 0), (1, 2)} and possible == {(0, 0), (1, 2), (2, 1)}
    # matrix: rows = source words (+ </s>), columns = target words (+ </s>)
    record = {"id": 0, "src_words": ["a", "b", "c", "</s>"], "tgt_words": ["x", "y", "z", "</s>"],
              "word_contributions": [[0.9, 0.0, 0.1, 5.0], [0.0, 0.2, 0.3, 5.0], [0.1, 0.7, 0.2, 5.0],
                                     [9.0, 9.0, 9.0, 9.0]]}
    links = aer.record_links(record)
    assert links == {(0, 0), (2, 1), (1, 2)}  # </s> row and column ignored
    # A = 3 links, S = 2, A∩S = 2, A∩P = 3 → AER = 1 - 5/5 = 0
    assert aer.aer([links], [(sure, possible)]) == pytest.approx(0.0)
    # one wrong link: A∩S = 1, A∩P = 2 → 1 - 3/5
    assert aer.aer([{(0, 0), (2, 1), (0, 2)}], [(sure, possible)]) == pytest.approx(0.4)
    with pytest.raises(InterpretError, match="no contribution matrix"):
        aer.record_links({"id": 1, "method": "random", "word_contributions": None})


def test_undertranslation_subcommand(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    ann = tmp_path / "under.txt"
    ann.write_text("0\t1\n", encoding="utf-8")
    for name, imp in (("good", [0.6, 0.1, 0.3]), ("bad", [0.1, 0.6, 0.3])):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"id": 0, "word_importance": imp}) + "\n",
                                                encoding="utf-8")
    cli_main(["undertranslation", "--annotations", str(ann), "--ratios", "0.3", "0.6", "--bootstrap", "0",
              "--records", f"good={tmp_path / 'good.jsonl'}", f"bad={tmp_path / 'bad.jsonl'}"])
    out = capsys.readouterr().out.splitlines()
    # good: 30% → ceil(0.9)=1 word, the gold one: F1 1; 60% → 2 words: P 1/2, R 1 → 2/3.
    # bad: the gold word is the most important one, never among the 1 or 2 least important → 0, 0
    assert out[2] == "| good | 1.000 | 0.667 |" and out[3] == "| bad | 0.000 | 0.000 |"


def _under_case(sentences=40, seed=3):
    """Records of three methods on sentences of 4 words with one under-translated word each: ``good`` gives the
    gold word the lowest importance in 3 of 4 sentences, ``bad`` never (always the highest), ``noisy`` at random."""
    import random

    rng = random.Random(seed)
    annotations, good, bad, noisy = {}, [], [], []
    for sid in range(sentences):
        gold = rng.randrange(4)
        annotations[sid] = {gold}
        low = gold if sid % 4 else (gold + 1) % 4
        good.append({"id": sid, "word_importance": [0.1 if w == low else 0.3 for w in range(4)]})
        bad.append({"id": sid, "word_importance": [0.7 if w == gold else 0.1 for w in range(4)]})
        noisy.append({"id": sid, "word_importance": [rng.random() for _ in range(4)]})
    return annotations, good, bad, noisy


def test_undertranslation_f1_differences_are_paired():
    """The differences use the same sentence samples for every method: against a method with F1 = 0 on every
    sample the difference's interval is the method's own F1 interval; against itself the difference is 0 with
    p = 1; swapping the two methods negates the difference and its interval and keeps p."""
    annotations, good, bad, noisy = _under_case()
    ratios = (0.25, 0.5)
    diffs = undertranslation.f1_differences([("good", good), ("bad", bad), ("good again", good), ("noisy", noisy)],
                                            annotations, ratios=ratios, resamples=300, seed=5)
    scores = undertranslation.f1_scores(good, annotations, ratios)
    intervals = undertranslation.f1_intervals(good, annotations, ratios, resamples=300, seed=5)
    noisy_scores = undertranslation.f1_scores(noisy, annotations, ratios)
    for ratio in ratios:
        assert undertranslation.f1_scores(bad, annotations, ratios)[ratio]["f1"] == 0.0
        difference, low, high, p = diffs["bad"][ratio]
        assert difference == pytest.approx(scores[ratio]["f1"])
        assert (low, high) == pytest.approx(intervals[ratio])
        assert p < 0.01  # a positive F1 on 40 sentences against 0 on every sample: far beyond chance
        assert diffs["good again"][ratio] == (0.0, 0.0, 0.0, 1.0)
        assert diffs["noisy"][ratio][0] == pytest.approx(scores[ratio]["f1"] - noisy_scores[ratio]["f1"])
    swapped = undertranslation.f1_differences([("noisy", noisy), ("good", good)], annotations, ratios=ratios,
                                              resamples=300, seed=5)["good"]
    for ratio in ratios:
        difference, low, high, p = diffs["noisy"][ratio]
        assert swapped[ratio] == pytest.approx((-difference, -high, -low, p))


def test_undertranslation_subcommand_prints_differences_from_ig(tmp_path, capsys):
    """Score mode: with several methods, the paired differences start from ig wherever it is listed."""
    from fairseq_interp.commands import cli_main

    annotations, good, bad, _ = _under_case()
    ann = tmp_path / "under.txt"
    ann.write_text("".join(f"{sid}\t{' '.join(map(str, sorted(gold)))}\n" for sid, gold in annotations.items()),
                   encoding="utf-8")
    for name, records in (("ig", good), ("attention", bad)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    cli_main(["undertranslation", "--annotations", str(ann), "--ratios", "0.25", "--bootstrap", "200",
              "--records", f"attention={tmp_path / 'attention.jsonl'}", f"ig={tmp_path / 'ig.jsonl'}"])
    out = capsys.readouterr().out
    d, low, high, p = undertranslation.f1_differences([("ig", good), ("attention", bad)], annotations,
                                                      ratios=(0.25,), resamples=200)["attention"][0.25]
    assert "F1 differences, ig minus each other method" in out
    assert f"| ig − attention | {d:+.3f} [{low:+.3f}, {high:+.3f}], p = {p:.3f} |" in out
    cli_main(["undertranslation", "--annotations", str(ann), "--ratios", "0.25", "--bootstrap", "0",
              "--records", f"attention={tmp_path / 'attention.jsonl'}", f"ig={tmp_path / 'ig.jsonl'}"])
    assert "F1 differences" not in capsys.readouterr().out  # no resamples, no differences


def test_html_page_shades_and_escapes(tmp_path):
    from fairseq_interp.word_importance.views.html import write_html

    rec = {"id": 7, "src_words": ["<b>", "cat", "</s>"], "tgt_words": ["chat", "</s>"], "word_importance": [0.2, 0.8],
           "word_contributions": [[-0.5, 0.1], [1.0, 0.0], [0.25, 0.0]], "reference": "le chat", "method": "ig"}
    word_level = dict(rec, id=8, word_contributions=None, method="random")
    path = tmp_path / "r.html"
    write_html([word_level, rec], path)
    page = path.read_text(encoding="utf-8")
    assert "<b>" not in page.replace("<b>source</b>", "").replace("<b>reference</b>", "").replace(
        "<b>target</b>", "")  # the word "<b>" is escaped
    assert "&lt;b&gt;" in page and page.index('id="s7"') < page.index('id="s8"')
    # importance sums to 1: a word is shaded by its importance (not stretched to the sentence's largest)
    assert 'style="background:rgba(214,39,40,0.800);color:#fff" title="0.8000">cat' in page
    assert 'style="background:rgba(214,39,40,0.200)" title="0.2000">&lt;b&gt;' in page
    # negative: blue; |v| / the largest column total (|-0.5| + 1.0 + 0.25 = 1.75)
    assert 'style="background:rgba(31,119,180,0.286)" title="-0.5000">-0.50' in page
    assert page.count('<table class="m">') == 1  # no matrix for the word-level record


def test_pos_distribution_known_answer():
    from fairseq_interp.word_importance.evaluation.pos import markdown, pos_distribution

    tags = {"the": "DET", "dog": "NOUN", "cat": "NOUN", "runs": "VERB"}
    records = [{"id": 0, "src_words": ["the", "dog", "runs", "</s>"], "word_importance": [0.1, 0.6, 0.3]},
               {"id": 1, "src_words": ["cat", "</s>"], "word_importance": [1.0]}]
    rows = {r["pos"]: r for r in pos_distribution(records, lambda ws: [tags[w] for w in ws])}
    # a_i = importance * n: the .3 dog 1.8 runs .9 | cat 1.0 → total 4.0; counts NOUN 2/4, DET 1/4, VERB 1/4
    assert rows["NOUN"]["count_share"] == pytest.approx(0.5)
    assert rows["NOUN"]["importance_share"] == pytest.approx(2.8 / 4.0)
    assert rows["NOUN"]["relative_change"] == pytest.approx((0.7 - 0.5) / 0.5)
    assert rows["DET"]["importance_share"] == pytest.approx(0.3 / 4.0)
    assert rows["DET"]["relative_change"] == pytest.approx((0.075 - 0.25) / 0.25)
    assert sum(r["importance_share"] for r in rows.values()) == pytest.approx(1.0)
    assert "| NOUN | 2 | 0.500 | 0.700 | +40.0% |" in markdown(list(rows.values()))


def test_erasure_without_references_is_refused_up_front():
    from types import SimpleNamespace

    from fairseq_interp.word_importance.context import MethodContext
    from fairseq_interp.word_importance.runner import WordImportanceRunner

    args = SimpleNamespace(attribution="erasure", gen_subset="test", batch_size=4)
    wrapped = SimpleNamespace(dataset=SimpleNamespace(tgt=None))  # like fairseq's wrapper datasets
    context = MethodContext(None, None, "sentencepiece", options=args, dataset=wrapped)
    with pytest.raises(InterpretError, match="erasure needs references, and test has none"):
        WordImportanceRunner("erasure", context)
    with pytest.raises(InterpretError, match="unknown attribution method 'lrp'"):
        WordImportanceRunner("lrp", context)


def test_perturbation_seed_summary_by_hand(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    def rows(base, ig1, rnd1, att1=None, att2=None):
        out = [{"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": base},
               {"id": "ig/mask/1", "method": "ig", "perturbation": "mask", "k": 1, "bleu": ig1},
               {"id": "random/mask/1", "method": "random", "perturbation": "mask", "k": 1, "bleu": rnd1},
               {"id": "ig/mask/2", "method": "ig", "perturbation": "mask", "k": 2, "bleu": ig1 - 5},
               {"id": "random/mask/2", "method": "random", "perturbation": "mask", "k": 2, "bleu": rnd1 - 5}]
        if att1 is not None:
            out += [{"id": "attention/mask/1", "method": "attention", "perturbation": "mask", "k": 1, "bleu": att1},
                    {"id": "attention/mask/2", "method": "attention", "perturbation": "mask", "k": 2, "bleu": att2}]
        return out

    # run s1: attention lowest at k=1 (27 < 28) and below random at both k; run s2: attention above random at k=1
    for seed, values in enumerate([(40.0, 30.0, 35.0, 31.0, 29.0), (42.0, 28.0, 36.0, 27.0, 24.0),
                                   (44.0, 26.0, 37.0, 38.0, 30.0)]):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "results.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows(*values)), encoding="utf-8")
    cli_main(["perturbation-seeds"] + [str(tmp_path / f"s{s}") for s in range(3)])
    out = capsys.readouterr().out
    # ig k=1: 30, 28, 26 → mean 28, sample sd 2; random: 35, 36, 37 → 36 ± 1; unperturbed 42 ± 2
    assert "| ig | 42.00 ± 2.00 | 28.00 ± 2.00 |" in out and "| random | 42.00 ± 2.00 | 36.00 ± 1.00 |" in out
    assert out.startswith("BLEU, mean ± sample sd over 3 runs")
    # ordering per run, counted by hand over the cells (mask, 1) and (mask, 2):
    # s0: ig 30/25, attention 31/29, random 35/30 → ig lowest 2, attention lowest 0, below random 2 / ig below 2
    # s1: ig 28/23, attention 27/24, random 36/31 → ig lowest 1 (k=2), attention 1 (k=1); both below random twice
    # s2: ig 26/21, attention 38/30, random 37/32 → ig lowest 2; attention below random once (k=2)
    rows_by_run = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
                   for line in out.splitlines() if line.startswith(f"| {tmp_path}")}
    assert rows_by_run[str(tmp_path / "s0")] == ["2", "0 / 2", "2 / 2", "0"]
    assert rows_by_run[str(tmp_path / "s1")] == ["2", "1 / 2", "1 / 2", "0"]
    assert rows_by_run[str(tmp_path / "s2")] == ["2", "0 / 1", "2 / 2", "0"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["perturbation-seeds", str(tmp_path / "none")])
    assert exit_info.value.code == 2


def test_perturbation_seeds_paper_numbers_over_runs(tmp_path, capsys):
    """The paper's §4 quantities per run, then their mean ± sample sd over the runs, by hand."""
    from fairseq_interp.commands import cli_main

    for name, (base, ig5, random5) in {"a": (40.0, 4.0, 10.0), "b": (50.0, 10.0, 12.0)}.items():
        rows = [{"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": base},
                {"id": "ig/mask/5", "method": "ig", "perturbation": "mask", "k": 5, "bleu": ig5},
                {"id": "random/mask/5", "method": "random", "perturbation": "mask", "k": 5, "bleu": random5}]
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cli_main(["perturbation-seeds", str(tmp_path / "a"), str(tmp_path / "b")])
    out = capsys.readouterr().out
    # relative decrease 1 − 4/40 = 0.9 and 1 − 10/50 = 0.8: mean 0.85, sample sd 0.1/√2 = 0.07; paper 0.55
    assert ("| relative BLEU decrease, mask, ig, k=5 (Transformer Zh⇒En) | 0.55 | 0.85 ± 0.07 | +0.30 | 0.90, 0.80 |"
            in out)
    # ratio 0.1 and 0.2 (paper 0.50); ig − random −6 and −2: mean −4 ± 2.83 (paper: −4)
    assert ("| BLEU after 5 mask operations / unperturbed, ig (En⇒Fr) | 0.50 | 0.15 ± 0.07 | -0.35 | 0.10, 0.20 |"
            in out)
    assert ("| ig − random BLEU, mask, k=5 (paper: below −4 on Zh⇒En) | -4.00 | -4.00 ± 2.83 | +0.00 | -6.00, -2.00 |"
            in out)
    assert "mean ± sample sd over 2 runs\n" in out


def test_perturbation_seeds_refuses_runs_it_would_mix(tmp_path, capsys):
    """Runs of other sentences, or (by their provenance) other options or data, are not averaged; other
    checkpoints are what the runs are for."""
    from fairseq_interp.commands import cli_main
    from fairseq_interp.word_importance.evaluation.perturbation_curves import RUN_FORMAT, RUN_PROVENANCE

    def make(name, ids=(0, 1, 2), repeats=10, weights="a", split_sha="s"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "results.jsonl").write_text(json.dumps(
            {"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": 30.0,
             "sentence_ids": list(ids)}) + "\n", encoding="utf-8")
        (folder / RUN_PROVENANCE).write_text(json.dumps(
            {"format": RUN_FORMAT, "checkpoint": {"weights_sha256": weights}, "data": {"split_sha256": split_sha},
             "options": {"repeats": repeats, "seed": 1}, "versions": {}, "run": {"argv": [name]}}))
        return str(folder)

    def refusal(*folders):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["perturbation-seeds", *folders])
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    base = make("seed1")
    cli_main(["perturbation-seeds", base, make("seed2", weights="b")])  # only the checkpoint differs
    assert capsys.readouterr().out.startswith("BLEU, mean ± sample sd over 2 runs")
    assert "options.repeats is 10 there, 3 here" in refusal(base, make("three-draws", weights="c", repeats=3))
    assert "data.split_sha256" in refusal(base, make("other-split", weights="d", split_sha="t"))
    assert "perturbed other sentences" in refusal(base, make("fewer", weights="e", ids=(0, 1)))


def _perturbation_rows(base, ig, random, sentences=100, repeats=10):
    """The records of a perturbation run over (mask, k = 1, 2): ig and random lose 5 BLEU per k from k = 1."""
    rows = [{"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": base, "bleu_std": 0.0,
             "repeats": 1, "sentences": sentences, "sentence_ids": list(range(sentences))}]
    for method, bleu, n in (("ig", ig, 1), ("random", random, repeats)):
        for k in (1, 2):
            rows.append({"id": f"{method}/mask/{k}", "method": method, "perturbation": "mask", "k": k,
                         "bleu": bleu - 5 * (k - 1), "bleu_std": 0.5 if n > 1 else 0.0, "repeats": n,
                         "sentences": sentences})
    return rows


def _write_run(folder, rows):
    """A run's folder with its results.jsonl, and its perturbation.csv written by the command's own writer."""
    from types import SimpleNamespace

    from fairseq_interp.word_importance.evaluation.perturbation_curves import write_outputs

    folder.mkdir()
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_outputs(SimpleNamespace(results_path=str(folder), setting="test", bootstrap=0), rows)
    return folder


def test_perturbation_seeds_reads_a_runs_csv_as_its_records(tmp_path, capsys):
    """A run's committed perturbation.csv gives the same mean ± sd, ordering and paper rows as its results.jsonl
    (the CSV keeps BLEU to full precision), alone or beside a folder."""
    from fairseq_interp.commands import cli_main

    folders = [_write_run(tmp_path / f"s{seed}", _perturbation_rows(40.0 + seed, 20.0 - seed, 30.0 + seed / 3))
               for seed in range(3)]

    def table(paths):
        cli_main(["perturbation-seeds", *map(str, paths)])
        out = capsys.readouterr().out
        return [line for line in out.splitlines() if not line.startswith(f"| {tmp_path}")]  # rows named by path

    from_folders = table(folders)
    assert "| ig | 41.00 ± 1.00 | 19.00 ± 1.00 | 14.00 ± 1.00 |" in from_folders
    assert table([f / "perturbation.csv" for f in folders]) == from_folders
    assert table([folders[0], folders[1] / "perturbation.csv", folders[2]]) == from_folders


def test_perturbation_seeds_names_the_runs_as_asked(tmp_path, capsys):
    """--names labels the runs of the ordering table instead of their paths, one name per run."""
    from fairseq_interp.commands import cli_main

    folders = [str(_write_run(tmp_path / f"s{seed}", _perturbation_rows(40.0 + seed, 20.0 - seed, 30.0)))
               for seed in range(2)]
    cli_main(["perturbation-seeds", *folders, "--names", "seed 1", "seed 2"])
    out = capsys.readouterr().out
    ordering = out.split("**ordering per run**")[1]
    assert [line.split("|")[1].strip() for line in ordering.splitlines() if line.startswith("| seed ")] == \
        ["seed 1", "seed 2"]
    assert str(tmp_path) not in out
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["perturbation-seeds", *folders, "--names", "seed 1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "--names: 1 given for 2 runs: pass one name per run, in the order of the runs")


def test_perturbation_seeds_refuses_csvs_it_cannot_read_or_would_mix(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    def refusal(*paths):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["perturbation-seeds", *map(str, paths)])
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    base = _write_run(tmp_path / "base", _perturbation_rows(40.0, 20.0, 30.0)) / "perturbation.csv"
    fewer = _write_run(tmp_path / "fewer", _perturbation_rows(40.0, 20.0, 30.0, sentences=99)) / "perturbation.csv"
    assert "has 99 sentences in none/0" in refusal(base, fewer)
    draws = _write_run(tmp_path / "draws", _perturbation_rows(40.0, 20.0, 30.0, repeats=3)) / "perturbation.csv"
    assert "has 3 repeats in random/mask/1" in refusal(base, draws)
    no_bleu = tmp_path / "no-bleu.csv"
    no_bleu.write_text(base.read_text(encoding="utf-8").replace("bleu_std", "sd"), encoding="utf-8")
    assert "has no column bleu_std" in refusal(base, no_bleu)
    bad = tmp_path / "bad.csv"
    bad.write_text(base.read_text(encoding="utf-8").replace(",mask,1,", ",mask,one,", 1), encoding="utf-8")
    assert "bad.csv, line" in refusal(base, bad)
    no_base = tmp_path / "no-base.csv"
    no_base.write_text("".join(line for line in base.read_text(encoding="utf-8").splitlines(keepends=True)
                               if not line.startswith("none,")), encoding="utf-8")
    assert "has no unperturbed row" in refusal(base, no_base)
    assert "results.jsonl not found" in refusal(base, tmp_path / "nowhere")
    assert "nowhere.csv not found: pass the perturbation.csv" in refusal(base, tmp_path / "nowhere.csv")
