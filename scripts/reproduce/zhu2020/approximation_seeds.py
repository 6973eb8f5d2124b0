#!/usr/bin/env python
"""Zhu et al. (2020) §3.2 / Figure 1 over seeds: Kendall's τ between the mini-batch and the exact LCA's rankings
of the parameter groups, per seed and as mean ± sd, beside the paper's 0.905.

Reads the result files of ``lca_approximation.py`` (its ``--out``, one per ``--seed``, same options otherwise) and
writes a markdown table (``--out``) and the values behind it (``--json``).

    python scripts/reproduce/zhu2020/approximation_seeds.py results/zhu2020-approx-seed{1,2,3}.json \\
        --out docs/results/zhu2020-approximation-seeds.md --overwrite
"""

import argparse
import json
import sys

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import script_main
from fairseq_interp.common.outputs import add_table_output_arguments, check_table_outputs, write_table_outputs
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.common.statistics import format_mean_sd
from fairseq_interp.common.tables import markdown_table_lines
from fairseq_interp.lca.analysis import approximation_seeds

SETTINGS = ("updates", "sentences", "lca_max_tokens", "statistic", "groups")


def load(paths):
    """The result files; refused in one line if a seed is missing or they differ in more than the seed."""
    results = []
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        if "seed" not in result:
            raise InterpretError(f"{path} names no seed: make it with lca_approximation.py --seed S --out FILE")
        results.append(result)
    seeds = [r["seed"] for r in results]
    if len(set(seeds)) != len(seeds):
        raise InterpretError(f"seeds {seeds}: each run must have its own seed")
    for key in SETTINGS:
        values = {json.dumps(r.get(key)) for r in results}
        if len(values) > 1:
            raise InterpretError(f"the results differ in {key} ({', '.join(sorted(values))}): compare runs that "
                                 f"differ only in --seed")
    return results


def markdown(summary, results):
    rows, values = summary["rows"], summary["values"]
    buckets = [key for key in values if key.startswith("tau_bucket:")]
    head = ["seed", "τ (groups, cumulative)", "τ per interval: min / median / mean",
            *(f"τ buckets: {key.split(':', 1)[1]}" for key in buckets), "largest occupation gap", "exact run (s)"]
    table = [[r["seed"], f"{r['tau']:.3f}",
              f"{r['tau_interval_min']:.3f} / {r['tau_interval_median']:.3f} / {r['tau_interval_mean']:.3f}",
              *(f"{r[key]:.3f}" for key in buckets), f"{r['occupation_gap']:.4f}",
              "–" if r["exact_seconds"] is None else f"{r['exact_seconds']:.0f}"] for r in rows]
    table.append(["mean ± sd", format_mean_sd(values["tau"], 3, count=False),
                  " / ".join(format_mean_sd(values[key], 3, count=False)
                             for key in ("tau_interval_min", "tau_interval_median", "tau_interval_mean")),
                  *(format_mean_sd(values[key], 3, count=False) for key in buckets),
                  format_mean_sd(values["occupation_gap"], 4, count=False), "–"])
    lines = markdown_table_lines(head, table)
    first = results[0]
    number = load_paper_numbers("lca").get(
        "Figure 1", "Kendall τ, approximate vs exact ranking of the groups' occupation ratios", "10K-sentence sample")
    setting = (f"{len(rows)} seeds; {first['sentences']} training sentences, {first['updates']} updates, "
               f"B' = {first['lca_max_tokens']} tokens, {first['statistic']} per group")
    paper = side_by_side([(f"{number.table}: {number.row}", number.value,
                           format_mean_sd(values["tau"], 3, count=False), setting)], digits=3)
    lowest = min(values["tau"])
    reading = (f"Lowest τ over the seeds: {lowest:.3f} ({'at or above' if lowest >= number.value else 'below'} the "
               f"paper's {number.value}).")
    return "\n".join(lines) + "\n\n" + paper + "\n\n" + reading + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="result files of lca_approximation.py (--out), one per seed")
    add_table_output_arguments(parser, "the per-seed values and their lists")
    args = parser.parse_args()
    check_table_outputs(args, inputs=args.results)
    results = load(args.results)
    summary = approximation_seeds(results)
    write_table_outputs(args, markdown(summary, results), summary)


if __name__ == "__main__":
    sys.exit(script_main("approximation_seeds", main))
