"""Figures 1–5 of Zhu et al. (2020) from LCA record files, with matplotlib; values from :mod:`.analysis`.

One bar (or panel row) per record file, e.g. the approximate and the exact run (Figure 1) or a run recording LCA on
train and one on test (Figures 2, 3, 5). ``statistic`` is ``mean`` (Eq. 4, per parameter: the paper's) or ``sum``.

* ``figure1-occupation.png``: occupation ratio of each group's cumulative LCA (Figure 1);
* ``figure2-sparse-dense.png``: cumulative LCA of the embeddings (sparse), the layers of each side (dense) and the
  softmax (Figure 2);
* ``figure3-layers.png``: cumulative LCA of each encoder and decoder layer (Figure 3);
* ``figure4-intervals.png``: interval LCA along training per group and per module type (Figure 4);
* ``figure5-buckets.png``: cumulative LCA per word-frequency bucket of each embedding role (Figure 5).
"""

import os

from ..common.figures import pyplot, save_figure
from . import analysis
from .records import complete_intervals, read_lca

FIGURES = ("figure1-occupation.png", "figure2-sparse-dense.png", "figure3-layers.png", "figure4-intervals.png",
           "figure5-buckets.png")
_UNIT = {"mean": "cumulative LCA per parameter (Eq. 4)", "sum": "cumulative LCA (sum over the group)"}


def load_run(path):
    """(header, interval records) of one run; the open partial interval is kept only when it is the last one."""
    header, intervals, _ = read_lca(path)
    complete = complete_intervals(intervals)
    if intervals and intervals[-1].get("partial") and (not complete or intervals[-1]["end"] > complete[-1]["end"]):
        complete.append(intervals[-1])
    return header, complete


def figure_values(runs, statistic="mean"):
    """Everything the figures show, as plain JSON: {label: {...}} for runs = [(label, header, intervals)], and
    Kendall's τ of each later run's group ranking against the first run's."""
    out = {"statistic": statistic, "runs": {}}
    for label, header, intervals in runs:
        groups = analysis.group_values(header, intervals, statistic)
        out["runs"][label] = {
            "updates": [intervals[0]["start"], intervals[-1]["end"]], "interval": header["options"]["interval"],
            "split": header["options"]["split"], "groups": groups,
            "occupation": analysis.occupation_ratios(groups),
            "sparse_dense": analysis.sparse_dense_values(header, intervals, statistic),
            "interval_ends": [r["end"] for r in intervals],
            "group_series": analysis.group_series(header, intervals, statistic),
            "module_series": analysis.module_type_series(header, intervals, statistic),
            "buckets": analysis.bucket_values(header, intervals, statistic),
            "cumulative_sum": analysis.cumulative(intervals)["groups"]}
    labels = [label for label, _, _ in runs]
    first = out["runs"][labels[0]]["groups"]
    out["tau_vs_first"] = {}
    for label in labels[1:]:
        other = out["runs"][label]["groups"]
        common = [n for n in first if n in other]
        if len(common) >= 2:
            out["tau_vs_first"][label] = analysis.kendall_tau([first[n] for n in common], [other[n] for n in common])
    return out


def _bars(ax, categories, series, width_total=0.8):
    """Grouped bars: ``series`` = [(label, {category: value})]."""
    width = width_total / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar([i + k * width for i in range(len(categories))], [values.get(c, 0.0) for c in categories], width,
               label=label)
    ax.set_xticks([i + width_total / 2 - width / 2 for i in range(len(categories))], categories, rotation=45,
                  ha="right")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)


