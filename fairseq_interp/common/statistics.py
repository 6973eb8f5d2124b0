"""Intervals for reproduction numbers: sacrebleu's paired bootstrap for BLEU differences (Koehn 2004), a bootstrap
confidence interval of a mean (or of a pooled ratio) over sentences (``scipy.stats.bootstrap``), and mean ± sd over
seeds."""

import math
from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass
class PairedBleu:
    """BLEU of a baseline and a system on the same sentences, and the paired bootstrap test of the difference."""

    baseline: float
    system: float
    difference: float  # system − baseline
    system_mean: float  # mean BLEU of the system over the bootstrap samples
    system_ci: float  # half-width of the system's 95% interval over the samples
    p_value: float  # sacrebleu's: chance of a difference this large under the null (a zero difference gets the minimum)
    signature: str


#: resamples of the bootstrap intervals the commands report (their --bootstrap default) and of sacrebleu's paired
#: bootstrap
BOOTSTRAP_RESAMPLES = 1000


def paired_bootstrap_bleu(baseline, system, references, samples=BOOTSTRAP_RESAMPLES, lang=None, detokenize="moses"):
    """Paired bootstrap resampling of corpus BLEU (sacrebleu's ``PairedTest``, ``bs``; seed 12345 as sacrebleu).

    ``baseline`` and ``system`` are hypotheses of the same sentences in the same order (Moses-detokenized first, as
    :func:`~.bleu.corpus_bleu`, unless ``detokenize="none"``)."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    from .bleu import moses_detokenize

    if len(baseline) != len(system) or len(system) != len(references):
        raise ValueError(f"paired bootstrap needs one hypothesis per reference: {len(baseline)}, {len(system)}, "
                         f"{len(references)}")
    if detokenize == "moses":
        baseline, system = moses_detokenize(baseline, lang), moses_detokenize(system, lang)
    test = PairedTest([("baseline", list(baseline)), ("system", list(system))], {"BLEU": BLEU()},
                      [list(references)], test_type="bs", n_samples=samples)
    signatures, scores = test()
    base, other = scores["BLEU"]
    return PairedBleu(float(base.score), float(other.score), float(other.score - base.score), float(other.mean),
                      float(other.ci), float(other.p_value), str(signatures["BLEU"]))


@dataclass
class Interval:
    mean: float
    low: float
    high: float
    n: int


def bootstrap_mean(values: Sequence[float], level=0.95, resamples=2000, seed=1) -> Interval:
    """Mean of ``values`` (e.g. one number per sentence) with a percentile bootstrap interval
    (``scipy.stats.bootstrap``); the interval of a single value is that value."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap of no values")
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return Interval(mean, mean, mean, int(data.size))
    result = bootstrap((data,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(seed))
    return Interval(mean, float(result.confidence_interval.low), float(result.confidence_interval.high),
                    int(data.size))


def bootstrap_ratio(numerators: Sequence[float], denominators: Sequence[float], level=0.95, resamples=2000,
                    seed=1) -> Interval:
    """A pooled ratio ``sum(numerators) / sum(denominators)`` (e.g. hits and target positions per sentence) with a
    percentile bootstrap interval that resamples the items, each item's two numbers together
    (``scipy.stats.bootstrap``, ``paired=True``); ``n`` is the number of items. One item, or items that all have
    the same share, give that share as both ends."""
    import numpy as np
    from scipy.stats import bootstrap

    top, bottom = np.asarray(list(numerators), dtype=float), np.asarray(list(denominators), dtype=float)
    if top.size == 0 or top.shape != bottom.shape:
        raise ValueError(f"bootstrap of a ratio needs one numerator per denominator, got {top.size} and {bottom.size}")
    if np.any(bottom <= 0):
        raise ValueError("bootstrap of a ratio needs positive denominators")
    value = float(top.sum() / bottom.sum())
    shares = top / bottom
    if top.size == 1 or np.all(shares == shares[0]):
        return Interval(value, value, value, int(top.size))

    def pooled(a, b, axis=-1):
        return a.sum(axis=axis) / b.sum(axis=axis)

    result = bootstrap((top, bottom), pooled, paired=True, vectorized=True, confidence_level=level,
                       n_resamples=resamples, method="percentile", random_state=np.random.default_rng(seed))
    return Interval(value, float(result.confidence_interval.low), float(result.confidence_interval.high),
                    int(top.size))


def proportion_interval(successes: int, trials: int, level=0.95) -> Interval:
    """A share ``successes / trials`` (e.g. the seeds that learn a task) with its exact (Clopper–Pearson) interval
    (``scipy.stats.binomtest``); ``n`` is the number of trials."""
    from scipy.stats import binomtest

    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"a share needs 0 <= successes <= trials and trials > 0, got {successes} of {trials}")
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="exact")
    return Interval(successes / trials, float(ci.low), float(ci.high), int(trials))


def mean_sd(values: Sequence[float]):
    """``(mean, sample standard deviation or None for a single value)`` of per-seed numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean of no values")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_sd(values, digits=2, count=True) -> str:
    """``m ± sd (n seeds)`` (without the count where a table has it in a column of its own), or the single value."""
    mean, sd = mean_sd(values)
    if sd is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" + (f" ({len(values)} seeds)" if count else "")


def format_interval(interval: Optional[Interval], digits=3) -> str:
    if interval is None:
        return "–"
    return f"{interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"
