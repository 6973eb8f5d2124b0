"""The held-out (cross-fitted) best head of Voita et al. 2019 (§5.3 rare-word head, §5.2 Table 1 syntactic heads):
chosen on the sentences of even ids and measured on those of odd ids and the other way round. Hand-built sentences
whose held-out shares are counted here, the same head on both halves, merged shard states, reports without
per-sentence values, and the rows beside the paper's numbers."""

import json
import random

import pytest
import torch

from fairseq_interp.common.paper_numbers import side_by_side
from fairseq_interp.common.statistics import bootstrap_ratio
from fairseq_interp.heads.held_out import sentence_half
from fairseq_interp.heads.paper import analysis_rows
from fairseq_interp.heads.report import build_report
from fairseq_interp.heads.roles import HeadStatistics, RareWords
from fairseq_interp.heads.syntax import SyntacticStatistics
from test_syntax_intervals import HEAD_COUNTS, _maps  # HEAD_COUNTS = [1, 2]

RESAMPLES, SEED = 400, 5
A, B, C = (0, 0), (1, 0), (1, 1)  # encoder layer 0: head A; layer 1: heads B and C
PROVENANCE = {"options": {"lrp_rule": "ding", "lrp_epsilon": 0.0, "no_relevance": True},
              "checkpoint": {"path": "model.pt"}, "data": {"split": "valid"}}
HELD_OUT_SETTING = "chosen on the other half of the sentences (even/odd ids)"


class _Heads:
    def __init__(self, n):
        self.num_heads = n


def _interval(numerators, denominators):
    found = bootstrap_ratio(numerators, denominators, level=0.95, resamples=RESAMPLES, seed=SEED)
    return [found.low, found.high]


# §5.3 ------------------------------------------------------------------------------------------------------------

#: token counts: id i ≥ 4 has count 1000 - i, the top 100 are ids 4..103
RARE_WORDS = RareWords([1, 1, 1, 1] + [1000 - i for i in range(4, 600)], nspecial=4, top_frequent=100)
#: a qualifying sentence: its rarest token (id 500) at position 2, the second least frequent (id 400) at 3
QUALIFYING = [5, 6, 500, 400]
RAREST, TOP2 = {2}, {2, 3}
#: (sentence id, position each head points to). Even ids: A hits the two least frequent tokens 4 times (rarest 3),
#: B once (rarest once); odd ids: A once (rarest never), B 3 times (rarest once), C twice (rarest twice). In-sample
#: rare_top2: A 5/8 (the best), B 4/8, C 2/8. Chosen by rare_top2: A on the even ids, B on the odd ids (by rare, C
#: would be chosen on the odd ids).
POINTING = {10: {A: 2, B: 0, C: 0}, 12: {A: 3, B: 2, C: 0}, 14: {A: 2, B: 0, C: 0}, 16: {A: 2, B: 0, C: 0},
            11: {A: 3, B: 2, C: 2}, 13: {A: 0, B: 3, C: 2}, 15: {A: 0, B: 3, C: 0}, 17: {A: 0, B: 0, C: 0}}
ADD_ORDER = [15, 10, 17, 12, 9, 11, 16, 13, 14]  # 9: a sentence that does not qualify (all tokens frequent)


def _rare_maps(pointing):
    """Encoder self-attention over 4 real tokens + EOS: every query of a head puts its maximum on its key."""
    maps = []
    for layer, count in enumerate(HEAD_COUNTS):
        probs = torch.full((count, 5, 5), 0.01)
        for head in range(count):
            probs[head, :4, pointing.get((layer, head), 0)] = 0.9
        maps.append(probs)
    return maps


def _rare_stats(pointing=POINTING, bootstrap=RESAMPLES):
    stats = HeadStatistics({"encoder_self": [_Heads(c) for c in HEAD_COUNTS]}, rare_words=RARE_WORDS,
                           bootstrap=bootstrap, seed=SEED)
    for sentence_id in ADD_ORDER:
        if sentence_id in pointing:
            tokens, maps = QUALIFYING, _rare_maps(pointing[sentence_id])
        else:
            tokens, maps = [5, 6, 7, 8], _rare_maps({})
        stats.add_sentence(torch.tensor(tokens + [2]), {"encoder_self": maps}, sentence_id=sentence_id)
    return stats


