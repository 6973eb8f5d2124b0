"""What Zhu et al. (2020) read off LCA records: cumulative and interval LCA of groups, modules and frequency buckets,
Eq. 4's value per parameter, the aggregates and occupation ratios of their figures, rank agreement between runs,
and the paper's qualitative claims checked on our records.

Values (``statistic``):

* ``mean`` (the paper's, Eq. 4): A_lca[t][g] = Σ_{i∈g} Ā_lca[t][i] / |g|, the LCA per parameter of the group;
  an aggregate of groups (e.g. all encoder layers) is Σ of their LCA / Σ of their sizes;
* ``sum``: Σ_{i∈g} LCA, additive (the groups add up to the total first-order loss change), not divided by |g|.

*Cumulative* LCA is Eq. 2 summed from the first recorded update to the last: Σ over interval records of
(interval mean × updates), because a record holds the mean over its updates (Eq. 3).
"""

import re

from .allocation import DECODER_EMBEDDING, ENCODER_EMBEDDING, MODULE_TYPES, OUTPUT_PROJECTION

STATISTICS = ("mean", "sum")

#: Figure 2's sparse (embedding) and dense groups, named as the paper names them (§2.3, Figure 3's caption)
SPARSE_DENSE = ("en_emb", "en_dense", "de_emb", "de_dense", "de_softmax")


def cumulative(intervals):
    """Cumulative LCA (Σ over all parameters of a group, over all recorded updates) of every group, module and
    frequency bucket: {"groups": {name: v}, "modules": {name: v}, "buckets": {group: [25 values]},
    "special": {group: v}, "updates": n}."""
    out = {"groups": {}, "modules": {}, "buckets": {}, "special": {}, "updates": 0}
    for r in intervals:
        n = r["n_updates"]
        out["updates"] += n
        for kind in ("groups", "modules"):
            for name, v in r.get(kind, {}).items():
                out[kind][name] = out[kind].get(name, 0.0) + v["sum"] * n
        for name, v in r.get("buckets", {}).items():
            acc = out["buckets"].setdefault(name, [0.0] * len(v["sum"]))
            for i, x in enumerate(v["sum"]):
                acc[i] += x * n
            out["special"][name] = out["special"].get(name, 0.0) + v["special"] * n
    return out


def sizes(header, kind="groups"):
    """{name: number of parameters} of the header's groups or modules."""
    return {g["name"]: g["size"] for g in header.get(kind, [])}


def value(total, size, statistic):
    """Eq. 4 (``mean``: per parameter) or the plain sum of a group's LCA ``total`` over ``size`` parameters."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    return total / size if statistic == "mean" else total


def aggregate(totals, group_sizes, names, statistic):
    """The value of the union of groups ``names`` (Σ LCA / Σ sizes for ``mean``)."""
    return value(sum(totals[n] for n in names), sum(group_sizes[n] for n in names), statistic)


def layer_groups(names, side):
    """The ``<side>.layer<i>`` groups among ``names``, in layer order."""
    found = [(int(m.group(1)), n) for n in names for m in [re.match(rf"^{side}\.layer(\d+)$", n)] if m]
    return [n for _, n in sorted(found)]


def sparse_dense_members(group_names):
    """{Figure 2 bar: [groups]}: embeddings (sparse), all layers and other parameters of a side (dense), softmax."""
    members = {"en_emb": [ENCODER_EMBEDDING], "en_dense": layer_groups(group_names, "encoder") + ["encoder.other"],
               "de_emb": [DECODER_EMBEDDING], "de_dense": layer_groups(group_names, "decoder") + ["decoder.other"],
               "de_softmax": [OUTPUT_PROJECTION]}
    return {bar: [g for g in groups if g in group_names] for bar, groups in members.items()}


def group_values(header, intervals, statistic="mean"):
    """{group: cumulative value} in the header's group order."""
    totals = cumulative(intervals)["groups"]
    return {name: value(totals[name], size, statistic) for name, size in sizes(header).items()}


def sparse_dense_values(header, intervals, statistic="mean"):
    """Figure 2: {bar: cumulative value} of :data:`SPARSE_DENSE` (bars whose groups the model lacks are left out)."""
    totals, group_sizes = cumulative(intervals)["groups"], sizes(header)
    return {bar: aggregate(totals, group_sizes, members, statistic)
            for bar, members in sparse_dense_members(list(group_sizes)).items() if members}


def occupation_ratios(values):
    """Figure 1: each group's share of the summed cumulative LCA, {group: value / Σ values}."""
    total = sum(values.values())
    if total == 0:
        raise ValueError("the groups' LCA sums to 0: no occupation ratio")
    return {name: v / total for name, v in values.items()}


