"""95% bootstrap intervals over sentences of the per-head statistics (Voita et al. 2019 §4–5): hand-built sentences
whose interval follows by reasoning, the interval against a bootstrap of per-sentence values computed here, shard
states merged against one run, states without per-sentence values, and the tables that print the intervals."""

import json

import pytest
import torch

from fairseq_interp.common.statistics import bootstrap_ratio
from fairseq_interp.heads.roles import INTERVAL_STATISTICS, HeadStatistics, RareWords

N_REAL = 10  # real tokens per hand-built sentence (+ EOS)


class _Heads:
    def __init__(self, n):
        self.num_heads = n


def _head(stats, kind="encoder_self", layer=0, head=0):
    return stats.result()["kinds"][kind]["layers"][layer][head]


def _offset_sentence(hits):
    """Encoder self-attention of one head over N_REAL tokens + EOS: the first ``hits`` queries put their maximum
    at offset +1, the others at offset 0."""
    n = N_REAL + 1
    probs = torch.full((1, n, n), 0.01)
    for q in range(N_REAL):
        probs[0, q, q + 1 if q < hits else q] = 0.9
    return torch.tensor(list(range(10, 10 + N_REAL)) + [2]), {"encoder_self": [probs]}


def _random_sentences(count, seed=0, heads=3):
    """``count`` sentences of random attention (2 encoder layers, a decoder and a cross layer), relevance and rare
    words: (id, src tokens, maps, relevance)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(count):
        n, t = 4 + s % 5, 3 + s % 4
        src = torch.randint(4, 604, (n - 1,), generator=g).tolist() + [2]
        maps = {"encoder_self": [torch.rand(heads, n, n, generator=g).pow(4).softmax(-1) for _ in range(2)],
                "decoder_self": [torch.rand(heads, t, t, generator=g).pow(4).softmax(-1).tril()],
                "cross": [torch.rand(heads, t, n, generator=g).pow(4).softmax(-1)]}
        relevance = {"encoder_self": [torch.randn(t, heads, generator=g) for _ in range(2)],
                     "decoder_self": [torch.randn(t, heads, generator=g)],
                     "cross": [torch.randn(t, heads, generator=g)]}
        out.append((1000 - 7 * s, torch.tensor(src), maps, relevance))
    return out


def _stats(sentences, bootstrap=200, heads=3):
    stats = HeadStatistics({"encoder_self": [_Heads(heads)] * 2, "decoder_self": [_Heads(heads)],
                            "cross": [_Heads(heads)]},
                           rare_words=RareWords([1, 1, 1, 1] + [1000 - i for i in range(600)], nspecial=4,
                                                top_frequent=100), bootstrap=bootstrap, seed=3)
    for sentence_id, src, maps, relevance in sentences:
        stats.add_sentence(src, maps, relevance, sentence_id=sentence_id)
    return stats


def test_sentences_of_equal_confidence_give_a_single_value():
    """Every sentence has confidence 0.5 (lengths differ): any resample of sentences pools to 0.5, so the interval
    is [0.5, 0.5]."""
    stats = HeadStatistics({"encoder_self": [_Heads(1)]}, bootstrap=500)
    for n in (3, 5, 8, 4):
        probs = torch.full((1, n + 1, n + 1), 0.5 / n)
        probs[0, :, 0] = 0.5
        stats.add_sentence(torch.tensor(list(range(10, 10 + n)) + [2]), {"encoder_self": [probs]})
    head = _head(stats)
    assert head["confidence"] == pytest.approx(0.5) and head["confidence_interval"] == [0.5, 0.5]


def test_all_or_nothing_sentences_give_the_width_of_sentences_not_of_queries():
    """Positional share 0.6 over 40 sentences of 10 queries. All or nothing (24 sentences at +1 throughout, 16 at
    0): the resampled unit is the sentence, so the width is that of 40 draws, 2 · 1.96 · √(0.6 · 0.4 / 40) ≈ 0.30
    (400 independent queries would give ≈ 0.10). Mixed (each sentence has 5, 6 or 7 of its queries at +1, in
    equal numbers): the sentences' shares vary by ±0.1 only, width ≈ 2 · 1.96 · √(0.0067 / 40) ≈ 0.05."""
    widths = {}
    for name, hits in (("all_or_nothing", [10] * 24 + [0] * 16), ("mixed", [5, 6, 7] * 13 + [6])):
        stats = HeadStatistics({"encoder_self": [_Heads(1)]}, bootstrap=2000)
        for s, k in enumerate(hits):
            stats.add_sentence(*_offset_sentence(k), sentence_id=(s * 17) % 40)
        head = _head(stats)
        assert head["positional_offset"] == 1 and head["positional_share"] == pytest.approx(0.6)
        low, high = head["positional_share_interval"]
        assert low < 0.6 < high
        widths[name] = high - low
    assert widths["all_or_nothing"] == pytest.approx(0.30, abs=0.05)
    assert widths["mixed"] == pytest.approx(0.05, abs=0.02)


