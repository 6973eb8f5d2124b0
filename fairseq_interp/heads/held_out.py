"""Held-out (cross-fitted) estimate of the best encoder head (Voita et al. 2019 §5.2 Table 1, §5.3).

The paper reports the head that is best on the sentences it then measures it on: a maximum over all heads, so its
share is biased upwards. Here the sentences are split by the parity of their dataset ids (:func:`sentence_half`:
deterministic, the same whatever the batching and sharding); the best head of the even half is measured on the odd
half and the other way round, and the two measurements are pooled (numerators and denominators summed), so every
sentence is measured by a head chosen without it.
"""

from ..common.statistics import bootstrap_ratio

#: the two halves of the sentences, by the parity of their ids
HALVES = ("even", "odd")


def sentence_half(sentence_id):
    """``"even"`` or ``"odd"``: the half of the sentences that a sentence of this dataset id belongs to."""
    return HALVES[int(sentence_id) % 2]


def held_out_best(ids, denominators, choice_numerators, measured, candidates, resamples, seed, level):
    """The held-out estimate of the best candidate's pooled shares, as a JSON-ready dict.

    Per sentence, in the order of the ids (the order of the bootstrap): its id, its denominator (> 0),
    ``choice_numerators[s][c]`` the numerator of each candidate in the statistic that chooses (on a half, the
    candidate with the largest pooled share; the first of ``candidates`` on ties), and ``measured[name][s][c]`` the
    numerators of the statistics reported. Returns ``{"best_head": {half: candidate of
    that half or None}, "sentences": {half: count}, name: pooled held-out share or None, f"{name}_interval": [low,
    high] or None}``; each sentence's numerator is that of the candidate chosen on the other half, and the values
    are None when a half has no sentence. The interval is
    :func:`~fairseq_interp.common.statistics.bootstrap_ratio` of those per-sentence numerators: it still holds the
    choice fixed (the heads are not chosen again in each resample), but the estimate itself is no longer
    optimistically biased by the choice."""
    halves = [sentence_half(i) for i in ids]
    counts = {half: halves.count(half) for half in HALVES}
    best = {}
    for half in HALVES:
        rows = [row for row, h in zip(choice_numerators, halves) if h == half]
        totals = [sum(row[c] for row in rows) for c in range(len(candidates))]
        best[half] = max(range(len(candidates)), key=totals.__getitem__) if rows and candidates else None
    out = {"best_head": {half: None if c is None else list(candidates[c]) for half, c in best.items()},
           "sentences": counts}
    other = dict(zip(HALVES, HALVES[::-1]))
    for name, numerators in measured.items():
        out[name] = out[f"{name}_interval"] = None
        if any(c is None for c in best.values()):
            continue
        top = [row[best[other[half]]] for row, half in zip(numerators, halves)]
        found = bootstrap_ratio(top, denominators, level=level, resamples=resamples, seed=seed)
        out[name], out[f"{name}_interval"] = found.mean, [found.low, found.high]
    return out
