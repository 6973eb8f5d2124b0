#!/usr/bin/env python
"""Snell et al. (2021) Figure 6 from a ``permutation_copy.py multihead-init`` results folder: per configuration, the
runs that learn (final token accuracy >= the driver's ``SOLVED``) out of the repeats, with the exact (Clopper-Pearson)
binomial 95 % interval of the share (``proportion_interval``), and Fisher's exact test of every two configurations'
shares (two-sided). Prints the markdown table and writes
FOLDER/table.json and FOLDER/figure6.png (derived from the records, rewritten on each run).

    python scripts/reproduce/snell2021/figure6_table.py results/snell2021-figure6
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from permutation_copy import SOLVED, first_update_at  # noqa: E402

from fairseq_interp.common.figures import pyplot, save_figure  # noqa: E402
from fairseq_interp.common.jsonl import read_records, write_atomic  # noqa: E402
from fairseq_interp.common.statistics import proportion_interval  # noqa: E402
from fairseq_interp.common.tables import markdown_table_lines  # noqa: E402

CONFIGURATIONS = (("all_bad", "tab:red"), ("one_good", "tab:blue"), ("random", "tab:green"))


def figure6_table(runs):
    """``{"solved_threshold_token_accuracy", "configurations": {name: counts, share, exact interval, ...},
    "fisher_exact": {"A vs B": two-sided p of learning in A vs B}}``."""
    from scipy.stats import fisher_exact

    out = {"solved_threshold_token_accuracy": SOLVED, "configurations": {}}
    for name, _ in CONFIGURATIONS:
        rs = sorted((r for r in runs if r["configuration"] == name), key=lambda r: r["repeat"])
        if not rs:
            continue
        k, n = sum(r["token_accuracy"][-1] >= SOLVED for r in rs), len(rs)
        ci = proportion_interval(k, n)
        first = [first_update_at(r, SOLVED) for r in rs if r["token_accuracy"][-1] >= SOLVED]
        out["configurations"][name] = {
            "runs": n, "learn": k, "share": k / n, "ci_low": ci.low, "ci_high": ci.high,
            "attention_ge_90": sum(r["attention_accuracy"][-1] >= 90 for r in rs),
            "distinct_head_sets": len({tuple(r["head_seeds"]) for r in rs}), "first_update": first,
            "final_token_accuracy": [r["token_accuracy"][-1] for r in rs],
            "final_attention_accuracy": [r["attention_accuracy"][-1] for r in rs]}
    names = list(out["configurations"])
    counts = {name: (c["learn"], c["runs"] - c["learn"]) for name, c in out["configurations"].items()}
    out["fisher_exact"] = {f"{a} vs {b}": float(fisher_exact([counts[a], counts[b]]).pvalue)
                           for i, a in enumerate(names) for b in names[i + 1:]}
    return out


def markdown(table):
    solved = table["solved_threshold_token_accuracy"]
    rows = []
    for name, c in table["configurations"].items():
        n, k = c["runs"], c["learn"]
        rows.append([name, n, f"{k}/{n}", f"{100 * k / n:.0f}% [{100 * c['ci_low']:.0f}, {100 * c['ci_high']:.0f}%]",
                     f"{c['attention_ge_90']}/{n}", c["distinct_head_sets"], sorted(c["first_update"])])
    lines = markdown_table_lines(["configuration", "runs", f"learn (≥ {solved:.0f}% tokens)",
                                  "share [exact 95% interval]", "≥ 90% attention", "distinct head sets",
                                  f"first update ≥ {solved:.0f}% tokens (learners)"], rows)
    lines += [f"\nFisher's exact test (two-sided), {pair}: p = {p:.2f}" for pair, p in table["fisher_exact"].items()]
    return "\n".join(lines)


def plot(candidates, runs, path):
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for r in candidates:
        axes[0].plot(r["steps"], r["attention_accuracy"], color="0.4", alpha=0.6)
    axes[0].set_title(f"single-head candidates ({len(candidates)}): attention accuracy")
    for name, colour in CONFIGURATIONS:
        for i, r in enumerate(r for r in runs if r["configuration"] == name):
            axes[1].plot(r["steps"], r["token_accuracy"], color=colour, alpha=0.45, label=name if i == 0 else None)
    axes[1].set_title("8-head runs: token accuracy")
    axes[1].legend()
    for ax in axes:
        ax.set_xlabel("updates")
    axes[0].set_ylabel("accuracy (%)")
    fig.tight_layout()
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser(prog="figure6_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a multihead-init results folder (--results-path of permutation_copy.py)")
    folder = parser.parse_args().folder
    missing = [name for name in ("runs.jsonl", "candidates.jsonl") if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        parser.error(f"{folder} holds no {' or '.join(missing)}: pass a multihead-init results folder")
    runs = read_records(os.path.join(folder, "runs.jsonl"))
    candidates = sorted(read_records(os.path.join(folder, "candidates.jsonl")), key=lambda r: r["head_seed"])
    table = figure6_table(runs)
    print(markdown(table))
    write_atomic(os.path.join(folder, "table.json"), json.dumps(table, indent=1))
    plot(candidates, runs, os.path.join(folder, "figure6.png"))


if __name__ == "__main__":
    main()