def test_interval_is_the_bootstrap_of_per_sentence_ratios_in_id_order_and_contains_the_value():
    """Confidence: per sentence Σ over real queries of the maximum weight over real keys, and the number of real
    queries (computed here from the maps), bootstrapped in the order of the sentence ids; every interval of every
    statistic contains its value."""
    sentences = _random_sentences(30)
    stats = _stats(sentences, bootstrap=300)
    result = stats.result()
    by_id = sorted(sentences, key=lambda s: s[0])
    for layer in range(2):
        for h in range(3):
            probs = [maps["encoder_self"][layer][h, :-1, :-1] for _, _, maps, _ in by_id]
            expected = bootstrap_ratio([float(p.max(-1).values.sum()) for p in probs], [p.size(0) for p in probs],
                                       0.95, 300, 3)
            head = result["kinds"]["encoder_self"]["layers"][layer][h]
            assert head["confidence_interval"] == pytest.approx([expected.low, expected.high], rel=1e-5)
    checked = 0
    for kind, data in result["kinds"].items():
        for layer in data["layers"]:
            for head in layer:
                for name in INTERVAL_STATISTICS:
                    if head[name] is None:
                        assert head[f"{name}_interval"] is None
                        continue
                    low, high = head[f"{name}_interval"]
                    assert low - 1e-6 <= head[name] <= high + 1e-6, (kind, head["head"], name)
                    checked += low < high
    assert checked > 40  # most intervals have a width
    assert result["rare_sentences"] > 5  # the rare-word intervals were exercised
    assert result["kinds"]["cross"]["layers"][0][0]["positional_share_interval"] is None


def test_merged_shard_states_give_the_intervals_of_one_run():
    """Two shards of interleaved sentence ids, their states through JSON, merged: the same per-head values (to
    float32 rounding of the sums) and exactly the same intervals as one run over all sentences."""
    sentences = _random_sentences(24, seed=1)
    whole = _stats(sentences).result()
    merged = _stats([], bootstrap=200)
    for part in (sentences[1::2], sentences[::2]):
        merged.merge(json.loads(json.dumps(_stats(part).state())))
    merged = merged.result()
    assert merged["sentences"] == 24
    for kind, data in whole["kinds"].items():
        for layer, other in zip(data["layers"], merged["kinds"][kind]["layers"]):
            for a, b in zip(layer, other):
                for name in INTERVAL_STATISTICS:
                    assert b[f"{name}_interval"] == a[f"{name}_interval"], (kind, a["head"], name)
                    assert b[name] == (None if a[name] is None else pytest.approx(a[name], rel=1e-5, abs=1e-7))


def test_state_without_per_sentence_values_loads_without_intervals():
    """A state written before the intervals (sums and offsets only) merges into the same values, with intervals
    None; merged with a state that has them, the intervals stay None (they would cover some sentences only)."""
    sentences = _random_sentences(12, seed=2)
    old = _stats(sentences[:6]).state()
    del old["sentence_ratios"], old["sentence_offsets"]
    alone = _stats([])
    alone.merge(json.loads(json.dumps(old)))
    reference = _stats(sentences[:6]).result()
    for h, head in enumerate(alone.result()["kinds"]["encoder_self"]["layers"][0]):
        assert head["confidence"] == pytest.approx(reference["kinds"]["encoder_self"]["layers"][0][h]["confidence"])
        assert all(head[f"{name}_interval"] is None for name in INTERVAL_STATISTICS)
    mixed = _stats([])
    mixed.merge(_stats(sentences[6:]).state())
    mixed.merge(old)
    head = mixed.result()["kinds"]["encoder_self"]["layers"][0][0]
    assert head["confidence"] is not None and head["confidence_interval"] is None
    assert mixed.state()["sentence_ratios"] is None  # and a state of this merge says so
    without = _stats(sentences, bootstrap=0).result()["kinds"]["encoder_self"]["layers"][0][0]
    assert not [key for key in without if key.endswith("_interval")]


def test_paper_rows_and_layer_table_print_the_intervals():
    """§5.3 (as %) and §5.1 rows carry the chosen head's interval; the per-layer table prints value [low, high]."""
    import importlib.util

    from fairseq_interp.heads.paper import analysis_rows

    head = {"head": 0, "relevance": 0.2, "confidence": 0.85, "confidence_interval": [0.8, 0.9], "rare": 0.3,
            "rare_interval": [0.1, 0.5], "rare_top2": 0.6, "rare_top2_interval": [0.4, 0.8], "positional_offset": -1,
            "positional_share": 0.95, "positional_share_interval": [0.93, 0.97], "roles": ["positional"]}
    report = {"sentences": 10, "rare_sentences": 4, "rare_top_frequent": 500, "positional_threshold": 0.9,
              "kinds": {"encoder_self": {"layers": [[head]]}}}
    rows = {r[0]: r[2] for r in analysis_rows(report)}
    assert rows["§5.3 WMT rare-word head: points to one of the two least frequent tokens (%)"] == \
        pytest.approx((60, 40, 80))
    assert rows["§5.1 lowest confidence of a positional head"] == pytest.approx((0.85, 0.8, 0.9))
    spec = importlib.util.spec_from_file_location("head_roles", "scripts/reproduce/voita2019/head_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = module.layer_table(report).splitlines()[2]
    assert "h0: +0.200 / 0.85 [0.80, 0.90] / -1 (0.95 [0.93, 0.97]) / 0.60 [0.40, 0.80]" in row


def test_value_with_interval_reads_a_record_with_or_without_its_interval():
    from fairseq_interp.heads.roles import value_with_interval

    assert value_with_interval({"rare": 0.3, "rare_interval": [0.1, 0.5]}, "rare") == (0.3, [0.1, 0.5])
    assert value_with_interval({"rare": 0.3, "rare_interval": None}, "rare") == (0.3, None)
    assert value_with_interval({"rare": 0.3}, "rare") == (0.3, None)  # a report made before the intervals
    assert value_with_interval({"rare": None, "rare_interval": [0.1, 0.5]}, "rare") == (None, None)
    assert value_with_interval({}, "rare") == (None, None)
    with pytest.raises(KeyError):
        value_with_interval({}, "rare", required=True)