def module_type_series(header, intervals, statistic="mean"):
    """Figure 4 by module: {"<side>.<type>": [interval value per record]}, each module type (self-attention,
    encoder attention, feed-forward, layer norms) of a side aggregated over its layers."""
    module_sizes = sizes(header, "modules")
    members = {}
    for name in module_sizes:
        match = re.match(r"^(encoder|decoder)\.layer\d+\.(\w+)$", name)
        if match and match.group(2) in MODULE_TYPES:
            members.setdefault(f"{match.group(1)}.{match.group(2)}", []).append(name)
    order = [f"{side}.{kind}" for side in ("encoder", "decoder") for kind in MODULE_TYPES]
    series = {}
    for key in [k for k in order if k in members]:
        if any(m not in r.get("modules", {}) for r in intervals for m in members[key]):
            continue  # records written without module sums
        size = sum(module_sizes[m] for m in members[key])
        series[key] = [value(sum(r["modules"][m]["sum"] for m in members[key]), size, statistic)
                       for r in intervals]
    return series


def group_series(header, intervals, statistic="mean"):
    """Figure 4 by group: {group: [interval value per record]} (per update: the records' means over Eq. 3)."""
    return {name: [value(r["groups"][name]["sum"], size, statistic) for r in intervals]
            for name, size in sizes(header).items()}


def bucket_values(header, intervals, statistic="mean"):
    """Figure 5: {embedding group: [cumulative value per frequency bucket, most frequent first]}; ``mean`` divides
    each bucket by its parameters (rows × embedding dimension)."""
    totals = cumulative(intervals)["buckets"]
    out = {}
    for name, sums in totals.items():
        info = header["buckets"][name]
        out[name] = [value(s, rows * info["dim"], statistic) if rows else 0.0 for s, rows in zip(sums, info["rows"])]
    return out