def _hits(pointing, head, targets):
    """Per qualifying sentence in id order: 1 if ``head`` points into ``targets``."""
    return [float(pointing[s][head] in targets) for s in sorted(pointing)]


def test_rare_word_head_chosen_on_the_other_half_by_hand():
    stats = _rare_stats()
    result = stats.result()
    encoder = [h for layer in result["kinds"]["encoder_self"]["layers"] for h in layer]
    assert [h["rare_top2"] for h in encoder] == pytest.approx([5 / 8, 4 / 8, 2 / 8])
    held_out = result["rare_held_out"]
    assert held_out["best_head"] == {"even": list(A), "odd": list(B)}
    assert held_out["sentences"] == {"even": 4, "odd": 4}  # sentence 9 does not qualify
    # each sentence measured by the head of the other half: B on the even ids, A on the odd ids
    ids = sorted(POINTING)
    measuring = {s: B if s % 2 == 0 else A for s in ids}
    for name, targets, by_hand in (("rare_top2", TOP2, 2 / 8), ("rare", RAREST, 1 / 8)):
        numerators = [float(POINTING[s][measuring[s]] in targets) for s in ids]
        assert sum(numerators) / len(ids) == by_hand
        assert held_out[name] == pytest.approx(by_hand)
        assert held_out[f"{name}_interval"] == _interval(numerators, [1] * len(ids))
    assert held_out["rare_top2"] < encoder[0]["rare_top2"]  # below the in-sample best (A)
    low, high = held_out["rare_top2_interval"]
    assert low < held_out["rare_top2"] < high


def test_rare_word_head_best_on_both_halves_gives_its_in_sample_share():
    pointing = {s: {A: 2 if s in (11, 13) else row[A], B: row[B] if s % 2 == 0 else 0, C: row[C]}
                for s, row in POINTING.items()}  # A: 6/8, best on both halves (odd: A 2, C 2, first wins)
    stats = _rare_stats(pointing)
    result = stats.result()
    best = result["kinds"]["encoder_self"]["layers"][0][0]
    held_out = result["rare_held_out"]
    assert held_out["best_head"] == {"even": list(A), "odd": list(A)}
    for name, targets in (("rare", RAREST), ("rare_top2", TOP2)):
        assert held_out[name] == pytest.approx(sum(_hits(pointing, A, targets)) / 8)
        assert held_out[name] == pytest.approx(best[name])
        assert held_out[f"{name}_interval"] == best[f"{name}_interval"]


# Table 1 ---------------------------------------------------------------------------------------------------------

#: (sentence id, words, amod arcs (dependent, governor), targets). amod dependent → governor: offsets +1 in 0, 1, 2,
#: 3, 4 and -1 in 3, 4, 5, so the baseline offset is +1 (5 of 8 arcs), its hits per sentence in id order
#: 1, 1, 1, 1, 1, 0. A's hits 1, 0, 1, 1, 2, 0 (even 4 of 4, odd 1 of 4; 5/8, the best); B's 1, 1, 0, 2, 0, 0
#: (even 1 of 4, odd 3 of 4); C none. Arcs per sentence 1, 1, 1, 2, 2, 1.
ARC_SENTENCES = [
    (4, 4, [(0, 1), (3, 2)], {A: {0: 1, 3: 2}}),
    (1, 3, [(0, 1)], {B: {0: 1}}),
    (5, 3, [(2, 1)], {}),
    (0, 3, [(0, 1)], {A: {0: 1}, B: {0: 1}}),
    (3, 4, [(0, 1), (3, 2)], {A: {3: 2}, B: {0: 1, 3: 2}}),
    (2, 3, [(0, 1)], {A: {0: 1}}),
]
ARCS = [1, 1, 1, 2, 2, 1]
BASELINE_HITS = [1, 1, 1, 1, 1, 0]
HEAD_HITS = {A: [1, 0, 1, 1, 2, 0], B: [1, 1, 0, 2, 0, 0], C: [0] * 6}


