"""95% bootstrap intervals over sentences of the syntactic heads (Voita et al. 2019 §5.2, Table 1): each head's
accuracy, the positional baseline and the best head minus the baseline, against a bootstrap of per-sentence hits
counted by hand; merged states against one accumulator; states without per-sentence counts; the Table 1 rows."""

import json
import random

import pytest
import torch

from fairseq_interp.common.paper_numbers import side_by_side
from fairseq_interp.common.statistics import bootstrap_ratio
from fairseq_interp.heads.paper import analysis_rows
from fairseq_interp.heads.report import build_report
from fairseq_interp.heads.roles import HeadStatistics
from fairseq_interp.heads.syntax import INTERVAL_KEYS, SyntacticStatistics

RESAMPLES, SEED = 500, 4
HEAD_COUNTS = [1, 2]  # layer 0: head (0, 0); layer 1: heads (1, 0) and (1, 1)


def _maps(words, targets):
    """Encoder self-attention of one word per token (+ EOS): ``targets[(layer, head)][q] = k`` puts the maximum of
    query q on key k; every other query of every head attends to itself (never the other word of an arc)."""
    n = words + 1
    maps = []
    for layer, count in enumerate(HEAD_COUNTS):
        probs = torch.full((count, n, n), 0.01)
        for head in range(count):
            for q in range(words):
                probs[head, q, targets.get((layer, head), {}).get(q, q)] = 0.9
        maps.append(probs)
    return maps


#: (sentence id, words, amod/nsubj arcs (dependent, governor, relation), targets). amod dependent → governor, per
#: sentence in the order of the ids 3, 5, 7, 11 (id 1 has none): arcs 1, 1, 2, 3; offsets -1 | +1 | +1 +1 |
#: +1 +1 -2, so the baseline offset is +1 (5 of 7) with hits 0, 1, 2, 2; head (0, 0) hits 1, 0, 2, 1 (4 of 7);
#: head (1, 0) hits 1, 1, 1, 3 (6 of 7, the best); head (1, 1) none.
SENTENCES = [
    (7, 4, [(0, 1, "amod"), (2, 3, "amod")], {(0, 0): {0: 1, 2: 3}, (1, 0): {0: 1}}),
    (3, 3, [(1, 0, "amod")], {(0, 0): {1: 0}, (1, 0): {1: 0}}),
    (1, 3, [(0, 1, "nsubj")], {(0, 0): {0: 1}}),
    (11, 5, [(0, 1, "amod"), (3, 4, "amod"), (2, 0, "amod")], {(0, 0): {0: 1}, (1, 0): {0: 1, 3: 4, 2: 0}}),
    (5, 2, [(0, 1, "amod")], {(1, 0): {0: 1}}),
]
#: the sentences are added 4 times, the copy r with ids + 20 r, copies in this order and each in the order above
#: (not the order of the ids: 4 sentences alone give the same extreme interval in any order)
COPIES = (2, 0, 3, 1)
ADDED = [4 * r + j for r in COPIES for j in (2, 0, 3, 1)]  # the places in id order of the amod sentences as added
ARCS = [1, 1, 2, 3] * 4
BASELINE_HITS = [0, 1, 2, 2] * 4
HEAD_HITS = {(0, 0): [1, 0, 2, 1] * 4, (1, 0): [1, 1, 1, 3] * 4, (1, 1): [0, 0, 0, 0] * 4}


def _hand_sentences():
    return [(sentence_id + 20 * r, words, arcs, targets) for r in COPIES
            for sentence_id, words, arcs, targets in SENTENCES]


def _hand_stats(bootstrap=RESAMPLES):
    stats = SyntacticStatistics(HEAD_COUNTS, min_arcs=1, bootstrap=bootstrap, seed=SEED)
    for sentence_id, words, arcs, targets in _hand_sentences():
        stats.add_sentence(_maps(words, targets), list(range(words)), arcs, sentence_id=sentence_id)
    return stats


def _interval(numerators, denominators=ARCS):
    found = bootstrap_ratio(numerators, denominators, level=0.95, resamples=RESAMPLES, seed=SEED)
    return [found.low, found.high]