def kendall_tau(a, b):
    """Kendall's τ-b (Kendall 1938, as Zhu et al. §3.2) of two equally long score lists, via scipy."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _magnitudes(values, names):
    return [abs(values[n]) for n in names]


def dynamics_claims(runs, statistic="mean"):
    """The paper's statements about Figures 2–5 (§3.3, §4) checked on our runs ``{label: (header, intervals)}``.

    Each claim: {"figure", "row", "column" (the run's label), "ours" ("yes"/"no"), "detail"}. "Contributes more"
    is read as a larger |cumulative LCA| (LCA is negative where the loss falls); the paper's Eq. 4 values
    (``mean``) unless ``statistic`` says otherwise. Where the paper's wording needs a threshold the detail says which.
    """
    claims = []

    def claim(figure, row, label, holds, detail):
        claims.append({"figure": figure, "row": row, "column": label, "ours": "yes" if holds else "no",
                       "detail": detail})

    for label, (header, intervals) in runs.items():
        values = group_values(header, intervals, statistic)
        bars = sparse_dense_values(header, intervals, statistic)
        fmt = ", ".join(f"{k} {v:.3g}" for k, v in bars.items())
        emb = [b for b in ("en_emb", "de_emb") if b in bars]
        dense = [b for b in ("en_dense", "de_dense", "de_softmax") if b in bars]
        claim("Figure 2", "embeddings contribute very little", label,
              max(_magnitudes(bars, emb)) < min(_magnitudes(bars, dense)),
              f"|en_emb|, |de_emb| below every dense bar: {fmt}")
        claim("Figure 2", "softmax contributes less than the encoder and decoder layers", label,
              abs(bars["de_softmax"]) < min(abs(bars["en_dense"]), abs(bars["de_dense"])),
              f"|de_softmax| < |en_dense|, |de_dense|: {fmt}")
        ratio = abs(bars["en_dense"]) / abs(bars["de_dense"])
        claim("Figure 2", "encoder and decoder layers contribute similarly", label, 0.5 <= ratio <= 2,
              f"|en_dense| / |de_dense| = {ratio:.2f} (read as within a factor of 2)")
        enc, dec = layer_groups(values, "encoder"), layer_groups(values, "decoder")
        enc_mag, dec_mag = _magnitudes(values, enc), _magnitudes(values, dec)
        middle = enc_mag[1:-1]
        claim("Figure 3", "encoder: first and last layer contribute more than the middle layers (sandwich)", label,
              len(enc) >= 3 and min(enc_mag[0], enc_mag[-1]) > max(middle),
              "encoder layers " + ", ".join(f"{v:.3g}" for v in (values[n] for n in enc)))
        claim("Figure 3", "decoder: the higher the layer, the more it contributes", label,
              all(a < b for a, b in zip(dec_mag, dec_mag[1:])),
              "decoder layers " + ", ".join(f"{v:.3g}" for v in (values[n] for n in dec)))
        top_enc = max(range(len(enc)), key=lambda i: enc_mag[i])
        top_dec = max(range(len(dec)), key=lambda i: dec_mag[i])
        claim("§4", "the first (§4) or last (§1) encoder layer and the last decoder layer contribute most", label,
              top_enc in (0, len(enc) - 1) and top_dec == len(dec) - 1,
              f"most: encoder layer {top_enc}, decoder layer {top_dec}")
        series = group_series(header, intervals, statistic)
        for side, names in (("encoder", enc), ("decoder", dec)):
            lower = sum(series[names[-1]][k] < series[names[0]][k] for k in range(len(intervals)))
            share = lower / len(intervals)
            claim("Figure 4", f"{side}: the top layer's interval LCA is below the bottom layer's at most intervals",
                  label, share > 0.5, f"{lower} of {len(intervals)} intervals (read as more than half)")
        buckets = bucket_values(header, intervals, statistic)
        for name, vals in buckets.items():
            mags = [abs(v) for v in vals]
            share = abs(sum(vals[:5])) / sum(mags) if sum(mags) else 0.0
            claim("Figure 5", f"{name}: the most frequent words contribute most", label,
                  mags.index(max(mags)) == 0,
                  f"largest |LCA| in bucket {mags.index(max(mags))}; the 5 most frequent buckets hold "
                  f"{100 * share:.0f} % of |LCA|")
    labels = list(runs)
    if len(labels) >= 2:
        (h1, i1), (h2, i2) = runs[labels[0]], runs[labels[1]]
        v1, v2 = group_values(h1, i1, statistic), group_values(h2, i2, statistic)
        layers = layer_groups(v1, "encoder") + layer_groups(v1, "decoder")
        tau = kendall_tau([v1[n] for n in layers], [v2[n] for n in layers])
        claim("Figure 3", "the layers rank alike on train and test", f"{labels[0]} vs {labels[1]}", tau >= 0.5,
              f"Kendall τ of the layers' cumulative LCA = {tau:.3f} (read as τ ≥ 0.5)")
    return claims


def approximation_agreement(approx, exact, statistic="mean"):
    """Figure 1 / §3.2: how well the mini-batch approximation ranks what the exact LCA ranks. ``approx`` and
    ``exact`` are (header, intervals) over the same updates. Returns Kendall's τ of the groups' cumulative values
    (``statistic``; the paper: occupation ratios of Eq. 4 values, τ = 0.905), of each interval's group values, and
    of the frequency buckets of each embedding role, with the occupation ratios."""
    (ha, ia), (he, ie) = approx, exact
    va, ve = group_values(ha, ia, statistic), group_values(he, ie, statistic)
    names = list(ve)
    result = {"groups": names, "statistic": statistic,
              "cumulative": {"approx": [va[n] for n in names], "exact": [ve[n] for n in names]},
              "occupation": {"approx": [occupation_ratios(va)[n] for n in names],
                             "exact": [occupation_ratios(ve)[n] for n in names]},
              "tau": kendall_tau([va[n] for n in names], [ve[n] for n in names])}
    sa, se = group_series(ha, ia, statistic), group_series(he, ie, statistic)
    ends_a = [r["end"] for r in ia]
    result["tau_per_interval"] = [
        {"end": r["end"], "tau": kendall_tau([sa[n][ends_a.index(r["end"])] for n in names],
                                             [se[n][k] for n in names])}
        for k, r in enumerate(ie) if r["end"] in ends_a]
    ba, be = bucket_values(ha, ia, statistic), bucket_values(he, ie, statistic)
    result["tau_buckets"] = {g: kendall_tau(ba[g], be[g]) for g in be}
    return result


def approximation_seeds(results):
    """Figure 1 / §3.2 over several seeds: per seed (the :func:`approximation_agreement` results of runs that differ
    only in their training seed) Kendall's τ of the groups' cumulative LCA, its per-interval minimum, median and
    mean, the frequency buckets' τ, and the largest gap between the approximate and exact occupation ratios; and
    each quantity's values over the seeds (for mean ± sd)."""
    import statistics

    rows = []
    for result in sorted(results, key=lambda r: r["seed"]):
        taus = [r["tau"] for r in result["tau_per_interval"]]
        occupation = result["occupation"]
        rows.append({"seed": result["seed"], "tau": result["tau"], "tau_interval_min": min(taus),
                     "tau_interval_median": statistics.median(taus), "tau_interval_mean": sum(taus) / len(taus),
                     **{f"tau_bucket:{g}": t for g, t in result["tau_buckets"].items()},
                     "occupation_gap": max(abs(a - e) for a, e in zip(occupation["approx"], occupation["exact"])),
                     "exact_seconds": (result.get("seconds") or {}).get("exact")})
    seeds = [r["seed"] for r in rows]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds}: each run must have its own seed")
    return {"rows": rows, "values": {key: [r[key] for r in rows] for key in rows[0] if key != "seed"}}
