"""Agreement between two interpretations of the same sentence (Snell et al. 2021, §3.1).

u and v are (T, L) score matrices: one row per target position t, one column per source position l
(attention α, lexical probe β, IBM-1 posterior β^IBM, gradient saliency Δ, ...).

* A(u, v) (Eq. 10): the fraction of target positions whose argmax over l of u lies among the top ``top``
  fraction (5%) of positions ranked by v; at least one position always counts as the top.
* its 95% interval: percentile bootstrap over sentences, each sentence's hits and target positions resampled
  together (A pools target positions, so a sentence is the unit that is drawn).
* Â: the value of A when the argmax of u is a uniformly random source position (the random baseline).
* Kendall τ_b between u_t and v_t, averaged over t.
* ξ (Eq. 11): an agreement value put in context by a second training run (another seed) of the same model:
  the performance of that run at its first checkpoint whose attention α'_τ agrees with α more than the value, i.e.
  "u agrees with α as well as a second run's attention does once it reaches this accuracy". Defined as in the
  authors' released code (github.com/Sea-Snell/AttentionDynamics, ``translation/utils.py``, ``fetch_stats``):
  checkpoints in training order, the first with a strictly larger agreement, none if no checkpoint gets there.
  The agreements there put the argmax of α first: A(α, β^uf), A(α, α'_τ).
"""

import math

import numpy as np

from ..common.errors import InterpretError
from ..common.statistics import BOOTSTRAP_RESAMPLES


def _rows(u, v):
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    if u.ndim == 1:
        u, v = u[None], v[None] if v.ndim == 1 else v
    if u.shape != v.shape or u.ndim != 2 or u.shape[1] == 0:
        raise InterpretError(f"agreement needs two (target, source) matrices of one shape, got {u.shape} and "
                             f"{v.shape}: score the same sentence pair with both methods")
    return u, v


def top_k(length, top=0.05):
    """How many source positions form the top ``top`` fraction of a sentence of ``length`` (at least 1)."""
    if not 0 < top <= 1:
        raise InterpretError(f"top fraction {top} outside (0, 1]: pass e.g. 0.05 for the top 5%")
    return max(1, math.ceil(top * length - 1e-9))


def agreement_counts(u, v, top=0.05):
    """(hits, positions, expected random hits) of A(u, v) for one sentence; sum them over a corpus."""
    u, v = _rows(u, v)
    length = u.shape[1]
    k = top_k(length, top)
    best = u.argmax(axis=1)
    # rank of v's value at best: the position is in the top k if fewer than k positions score strictly higher
    higher = (v > v[np.arange(len(v)), best][:, None]).sum(axis=1)
    hits = int((higher < k).sum())
    return hits, len(u), len(u) * k / length


def agreement(u, v, top=0.05):
    """A(u, v) (Eq. 10) for one sentence or, given lists of matrices, over a corpus."""
    return agreement_with_baseline(u, v, top)[0]


def agreement_with_baseline(u, v, top=0.05):
    """(A(u, v), Â): the agreement and its random baseline; lists of matrices are pooled over target positions."""
    pairs = list(zip(u, v)) if isinstance(u, (list, tuple)) else [(u, v)]
    if not pairs:
        raise InterpretError("agreement over an empty corpus: pass at least one sentence")
    hits = total = expected = 0
    for a, b in pairs:
        h, n, e = agreement_counts(a, b, top)
        hits, total, expected = hits + h, total + n, expected + e
    return hits / total, expected / total


def agreement_interval(u, v, top=0.05, resamples=BOOTSTRAP_RESAMPLES, seed=1, level=0.95):
    """A(u, v) over a corpus (lists of matrices, one per sentence) with its bootstrap interval over sentences
    (:func:`~fairseq_interp.common.statistics.bootstrap_ratio`); an :class:`Interval` whose ``mean`` is A."""
    from ..common.statistics import bootstrap_ratio

    if not u:
        raise InterpretError("agreement over an empty corpus: pass at least one sentence")
    counts = [agreement_counts(a, b, top)[:2] for a, b in zip(u, v)]
    return bootstrap_ratio([c[0] for c in counts], [c[1] for c in counts], level, resamples, seed)


def kendall_tau(x, y):
    """Kendall τ_b of two score vectors (``scipy.stats.kendalltau``, ties as in τ_b); nan if either is constant."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InterpretError("Kendall tau needs two vectors of one length: score the same positions")
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(kendalltau(x, y).statistic)


def mean_kendall_tau(u, v):
    """Kendall τ_b between u_t and v_t averaged over target positions (and sentences, given lists)."""
    pairs = list(zip(u, v)) if isinstance(u, (list, tuple)) else [(u, v)]
    taus = []
    for a, b in pairs:
        a, b = _rows(a, b)
        taus.extend(kendall_tau(x, y) for x, y in zip(a, b))
    taus = [t for t in taus if not math.isnan(t)]
    return float(np.mean(taus)) if taus else float("nan")


def contextualized_agreement(value, curve):
    """ξ (Eq. 11): the performance at the first checkpoint of ``curve`` = [(A(α, α'_τ), performance at τ)] (training
    order) whose agreement exceeds ``value``; ``None`` if none does (ξ then exceeds the run's final performance)."""
    curve = list(curve)
    if not curve:
        raise InterpretError("ξ needs checkpoints of a second training run: pass its interval checkpoints")
    for agreement_value, performance in curve:
        if agreement_value > value:
            return performance
    return None