def plot_runs(runs, plot_dir, statistic="mean", values=None):
    """Write the five figures for ``runs`` = [(label, header, intervals)]; returns their paths."""
    plt = pyplot()
    os.makedirs(plot_dir, exist_ok=True)
    values = values or figure_values(runs, statistic)
    labels = [label for label, _, _ in runs]
    per_run = [values["runs"][label] for label in labels]
    names = []
    for v in per_run:
        names += [n for n in v["groups"] if n not in names]
    paths = []

    def save(fig, name):
        fig.tight_layout()
        paths.append(os.path.join(plot_dir, name))
        save_figure(fig, paths[-1], dpi=120)

    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 4))
    _bars(ax, names, [(label, v["occupation"]) for label, v in zip(labels, per_run)])
    ax.set_ylabel("occupation ratio of cumulative LCA")
    taus = "; ".join(f"Kendall τ {labels[0]} vs {k} = {t:.3f}" for k, t in values["tau_vs_first"].items())
    ax.set_title("Share of each group in the summed cumulative LCA" + (f"\n{taus}" if taus else ""), fontsize=10)
    save(fig, FIGURES[0])

    bars = list(analysis.SPARSE_DENSE)
    fig, ax = plt.subplots(figsize=(6, 4))
    _bars(ax, bars, [(label, v["sparse_dense"]) for label, v in zip(labels, per_run)])
    ax.set_ylabel(_UNIT[statistic])
    ax.set_title("Sparse (embedding) and dense weights (negative = lowered the loss)", fontsize=10)
    save(fig, FIGURES[1])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, side in zip(axes, ("encoder", "decoder")):
        layers = analysis.layer_groups(names, side)
        _bars(ax, layers, [(label, v["groups"]) for label, v in zip(labels, per_run)])
        ax.set_ylabel(_UNIT[statistic])
        ax.set_title(f"{side} layers")
    save(fig, FIGURES[2])

    fig, axes = plt.subplots(len(runs), 2, figsize=(13, 3.6 * len(runs)), squeeze=False)
    for row, (label, v) in zip(axes, zip(labels, per_run)):
        for ax, key, title in ((row[0], "group_series", "groups"), (row[1], "module_series", "module types")):
            for name, ys in v[key].items():
                ax.plot(v["interval_ends"], ys, label=name, linewidth=1)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_xlabel("update")
            ax.set_ylabel("LCA per update" + (" per parameter" if statistic == "mean" else ""))
            ax.set_title(f"{label}: interval LCA by {title} (mean over {v['interval']} updates)", fontsize=10)
            ax.legend(fontsize=6, ncol=2)
    save(fig, FIGURES[3])

    embeddings = [n for n in names if any(n in v["buckets"] for v in per_run)]
    if embeddings:
        fig, axes = plt.subplots(1, len(embeddings), figsize=(4.8 * len(embeddings), 3.6), squeeze=False)
        for ax, name in zip(axes[0], embeddings):
            series = [(label, dict(enumerate(v["buckets"][name]))) for label, v in zip(labels, per_run)
                      if name in v["buckets"]]
            n_buckets = max(len(s) for _, s in series)
            _bars(ax, list(range(n_buckets)), series)
            ax.set_xticks(range(0, n_buckets, 4), [str(b) for b in range(0, n_buckets, 4)], rotation=0)
            ax.set_xlabel("word-frequency bucket (0 = most frequent)")
            ax.set_ylabel(_UNIT[statistic])
            ax.set_title(name)
        save(fig, FIGURES[4])
    return paths


def summary_table(values):
    """Text table: cumulative value of each group (and Figure 2's bars) per run, from :func:`figure_values`."""
    labels = list(values["runs"])
    names = []
    for v in values["runs"].values():
        names += [n for n in v["groups"] if n not in names]
    bars = [b for b in analysis.SPARSE_DENSE if any(b in v["sparse_dense"] for v in values["runs"].values())]
    width = max(len(n) for n in names + bars) + 2
    lines = [f"cumulative LCA ({values['statistic']})".ljust(width) + "".join(f"{label:>16}" for label in labels)]
    for n in names + bars:
        cells = [values["runs"][label]["groups"].get(n, values["runs"][label]["sparse_dense"].get(n))
                 for label in labels]
        lines.append(n.ljust(width) + "".join(f"{'–':>16}" if c is None else f"{c:>16.6g}" for c in cells))
    for label, tau in values["tau_vs_first"].items():
        lines.append(f"Kendall τ of the group ranking, {labels[0]} vs {label}: {tau:.3f}")
    return "\n".join(lines) + "\n"
