"""Intervals for reproduction numbers and the paper-numbers tables."""

import json
import math

import numpy as np
import pytest

from fairseq_interp.common import paper_numbers
from fairseq_interp.common.bleu import corpus_bleu
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.statistics import (bootstrap_mean, bootstrap_ratio, mean_sd, paired_bootstrap_bleu,
                                              proportion_interval)

REFS = ["the cat sat on the mat", "a dog runs in the park", "he reads a book", "she likes green apples"] * 10
WORSE = ["the cat sat on mat", "a dog runs in park", "he reads book", "she likes apples"] * 10


def test_paired_bootstrap_scores_are_the_corpus_bleus_and_a_clear_gain_is_significant():
    result = paired_bootstrap_bleu(WORSE, REFS, REFS, samples=200, detokenize="none")
    assert result.baseline == pytest.approx(corpus_bleu(WORSE, REFS, detokenize="none").score)
    assert result.system == pytest.approx(100.0)
    assert result.difference == pytest.approx(result.system - result.baseline)
    assert result.p_value < 0.05 and "bs:200" in result.signature
    # one sentence better each way: no difference the resampling could support
    a, b = list(WORSE), list(WORSE)
    a[0], b[1] = REFS[0], REFS[1]
    mixed = paired_bootstrap_bleu(a, b, REFS, samples=200, detokenize="none")
    assert abs(mixed.difference) < 2 and mixed.p_value > 0.05
    with pytest.raises(ValueError):
        paired_bootstrap_bleu(WORSE, WORSE[:-1], REFS, detokenize="none")


def test_bootstrap_interval_of_a_mean_has_the_normal_width():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=2000)
    interval = bootstrap_mean(data, resamples=1000)
    assert interval.low < data.mean() < interval.high and interval.n == 2000
    expected_half_width = 1.96 * data.std(ddof=1) / math.sqrt(len(data))
    assert (interval.high - interval.low) / 2 == pytest.approx(expected_half_width, rel=0.2)
    constant = bootstrap_mean([0.5, 0.5, 0.5])
    assert (constant.mean, constant.low, constant.high) == (0.5, 0.5, 0.5)


def test_mean_and_sample_standard_deviation():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1.0))
    assert mean_sd([4.0]) == (4.0, None)


def test_bootstrap_interval_of_a_pooled_ratio_resamples_each_items_two_numbers_together():
    rng = np.random.default_rng(0)
    positions = rng.integers(5, 30, size=400)
    hits = rng.binomial(positions, 0.4)  # independent positions: the binomial width
    interval = bootstrap_ratio(hits, positions, resamples=1000)
    p = hits.sum() / positions.sum()
    assert interval.mean == p and interval.low < p < interval.high and interval.n == 400
    assert (interval.high - interval.low) / 2 == pytest.approx(1.96 * math.sqrt(p * (1 - p) / positions.sum()), rel=0.2)
    # items of very different sizes but one share: drawn in pairs the ratio hardly moves (drawn apart it would)
    sizes = rng.integers(5, 500, size=100)
    tight = bootstrap_ratio(np.round(0.4 * sizes), sizes, resamples=1000)
    assert tight.high - tight.low < 0.01
    assert bootstrap_ratio([2, 4], [4, 8]) == type(interval)(0.5, 0.5, 0.5, 2)
    with pytest.raises(ValueError):
        bootstrap_ratio([1, 2], [3])
    with pytest.raises(ValueError):
        bootstrap_ratio([1], [0])


def test_exact_interval_of_a_share_from_the_binomial_tails():
    """Clopper–Pearson: with none of n, the upper bound u solves (1 − u)^n = 0.025; with all of n, the lower bound l
    solves l^n = 0.025; otherwise each bound leaves 2.5% of the binomial mass beyond the observed count."""
    from scipy.stats import binom

    none = proportion_interval(0, 20)
    assert (none.mean, none.low) == (0.0, 0.0) and none.high == pytest.approx(1 - 0.025 ** (1 / 20))
    every = proportion_interval(20, 20)
    assert every.high == 1.0 and every.low == pytest.approx(0.025 ** (1 / 20))
    some = proportion_interval(7, 20)
    assert some.mean == 0.35 and binom.sf(6, 20, some.low) == pytest.approx(0.025)
    assert binom.cdf(7, 20, some.high) == pytest.approx(0.025)
    with pytest.raises(ValueError):
        proportion_interval(3, 2)


