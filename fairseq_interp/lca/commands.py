"""``fairseq-interp lca-plot``: Zhu et al.'s Figures 1–5 from LCA record files. Thin: parse → :mod:`.figures`
→ write."""

import json
import os
import sys

from ..common.errors import InterpretError
from ..common.jsonl import write_atomic
from ..common.outputs import OVERWRITE_HELP, check_output_files, check_results_folder


def lca_plot_command(args):
    from .figures import FIGURES, figure_values, load_run, plot_runs, summary_table

    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in args.lca_jsonl]
    if len(labels) != len(args.lca_jsonl):
        raise InterpretError(f"{len(labels)} --labels for {len(args.lca_jsonl)} record files: give one label per file")
    if len(set(labels)) != len(labels):
        raise InterpretError(f"the labels {' '.join(labels)} repeat: pass --labels with one distinct label per file")
    check_results_folder(args.plot_dir, FIGURES, "--plot-dir", args.overwrite, inputs=args.lca_jsonl)
    check_output_files([args.results_path], "--results-path", args.overwrite, inputs=args.lca_jsonl)
    runs = []
    for label, path in zip(labels, args.lca_jsonl):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass the lca.jsonl in the --lca-dir of fairseq-train")
        header, intervals = load_run(path)
        if not intervals:
            raise InterpretError(f"{path} holds no interval records yet: train for at least --lca-interval updates")
        runs.append((label, header, intervals))
    values = figure_values(runs, args.statistic)
    paths = plot_runs(runs, args.plot_dir, args.statistic, values)
    if args.results_path:
        write_atomic(args.results_path, json.dumps(values, indent=1) + "\n")
    sys.stdout.write(summary_table(values))
    print(f"| {len(paths)} figures in {args.plot_dir}")


def add_subcommands(sub):
    lca = sub.add_parser("lca-plot", help="loss change allocation figures (Zhu et al. Figures 1-5) from lca.jsonl "
                                          "record files")
    lca.add_argument("lca_jsonl", nargs="+", help="lca.jsonl files written by fairseq-train --task translation_lca "
                     "(e.g. an approximate and an exact run: Figure 1; a train and a test run: Figures 2, 3, 5)")
    lca.add_argument("--plot-dir", required=True, help="output folder of the figures")
    lca.add_argument("--labels", nargs="*", help="one label per file (default: the folder names)")
    lca.add_argument("--statistic", choices=["mean", "sum"], default="mean",
                     help="mean: LCA per parameter of a group (Zhu et al. Eq. 4); sum: the group's total LCA "
                          "(additive over groups) (default: %(default)s)")
    lca.add_argument("--results-path", help="also write every value the figures show as JSON here")
    lca.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    lca.set_defaults(func=lca_plot_command)