def _syntax_stats(sentences=ARC_SENTENCES, bootstrap=RESAMPLES):
    stats = SyntacticStatistics(HEAD_COUNTS, min_arcs=1, bootstrap=bootstrap, seed=SEED)
    for sentence_id, words, arcs, targets in sentences:
        stats.add_sentence(_maps(words, targets), list(range(words)), [(d, g, "amod") for d, g in arcs],
                           sentence_id=sentence_id)
    return stats


def test_syntactic_head_chosen_on_the_other_half_by_hand():
    stats = _syntax_stats()
    amod = stats.result()["amod_dep2head"]
    assert amod["best_head"] == list(A) and amod["accuracy"][0][0] == pytest.approx(5 / 8)
    assert amod["baseline_offset"] == 1 and amod["baseline"] == pytest.approx(5 / 8)
    held_out = stats.held_out()["amod_dep2head"]
    assert held_out["best_head"] == {"even": list(A), "odd": list(B)}
    assert held_out["sentences"] == {"even": 3, "odd": 3}
    # B's hits on the even ids (0, 2, 4) + A's on the odd ids (1, 3, 5), over all 8 arcs
    hits = [HEAD_HITS[B if s % 2 == 0 else A][s] for s in range(6)]
    assert sum(hits) == 1 + 0 + 0 + 0 + 1 + 0
    assert held_out["accuracy"] == pytest.approx(2 / 8) and held_out["accuracy"] < amod["accuracy"][0][0]
    assert held_out["accuracy_interval"] == _interval(hits, ARCS)
    difference = [h - b for h, b in zip(hits, BASELINE_HITS)]
    assert held_out["best_minus_baseline"] == pytest.approx(2 / 8 - 5 / 8)
    assert held_out["best_minus_baseline"] == pytest.approx(held_out["accuracy"] - amod["baseline"])
    assert held_out["best_minus_baseline_interval"] == _interval(difference, ARCS)
    # governor → dependent: no head is ever right; C never is: A (first) is chosen on both halves
    assert stats.held_out()["amod_head2dep"]["best_head"] == {"even": list(A), "odd": list(A)}
    assert stats.held_out()["amod_head2dep"]["accuracy"] == 0


def test_syntactic_head_best_on_both_halves_gives_its_in_sample_accuracy():
    sentences = [(s, w, arcs, {A: t[A]} if A in t else {}) for s, w, arcs, t in ARC_SENTENCES]  # B never right
    stats = _syntax_stats(sentences)
    amod = stats.result()["amod_dep2head"]
    held_out = stats.held_out()["amod_dep2head"]
    assert held_out["best_head"] == {"even": list(A), "odd": list(A)}
    assert held_out["accuracy"] == pytest.approx(amod["accuracy"][0][0])
    assert held_out["accuracy_interval"] == amod["accuracy_interval"][0][0]
    assert held_out["best_minus_baseline"] == pytest.approx(amod["best_minus_baseline"])
    assert held_out["best_minus_baseline_interval"] == amod["best_minus_baseline_interval"]


def test_a_half_without_sentences_gives_no_held_out_value():
    stats = _syntax_stats([s for s in ARC_SENTENCES if s[0] % 2])  # odd ids only
    held_out = stats.held_out()["amod_dep2head"]
    assert held_out["best_head"]["even"] is None and held_out["best_head"]["odd"] == list(B)
    assert held_out["sentences"] == {"even": 0, "odd": 3}
    assert all(held_out[k] is None for k in ("accuracy", "accuracy_interval", "best_minus_baseline",
                                             "best_minus_baseline_interval"))
    rare = _rare_stats({s: row for s, row in POINTING.items() if s % 2 == 0}).result()["rare_held_out"]
    assert rare["best_head"] == {"even": list(A), "odd": None}
    assert rare["rare"] is None and rare["rare_top2_interval"] is None


def test_sentence_half_is_the_parity_of_the_id():
    assert [sentence_half(i) for i in (0, 1, 2, 7, 10)] == ["even", "odd", "even", "odd", "even"]


# shards ----------------------------------------------------------------------------------------------------------

