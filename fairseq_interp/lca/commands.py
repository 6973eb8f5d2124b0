"""``fairseq-interp lca-plot``: cumulative, interval and frequency-bucket LCA figures of record files (Zhu et al.).
Thin: parse → :mod:`.figures` → write."""

import os
import sys

from ..common.errors import InterpretError


def lca_plot_command(args):
    from .figures import load_run, plot_runs, summary_table

    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in args.lca_jsonl]
    if len(labels) != len(args.lca_jsonl):
        raise InterpretError(f"{len(labels)} --labels for {len(args.lca_jsonl)} record files: give one label per file")
    runs = []
    for label, path in zip(labels, args.lca_jsonl):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass the lca.jsonl in the --lca-dir of fairseq-train")
        header, intervals = load_run(path)
        if not intervals:
            raise InterpretError(f"{path} holds no interval records yet: train for at least --lca-interval updates")
        runs.append((label, header, intervals))
    paths = plot_runs(runs, args.plot_dir)
    sys.stdout.write(summary_table(runs))
    print(f"| {len(paths)} figures in {args.plot_dir}")


def add_subcommands(sub):
    lca = sub.add_parser("lca-plot", help="loss change allocation figures from lca.jsonl record files")
    lca.add_argument("lca_jsonl", nargs="+", help="lca.jsonl files written by fairseq-train --task translation_lca")
    lca.add_argument("--plot-dir", required=True, help="output folder")
    lca.add_argument("--labels", nargs="*", help="one label per file (default: the folder names)")
    lca.set_defaults(func=lca_plot_command)
