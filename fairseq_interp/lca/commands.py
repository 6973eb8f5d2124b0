"""``fairseq-interp lca-plot``: Zhu et al.'s Figures 1–5 from LCA record files. Thin: parse → :mod:`.figures`
→ write.

Writes into ``--results-path``: the figures (:data:`~.figures.FIGURES`), ``values.json`` (every value they show)
and ``provenance.json`` (the fingerprint and header options of every record file read, the command's options and
the package versions). The earlier names keep working with a warning: ``--plot-dir DIR`` is ``--results-path DIR``,
and where ``--plot-dir`` is given an extra ``--results-path FILE`` is ``--out FILE``.
"""

import json
import logging
import os
import sys

from ..common.errors import InterpretError
from ..common.jsonl import write_atomic
from ..common.outputs import OVERWRITE_HELP, check_output_files, check_results_folder

COMMAND = "fairseq-interp lca-plot"
logger = logging.getLogger(COMMAND)
VALUES = "values.json"
PROVENANCE = "provenance.json"
PROVENANCE_FORMAT = "fairseq-interp-lca-plot"


def earlier_output_names(args, log, json_file_alone=False):
    """``args`` with the earlier names of the output options applied, one warning each: ``--plot-dir DIR`` is
    ``--results-path DIR``; next to ``--plot-dir`` a ``--results-path FILE`` is ``--out FILE``, and so (with
    ``json_file_alone``, the reproduction drivers' earlier form) is a ``--results-path`` ending in ``.json`` alone."""
    earlier_file = None
    if args.plot_dir:
        log.warning("--plot-dir is now called --results-path (the folder of the figures); the old name will be "
                    "removed")
        earlier_file, args.results_path = args.results_path, args.plot_dir
    elif (json_file_alone and args.results_path and args.results_path.endswith(".json")
          and not os.path.isdir(args.results_path)):
        earlier_file, args.results_path = args.results_path, None
    if earlier_file:
        log.warning("--results-path FILE (a JSON file) is now called --out FILE; --results-path is the folder of "
                    "the figures; the old form will be removed")
        if args.out:
            raise InterpretError("--out and the old --results-path FILE both name the JSON file: pass one")
        args.out = earlier_file
    return args


def _output_options(args):
    """``(results folder, values file or None)`` from the options, the earlier names included (with a warning)."""
    earlier_output_names(args, logger)
    if not args.results_path:
        raise InterpretError("--results-path is required: the folder for the figures, values.json and "
                             "provenance.json")
    return args.results_path, args.out


def driver_outputs(args, result_name, log):
    """``(results folder, result JSON in it, --out file or None)`` of a Zhu et al. reproduction driver, checked.

    The folder (``--results-path``, default ``WORK/figures``) receives ``fairseq-interp lca-plot``'s outputs and the
    driver's ``result_name``; a rerun with the same ``--work`` replaces them (they are made again from its records,
    the result JSON names the ``--work`` it came from), anything else there needs ``--overwrite``, as does an
    existing ``--out``."""
    from .figures import FIGURES

    earlier_output_names(args, log, json_file_alone=True)
    folder = args.results_path or os.path.join(args.work, "figures")
    result = os.path.join(folder, result_name)
    replace = args.overwrite or _made_from(result, args.work)
    check_results_folder(folder, [*FIGURES, VALUES, PROVENANCE, result_name], "--results-path", replace)
    if args.out and os.path.abspath(args.out) == os.path.abspath(result):
        args.out = None  # the folder's own copy
    check_output_files([args.out], "--out", args.overwrite)
    return folder, result, args.out


def _made_from(result, work):
    """Whether the driver result JSON ``result`` was made from the records under ``work``."""
    try:
        with open(result) as f:
            made_from = json.load(f).get("work")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(made_from, str) and os.path.abspath(made_from) == os.path.abspath(work)


def lca_plot_command(args):
    from ..common import provenance as prov
    from ..common.batches import progress
    from .figures import FIGURES, figure_values, load_run, plot_runs, summary_table

    folder, values_file = _output_options(args)
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in args.lca_jsonl]
    if len(labels) != len(args.lca_jsonl):
        raise InterpretError(f"{len(labels)} --labels for {len(args.lca_jsonl)} record files: give one label per file")
    if len(set(labels)) != len(labels):
        raise InterpretError(f"the labels {' '.join(labels)} repeat: pass --labels with one distinct label per file")
    check_results_folder(folder, [*FIGURES, VALUES, PROVENANCE], "--results-path", args.overwrite,
                         inputs=args.lca_jsonl)
    check_output_files([values_file], "--out", args.overwrite, inputs=args.lca_jsonl)
    runs, inputs = [], []
    for label, path in progress(list(zip(labels, args.lca_jsonl)), args, prefix="lca-plot: reading"):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass the lca.jsonl in the --lca-dir of fairseq-train")
        header, intervals = load_run(path)
        if not intervals:
            raise InterpretError(f"{path} holds no interval records yet: train for at least --lca-interval updates")
        runs.append((label, header, intervals))
        inputs.append({"label": label, "path": os.path.abspath(path),
                       "sha256": prov.files_fingerprint([path], names=False), "options": header.get("options"),
                       "updates": [intervals[0]["start"], intervals[-1]["end"]]})
    values = figure_values(runs, args.statistic)
    paths = plot_runs(runs, folder, args.statistic, values)
    write_atomic(os.path.join(folder, VALUES), json.dumps(values, indent=1) + "\n")
    prov.write_provenance(os.path.join(folder, PROVENANCE), {
        "format": PROVENANCE_FORMAT, "format_version": 1, "inputs": inputs,
        "options": {"statistic": args.statistic, "labels": labels}, "versions": prov.package_versions(),
        "run": prov.run_info()})
    if values_file:
        write_atomic(values_file, json.dumps(values, indent=1) + "\n")
    sys.stdout.write(summary_table(values))
    logger.info(f"{len(paths)} figures, {VALUES} and {PROVENANCE} in {folder}")


def add_subcommands(sub):
    import argparse

    lca = sub.add_parser("lca-plot", help="loss change allocation figures (Zhu et al. Figures 1-5) from lca.jsonl "
                                          "record files")
    lca.add_argument("lca_jsonl", nargs="+", help="lca.jsonl files written by fairseq-train --task translation_lca "
                     "(e.g. an approximate and an exact run: Figure 1; a train and a test run: Figures 2, 3, 5)")
    lca.add_argument("--results-path", help="folder to write the figures, values.json and provenance.json into "
                                            "(required)")
    lca.add_argument("--out", help="also write the values JSON to this file (optional)")
    lca.add_argument("--plot-dir", help=argparse.SUPPRESS)  # the earlier name of --results-path
    lca.add_argument("--labels", nargs="*", help="one label per file (default: the folder names)")
    lca.add_argument("--statistic", choices=["mean", "sum"], default="mean",
                     help="mean: LCA per parameter of a group (Zhu et al. Eq. 4); sum: the group's total LCA "
                          "(additive over groups) (default: %(default)s)")
    lca.add_argument("--no-progress-bar", action="store_true", help="log progress lines instead of a progress bar")
    lca.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    lca.set_defaults(func=lca_plot_command)