def _random_sentences(count, seed=0):
    """``count`` sentences (ids scattered, both parities) of random encoder attention (2 layers of 3 heads), rare
    tokens and amod/nsubj arcs."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(count):
        words = 4 + s % 5
        src = [rng.randrange(4, 600) for _ in range(words)] + [2]
        arcs = []
        for _ in range(1 + s % 3):
            dep = rng.randrange(words - 1)
            gov = dep + 1 if rng.random() < 0.7 else rng.choice([w for w in range(words) if w != dep])
            arcs.append((dep, gov, "amod" if rng.random() < 0.6 else "nsubj"))
        maps = [torch.rand(3, words + 1, words + 1, generator=g).pow(4).softmax(-1) for _ in range(2)]
        out.append((1000 - 7 * s, torch.tensor(src), maps, arcs))
    return out


def _shard_stats(sentences, bootstrap=200):
    heads = HeadStatistics({"encoder_self": [_Heads(3)] * 2}, rare_words=RARE_WORDS, bootstrap=bootstrap, seed=SEED)
    syntax = SyntacticStatistics([3, 3], min_arcs=1, bootstrap=bootstrap, seed=SEED)
    for sentence_id, src, maps, arcs in sentences:
        heads.add_sentence(src, {"encoder_self": maps}, sentence_id=sentence_id)
        syntax.add_sentence(maps, list(range(src.numel() - 1)), arcs, sentence_id=sentence_id)
    return heads, syntax


def test_merged_shard_states_in_either_order_give_the_held_out_result_of_one_accumulator():
    sentences = _random_sentences(40)
    heads, syntax = _shard_stats(sentences)
    rare, table_1 = heads.result()["rare_held_out"], syntax.held_out()
    assert rare["rare_top2"] is not None and min(rare["sentences"].values()) > 3
    assert set(table_1) == {"amod_dep2head", "amod_head2dep", "nsubj_dep2head", "nsubj_head2dep"}
    assert all(r["accuracy"] is not None for r in table_1.values())
    parts = [sentences[1::2], sentences[::2]]
    for order in (parts, parts[::-1]):
        merged_heads, merged_syntax = _shard_stats([])
        for part in order:
            part_heads, part_syntax = _shard_stats(part)
            merged_heads.merge(json.loads(json.dumps(part_heads.state())))
            merged_syntax.merge(json.loads(json.dumps(part_syntax.state())))
        assert merged_heads.result()["rare_held_out"] == rare
        assert merged_syntax.held_out() == table_1


# reports and rows ------------------------------------------------------------------------------------------------

def _report(bootstrap=RESAMPLES, heads=None, syntax=None):
    heads = heads or _rare_stats(bootstrap=bootstrap)
    syntax = syntax or _syntax_stats(bootstrap=bootstrap)
    return json.loads(json.dumps(build_report(heads, syntax, None, None, PROVENANCE)))


def _without_held_out(report):
    report = json.loads(json.dumps(report))
    report.pop("rare_held_out")
    for record in report["syntax"].values():
        record.pop("held_out")
    return report


def test_without_per_sentence_values_there_is_no_held_out_entry_and_the_rows_are_unchanged():
    report = _report(0)
    assert "rare_held_out" not in report
    assert all(set(r) == {"arcs", "baseline", "baseline_offset"} for r in report["syntax"].values())
    assert not [r for r in analysis_rows(report) if "held-out" in r[0]]
    # old states (before the per-sentence values): merged, no held-out entry
    old_heads, old_syntax = _rare_stats().state(), _syntax_stats().state()
    del old_heads["sentence_ratios"], old_heads["sentence_offsets"], old_syntax["sentences"]
    del old_syntax["sentence_counts"]
    heads = HeadStatistics({"encoder_self": [_Heads(c) for c in HEAD_COUNTS]}, rare_words=RARE_WORDS,
                           bootstrap=RESAMPLES, seed=SEED)
    syntax = SyntacticStatistics(HEAD_COUNTS, min_arcs=1, bootstrap=RESAMPLES, seed=SEED)
    heads.merge(old_heads)
    syntax.merge(old_syntax)
    assert heads.rare_held_out() is None and syntax.held_out() is None
    old = _report(heads=heads, syntax=syntax)
    assert "rare_held_out" not in old and not [r for r in old["syntax"].values() if "held_out" in r]
    assert not [r for r in analysis_rows(old) if "held-out" in r[0]]
    # with per-sentence values, the held-out rows are added and every other row stays as it was
    with_held_out = _report()
    rows = analysis_rows(with_held_out, "tiny")
    assert [r for r in rows if "held-out" not in r[0]] == analysis_rows(_without_held_out(with_held_out), "tiny")


def test_analysis_rows_show_the_held_out_best_head_beside_the_in_sample_one():
    report = _report()
    rows = analysis_rows(report, "tiny")
    names = [r[0] for r in rows]
    by_name = {r[0]: r for r in rows}
    ids = sorted(POINTING)
    top2 = [float(POINTING[s][B if s % 2 == 0 else A] in TOP2) for s in ids]
    low, high = _interval(top2, [1] * len(ids))
    in_sample = "§5.3 WMT rare-word head: points to one of the two least frequent tokens (%)"
    held_out = "§5.3 WMT rare-word head: points to one of the two least frequent tokens, held-out best head (%)"
    assert names.index(held_out) == names.index(in_sample) + 1
    assert by_name[held_out][1] == by_name[in_sample][1]  # the paper's number beside both
    assert by_name[held_out][2] == pytest.approx((25.0, 100 * low, 100 * high))
    assert by_name[in_sample][2][0] == pytest.approx(62.5)
    setting = by_name[held_out][3]
    assert setting.startswith(f"tiny; {HELD_OUT_SETTING}") and "0.0" in setting and "1.0" in setting
    assert "they differ" in setting
    rarest = "§5.3 OpenSubtitles rare-word head: points to the rarest token, held-out best head (%)"
    assert by_name[rarest][2][0] == pytest.approx(12.5)
    # Table 1, amod dependent → governor
    row = "Table 1, amod adj.m. → noun"
    hits = [HEAD_HITS[B if s % 2 == 0 else A][s] for s in range(6)]
    accuracy = _interval(hits, ARCS)
    assert names.index(f"{row}: held-out best head accuracy (%)") == names.index(f"{row}: best head accuracy (%)") + 1
    assert by_name[f"{row}: held-out best head accuracy (%)"][2] == pytest.approx(
        (25.0, 100 * accuracy[0], 100 * accuracy[1]))
    difference = _interval([h - b for h, b in zip(hits, BASELINE_HITS)], ARCS)
    minus = by_name[f"{row}: held-out best head − baseline (points)"]
    assert names.index(minus[0]) == names.index(f"{row}: best head − baseline (points)") + 1
    assert minus[1] == by_name[f"{row}: best head − baseline (points)"][1]
    assert minus[2] == pytest.approx((-37.5, 100 * difference[0], 100 * difference[1]))
    assert HELD_OUT_SETTING in minus[3] and "offset +1 of all arcs" in minus[3]
    same = by_name["Table 1, amod noun → adj.m.: held-out best head accuracy (%)"][3]
    assert "the same head 0.0 (layer.head) on both halves" in same
    text = side_by_side(rows)
    assert f"| {held_out} | {by_name[held_out][1]:.2f} | 25.00 [{100 * low:.2f}, {100 * high:.2f}] |" in text


def test_analysis_rows_of_a_half_without_sentences_print_a_dash():
    heads = _rare_stats({s: row for s, row in POINTING.items() if s % 2 == 0})
    syntax = _syntax_stats([s for s in ARC_SENTENCES if s[0] % 2])
    rows = {r[0]: r for r in analysis_rows(_report(heads=heads, syntax=syntax))}
    rare = rows["§5.3 WMT rare-word head: points to one of the two least frequent tokens, held-out best head (%)"]
    assert rare[2] is None and rare[3].endswith("no qualifying sentence has an odd id")
    amod = rows["Table 1, amod adj.m. → noun: held-out best head accuracy (%)"]
    assert amod[2] is None and amod[3].endswith("no sentence with such an arc has an even id")
    assert "| – |" in side_by_side([amod])
