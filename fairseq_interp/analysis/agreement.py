"""Agreement between two interpretations of the same sentence (Snell et al. 2021, §3.1).

u and v are (T, L) score matrices: one row per target position t, one column per source position l
(attention α, lexical probe β, IBM-1 posterior β^IBM, gradient saliency Δ, ...).

* A(u, v) (Eq. 10): the fraction of target positions whose argmax over l of u lies among the top ``top``
  fraction (5%) of positions ranked by v; at least one position always counts as the top.
* Â: the value of A when the argmax of u is a uniformly random source position (the random baseline).
* Kendall τ_b between u_t and v_t, averaged over t.
* ξ (Eq. 11, our reading): A(u, α) divided by A(α', α), the agreement of the attention of a model trained with
  another seed, so that 1 means "agrees with α as much as another training run does".
"""

import math

import numpy as np

from ..errors import InterpretError


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


def kendall_tau(x, y):
    """Kendall τ_b of two score vectors (ties counted as in τ_b); nan if either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InterpretError("Kendall tau needs two vectors of one length: score the same positions")
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n_x, n_y = (dx != 0).sum(), (dy != 0).sum()
    if n_x == 0 or n_y == 0:
        return float("nan")
    return float((dx * dy).sum() / math.sqrt(n_x * n_y))


def mean_kendall_tau(u, v):
    """Kendall τ_b between u_t and v_t averaged over target positions (and sentences, given lists)."""
    pairs = list(zip(u, v)) if isinstance(u, (list, tuple)) else [(u, v)]
    taus = []
    for a, b in pairs:
        a, b = _rows(a, b)
        taus.extend(kendall_tau(x, y) for x, y in zip(a, b))
    taus = [t for t in taus if not math.isnan(t)]
    return float(np.mean(taus)) if taus else float("nan")


def contextualized_agreement(u, attention, other_attention, top=0.05):
    """ξ = A(u, α) / A(α', α) (Eq. 11, our reading), α' from a model trained with another seed."""
    reference = agreement(other_attention, attention, top)
    if reference == 0:
        raise InterpretError("the two seeds' attentions never agree (A(α', α) = 0): ξ is undefined; "
                             "use checkpoints trained longer")
    return agreement(u, attention, top) / reference