def test_paper_numbers_file_and_side_by_side_table(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "paper_numbers.json").write_text(json.dumps({
        "paper": "Toy 2020", "text": "toy.txt",
        "numbers": [{"table": "Table 1", "row": "base", "column": "BLEU", "value": 27.5, "setting": "WMT"}]}))
    monkeypatch.setattr(paper_numbers, "PACKAGE_ROOT", str(tmp_path))
    numbers = paper_numbers.load_paper_numbers("toy")
    number = numbers.get("Table 1", "base", "BLEU")
    assert number.value == 27.5 and number.setting == "WMT"
    with pytest.raises(InterpretError, match="Table 1"):
        numbers.get("Table 2", "base", "BLEU")
    table = paper_numbers.side_by_side([("BLEU base", number.value, 25.25, "Multi30k"),
                                        ("A(α, β)", None, "0.61 ± 0.02", "1 seed"),
                                        ("BLEU interval", number.value, (26.0, 25.5, 26.75), "bootstrap")])
    assert "| BLEU base | 27.50 | 25.25 | -2.25 | Multi30k |" in table
    assert "| BLEU interval | 27.50 | 26.00 [25.50, 26.75] | -1.50 | bootstrap |" in table
    assert "| A(α, β) | – | 0.61 ± 0.02 | – | 1 seed |" in table


def test_two_generate_outputs_are_paired_by_sentence_id_whatever_their_line_order(tmp_path):
    from fairseq_interp.common.bleu import paired_generate_outputs

    def generate_output(path, order, hypotheses):
        # fairseq-generate writes sentences in batch order (by length), each with S-, T-, H- and D- lines
        path.write_text("".join(f"S-{i}\tsource {i}\nT-{i}\tref\nH-{i}\t-0.5\t{hypotheses[i]}\nD-{i}\t-0.5\tx\n"
                                for i in order))
        return str(path)

    refs = ["r0", "r1", "r2"]
    base = generate_output(tmp_path / "base.gen", [2, 0, 1], ["b0", "b1", "b2"])
    system = generate_output(tmp_path / "system.gen", [1, 2, 0], ["s0", "s1", "s2"])
    assert paired_generate_outputs(base, system, refs) == (["b0", "b1", "b2"], ["s0", "s1", "s2"], refs)
    # a subset of the test set: the references of those ids
    part = generate_output(tmp_path / "part.gen", [2, 0], ["p0", "", "p2"])
    other = generate_output(tmp_path / "other.gen", [0, 2], ["o0", "", "o2"])
    assert paired_generate_outputs(part, other, refs) == (["p0", "p2"], ["o0", "o2"], ["r0", "r2"])
    with pytest.raises(InterpretError, match=r"part.gen \(2 sentences\) and .*base.gen \(3\) translate other "
                                             r"sentences: rerun both"):
        paired_generate_outputs(base, part, refs, fix="rerun both")
    with pytest.raises(InterpretError, match="translates sentence 2, the references have 2"):
        paired_generate_outputs(part, other, refs[:2])


def test_side_by_side_prints_no_negative_zero():
    """A number that rounds to zero (such as a paired difference of −1e−15) prints as 0.00, never −0.00; a number
    that rounds to −0.01 keeps its sign."""
    from fairseq_interp.common.paper_numbers import side_by_side

    text = side_by_side([("tie", 0.0, (-1e-15, -23.81, 25.0), "s"), ("small", 0.004, -0.006, "s")])
    tie, small = (line.split(" | ") for line in text.splitlines()[2:])
    assert tie[2:4] == ["0.00 [-23.81, 25.00]", "+0.00"]
    assert small[1:4] == ["0.00", "-0.01", "-0.01"]
