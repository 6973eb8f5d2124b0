"""Figures of LCA record files (Zhu et al. 2020, Figures 2–5) with matplotlib.

* ``cumulative.png``: cumulative LCA per group, Σ over intervals of (interval mean × updates) (Figures 2–3; one
  bar per record file, e.g. a train and a valid run);
* ``intervals.png``: the interval means of each group along training (Figure 4);
* ``buckets.png``: cumulative LCA of embedding rows per frequency bucket, most frequent first (Figure 5).
"""

import os

from ..common.figures import pyplot, save_figure
from .records import complete_intervals, read_lca


def load_run(path):
    """(header, interval records) of one run; the open partial interval is kept only when it is the last one."""
    header, intervals, _ = read_lca(path)
    complete = complete_intervals(intervals)
    if intervals and intervals[-1].get("partial") and (not complete or intervals[-1]["end"] > complete[-1]["end"]):
        complete.append(intervals[-1])
    return header, complete


def cumulative(intervals):
    """{group: Σ_t Σ_{i∈group} LCA_t[i]} and {embedding group: [per bucket]} over all recorded updates."""
    groups, buckets = {}, {}
    for r in intervals:
        n = r["n_updates"]
        for name, v in r["groups"].items():
            groups[name] = groups.get(name, 0.0) + v["sum"] * n
        for name, v in r.get("buckets", {}).items():
            acc = buckets.setdefault(name, [0.0] * len(v["sum"]))
            for i, x in enumerate(v["sum"]):
                acc[i] += x * n
    return groups, buckets


def summary_table(runs):
    """Text table: cumulative LCA per group for each run (label, header, intervals)."""
    names = []
    for _, header, _ in runs:
        for g in header["groups"]:
            if g["name"] not in names:
                names.append(g["name"])
    sums = [cumulative(intervals)[0] for _, _, intervals in runs]
    width = max(len(n) for n in names) + 2
    lines = ["group".ljust(width) + "".join(f"{label:>16}" for label, _, _ in runs)]
    for n in names:
        lines.append(n.ljust(width) + "".join(f"{s.get(n, float('nan')):>16.5f}" for s in sums))
    lines.append("total".ljust(width) + "".join(f"{sum(s.values()):>16.5f}" for s in sums))
    return "\n".join(lines) + "\n"


def plot_runs(runs, plot_dir):
    """Write the three figures for ``runs`` = [(label, header, intervals)]; returns their paths."""
    plt = pyplot()
    os.makedirs(plot_dir, exist_ok=True)
    paths = []
    names = []
    for _, header, _ in runs:
        names += [g["name"] for g in header["groups"] if g["name"] not in names]

    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 4))
    width = 0.8 / len(runs)
    for k, (label, _, intervals) in enumerate(runs):
        sums = cumulative(intervals)[0]
        ax.bar([i + k * width for i in range(len(names))], [sums.get(n, 0.0) for n in names], width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=45, ha="right")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("cumulative LCA (loss change, nats)")
    ax.set_title("Cumulative LCA per group (negative = reduced the loss)")
    ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(plot_dir, "cumulative.png"))
    save_figure(fig, paths[-1], dpi=120)

    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 3.2 * len(runs)), squeeze=False)
    for ax, (label, header, intervals) in zip(axes[:, 0], runs):
        ends = [r["end"] for r in intervals]
        for g in header["groups"]:
            ax.plot(ends, [r["groups"][g["name"]]["sum"] for r in intervals], label=g["name"])
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("update")
        ax.set_ylabel("LCA per update")
        ax.set_title(f"{label}: interval LCA (mean over {header['options']['interval']} updates)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(os.path.join(plot_dir, "intervals.png"))
    save_figure(fig, paths[-1], dpi=120)

    embeddings = [n for n in names if any(n in h.get("buckets", {}) for _, h, _ in runs)]
    if embeddings:
        fig, axes = plt.subplots(1, len(embeddings), figsize=(4.5 * len(embeddings), 3.5), squeeze=False)
        for ax, name in zip(axes[0], embeddings):
            for k, (label, header, intervals) in enumerate(runs):
                buckets = cumulative(intervals)[1].get(name)
                if buckets is None:
                    continue
                ax.bar([i + k * width for i in range(len(buckets))], buckets, width, label=label)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_xlabel("frequency bucket (0 = most frequent)")
            ax.set_ylabel("cumulative LCA")
            ax.set_title(name)
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(os.path.join(plot_dir, "buckets.png"))
        save_figure(fig, paths[-1], dpi=120)
    return paths