def test_intervals_are_the_bootstrap_of_hand_counted_hits_in_id_order():
    result = _hand_stats().result()
    amod = result["amod_dep2head"]
    # the pooled values as before the intervals
    assert amod["arcs"] == 28 and amod["baseline_offset"] == 1 and amod["baseline"] == pytest.approx(5 / 7)
    assert amod["accuracy"] == [[pytest.approx(4 / 7)], [pytest.approx(6 / 7), 0.0]]
    assert amod["syntactic"] == [[False], [True, False]]  # 6/7 - 5/7 ≥ 0.10
    assert amod["best_head"] == [1, 0] and amod["best_minus_baseline"] == pytest.approx(1 / 7)
    # the intervals: bootstrap_ratio of the hand counts in the order of the ids (id 1 + 20 r has no amod arc)
    for (layer, head), hits in HEAD_HITS.items():
        assert amod["accuracy_interval"][layer][head] == _interval(hits)
    assert amod["baseline_interval"] == _interval(BASELINE_HITS)
    difference = [h - b for h, b in zip(HEAD_HITS[(1, 0)], BASELINE_HITS)]
    assert amod["best_minus_baseline_interval"] == _interval(difference)
    low, high = amod["best_minus_baseline_interval"]
    assert low < 1 / 7 < high and low < 0  # a real width: the sentences disagree
    assert amod["accuracy_interval"][1][1] == [0.0, 0.0]
    # the order matters: the same sentences in the order added give another interval
    assert _interval([HEAD_HITS[(0, 0)][i] for i in ADDED], [ARCS[i] for i in ADDED]) != _interval(HEAD_HITS[(0, 0)])
    # nsubj dependent → governor: one arc in each copy of sentence 1, head (0, 0) right
    nsubj = result["nsubj_dep2head"]
    assert nsubj["arcs"] == 4 and nsubj["accuracy"] == [[1.0], [0.0, 0.0]]
    assert nsubj["accuracy_interval"] == [[[1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
    assert nsubj["best_head"] == [0, 0] and nsubj["best_minus_baseline_interval"] == [0.0, 0.0]


def test_without_bootstrap_the_values_are_the_same_and_the_state_has_its_earlier_keys():
    with_intervals, without = _hand_stats().result(), _hand_stats(bootstrap=0)
    assert set(without.state()) == {"head_counts", "margin", "min_arcs", "hits", "offsets"}
    for key, record in without.result().items():
        assert all(record[name] is None for name in INTERVAL_KEYS)
        assert {k: v for k, v in record.items() if k not in INTERVAL_KEYS} == \
            {k: v for k, v in with_intervals[key].items() if k not in INTERVAL_KEYS}


def _random_sentences(count, seed=0):
    """``count`` sentences of random attention (2 layers of 3 heads) and random amod/nsubj arcs, most amod
    dependents right before their governor (one most frequent offset per key)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(count):
        words = 4 + s % 5
        token_to_word = [w for w in range(words) for _ in range(1 + (rng.random() < 0.3))]  # some of 2 subwords
        arcs = []
        for _ in range(1 + s % 3):
            dep = rng.randrange(words - 1)
            gov = dep + 1 if rng.random() < 0.7 else rng.choice([w for w in range(words) if w != dep])
            arcs.append((dep, gov, "amod" if rng.random() < 0.6 else "nsubj"))
        n = len(token_to_word) + 1
        maps = [torch.rand(3, n, n, generator=g).pow(4).softmax(-1) for _ in range(2)]
        out.append((1000 - 7 * s, maps, token_to_word, arcs))
    return out


def _stats(sentences, bootstrap=200):
    stats = SyntacticStatistics([3, 3], min_arcs=1, bootstrap=bootstrap, seed=SEED)
    for sentence_id, maps, token_to_word, arcs in sentences:
        stats.add_sentence(maps, token_to_word, arcs, sentence_id=sentence_id)
    return stats


def test_merged_states_in_either_order_give_the_result_of_one_accumulator():
    sentences = _random_sentences(30)
    whole = _stats(sentences)
    expected = whole.result()
    assert set(expected) == {"amod_dep2head", "amod_head2dep", "nsubj_dep2head", "nsubj_head2dep"}
    assert sum(low < high for r in expected.values() for layer in r["accuracy_interval"] for low, high in layer) > 10
    parts = [sentences[1::2], sentences[::2]]
    for order in (parts, parts[::-1]):
        merged = _stats([])
        for part in order:
            merged.merge(json.loads(json.dumps(_stats(part).state())))
        assert merged.result() == expected
        assert merged.sentences == 30


def test_state_without_per_sentence_counts_merges_with_intervals_none():
    sentences = _random_sentences(12, seed=2)
    old = _stats(sentences[:6]).state()
    del old["sentences"], old["sentence_counts"]  # a state of the code before the intervals
    alone = _stats([])
    alone.merge(json.loads(json.dumps(old)))
    reference = _stats(sentences[:6]).result()
    for key, record in alone.result().items():
        assert all(record[name] is None for name in INTERVAL_KEYS)
        assert record["accuracy"] == reference[key]["accuracy"] and record["baseline"] == reference[key]["baseline"]
        assert record["best_minus_baseline"] == reference[key]["best_minus_baseline"]
    mixed = _stats([])
    mixed.merge(_stats(sentences[6:]).state())
    mixed.merge(old)
    assert all(r["accuracy_interval"] is None for r in mixed.result().values())
    assert mixed.state()["sentence_counts"] is None  # and a state of this merge says so
    empty = _stats([])  # an old state of sentences without arcs leaves nothing unresampled
    empty.merge({"head_counts": [3, 3], "margin": 0.1, "min_arcs": 1, "hits": {}, "offsets": {}})
    empty.merge(_stats(sentences[6:]).state())
    assert all(r["accuracy_interval"] is not None for r in empty.result().values())


class _Heads:
    def __init__(self, n):
        self.num_heads = n


PROVENANCE = {"options": {"lrp_rule": "ding", "lrp_epsilon": 0.0, "no_relevance": True},
              "checkpoint": {"path": "model.pt"}, "data": {"split": "valid"}}


def _report(bootstrap):
    """``heads.json`` of the hand sentences (encoder self-attention only) through :func:`build_report`."""
    heads = HeadStatistics({"encoder_self": [_Heads(c) for c in HEAD_COUNTS]}, bootstrap=bootstrap, seed=SEED)
    for sentence_id, words, _, targets in _hand_sentences():
        heads.add_sentence(torch.tensor(list(range(10, 10 + words)) + [2]),
                           {"encoder_self": _maps(words, targets)}, sentence_id=sentence_id)
    return build_report(heads, _hand_stats(bootstrap), None, None, PROVENANCE)


def test_report_and_table_1_rows_show_the_intervals():
    report = json.loads(json.dumps(_report(RESAMPLES)))
    amod = report["syntax"]["amod_dep2head"]
    best_minus_baseline = _interval([h - b for h, b in zip(HEAD_HITS[(1, 0)], BASELINE_HITS)])
    assert amod["baseline_interval"] == _interval(BASELINE_HITS)
    assert amod["best_head"] == [1, 0] and amod["best_minus_baseline"] == pytest.approx(1 / 7)
    assert amod["best_minus_baseline_interval"] == pytest.approx(best_minus_baseline, abs=1e-12)
    best = report["kinds"]["encoder_self"]["layers"][1][0]
    assert best["syntactic"]["amod_dep2head"] == pytest.approx(6 / 7)
    assert best["syntactic_interval"]["amod_dep2head"] == pytest.approx(_interval(HEAD_HITS[(1, 0)]), abs=1e-12)
    rows = {r[0]: r for r in analysis_rows(report)}
    row = "Table 1, amod adj.m. → noun"
    accuracy = _interval(HEAD_HITS[(1, 0)])
    assert rows[f"{row}: best head accuracy (%)"][2] == pytest.approx((600 / 7, 100 * accuracy[0], 100 * accuracy[1]))
    baseline = _interval(BASELINE_HITS)
    assert rows[f"{row}: positional baseline (%)"][2] == pytest.approx((500 / 7, 100 * baseline[0],
                                                                        100 * baseline[1]))
    paper = rows[f"{row}: best head − baseline (points)"]
    assert paper[1] == rows[f"{row}: best head accuracy (%)"][1] - rows[f"{row}: positional baseline (%)"][1]
    assert paper[2] == pytest.approx((100 / 7, 100 * best_minus_baseline[0], 100 * best_minus_baseline[1]))
    text = side_by_side(analysis_rows(report))
    low, high = best_minus_baseline
    assert f"| {row}: best head − baseline (points) | {paper[1]:.2f} | {100 / 7:.2f} [{100 * low:.2f}, " \
           f"{100 * high:.2f}] |" in text
    assert f"| {100 * 6 / 7:.2f} [{100 * accuracy[0]:.2f}, {100 * accuracy[1]:.2f}] |" in text


def test_report_without_bootstrap_keeps_its_earlier_syntax_and_rows():
    report = json.loads(json.dumps(_report(0)))
    assert all(set(r) == {"arcs", "baseline", "baseline_offset"} for r in report["syntax"].values())
    assert not [k for layer in report["kinds"]["encoder_self"]["layers"] for h in layer for k in h
                if k.endswith("_interval")]
    rows = [r for r in analysis_rows(report) if r[0].startswith("Table 1")]
    assert [r[0].rsplit(": ", 1)[1] for r in rows[:2]] == ["best head accuracy (%)", "positional baseline (%)"]
    assert len(rows) == 2 * len(report["syntax"]) and all(isinstance(r[2], float) for r in rows)


def test_baseline_offset_ties_do_not_depend_on_the_order_of_the_sentences():
    """Offsets +2, −1 and +1 once each: the nearer offsets win, then the one to the left (−1), whichever sentence
    came first, so the baseline's interval and the best head's difference cannot change with batching."""
    words = 5
    sentences = [(sid, _maps(words, {}), list(range(words)), [(2, 2 + offset, "amod")])
                 for sid, offset in ((1, 2), (2, 1), (3, -1))]
    for order in (sentences, sentences[::-1], sentences[1:] + sentences[:1]):
        stats = SyntacticStatistics(HEAD_COUNTS, min_arcs=1, bootstrap=RESAMPLES, seed=SEED)
        for sentence_id, maps, token_to_word, arcs in order:
            stats.add_sentence(maps, token_to_word, arcs, sentence_id=sentence_id)
        result = stats.result()["amod_dep2head"]
        assert result["baseline_offset"] == -1 and result["baseline"] == pytest.approx(1 / 3)


def test_most_frequent_offset_breaks_ties_by_distance_then_left_whatever_the_counting_order():
    from collections import Counter
    from itertools import permutations

    from fairseq_interp.heads.roles import most_frequent_offset

    for counts, expected in (({1: 2, -1: 2, 3: 2}, (-1, 2)), ({2: 3, -1: 3, 4: 1}, (-1, 3)), ({5: 4, 1: 1}, (5, 4))):
        for order in permutations(counts):
            assert most_frequent_offset(Counter({offset: counts[offset] for offset in order})) == expected
