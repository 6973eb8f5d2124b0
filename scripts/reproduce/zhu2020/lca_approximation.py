"""Zhu et al. (2020) §3.2 and Figure 1: does the mini-batch LCA rank the parameter groups as the exact LCA does?

Trains the same model twice with the same seed, once recording LCA with a freshly sampled batch B' per update (the
approximation, §2.2) and once with ``--lca-exact`` (the gradient over the whole training split, Eq. 1). Recording
LCA does not change training (the weights are identical, user_dir_tests/lca/test_lca.py), so both runs allocate the
same steps. Reports Kendall's τ between the groups' rankings by cumulative LCA (Eq. 4's value per parameter, whose
occupation ratios Figure 1 shows; the paper: τ = 0.905), per record interval and per frequency bucket, and draws
Figure 1 with ``fairseq-interp lca-plot``.

Resumable from its own records: each mode keeps its checkpoints and ``lca.jsonl`` under ``--work``; a mode whose
checkpoint already holds ``--updates`` updates is not trained again, a killed one continues from its last
checkpoint (fairseq's resume; the LCA records continue from the state saved with that checkpoint).

    python scripts/prepare_data.py --src en --tgt de --train-size 10000 --valid-size 500 --vocab-size 4000 \\
        --out data/m30k-10k.en-de
    OMP_NUM_THREADS=1 python scripts/reproduce/zhu2020/lca_approximation.py --data data/m30k-10k.en-de/bin \\
        --updates 150 --work results/zhu2020-approximation --results-path results/zhu2020-approximation/figures

Writes into ``--results-path`` (default ``WORK/figures``) the figures, ``values.json`` and ``provenance.json`` of
``fairseq-interp lca-plot`` and the result, ``approximation.json``; ``--out FILE`` also writes the result there.

Exact mode runs a forward/backward over the whole training split at every update: keep the data and model small.
"""

import argparse
import json
import logging
import os
import sys

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.checkpoints import PLUGIN_DIR
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import add_device_argument, device_flags, run, script_main, train
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.options import add_progress_arguments, check_range, defaults_help_formatter
from fairseq_interp.common.outputs import make_parent
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.lca.analysis import approximation_agreement
from fairseq_interp.lca.commands import driver_outputs
from fairseq_interp.lca.figures import load_run

logger = logging.getLogger("lca_approximation")
RESULT = "approximation.json"
MODES = ("approx", "exact")
MODEL_ARGS = ("--encoder-layers 3 --decoder-layers 3 --encoder-embed-dim 64 --decoder-embed-dim 64 "
              "--encoder-ffn-embed-dim 128 --decoder-ffn-embed-dim 128 --max-source-positions 128 "
              "--max-target-positions 128")


def train_args(args, mode, work):
    """fairseq-train options of one mode (everything but --max-update and --save-dir)."""
    # exact: batches of --max-tokens over the whole split (token-weighted, so the batch size does not matter)
    if mode == "exact":
        lca = ["--lca-exact", "--lca-max-tokens", str(args.max_tokens)]
    else:
        lca = ["--lca-max-tokens", str(args.lca_max_tokens or args.max_tokens)]
    return [args.data, "--user-dir", PLUGIN_DIR, "--task", "translation_lca", "--lca-dir", os.path.join(work, "lca"),
            "--lca-interval", str(args.interval), *lca, "--arch", args.arch, *args.model_args.split(),
            "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
            "--lr", str(args.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-tokens", str(args.max_tokens), *device_flags(args), "--seed", str(args.seed), "--disable-validation",
            "--no-progress-bar", "--log-interval", str(args.interval), "--save-interval-updates", str(args.interval),
            "--keep-interval-updates", "1", "--no-epoch-checkpoints"]


def check_driver_options(args):
    """Ranges of the numeric options, before anything runs (the counts and lr of the training, Zhu et al.'s
    record interval)."""
    check_range(args.updates, "--updates", 1)
    check_range(args.interval, "--interval", 1)
    check_range(args.max_tokens, "--max-tokens", 1)
    check_range(args.lca_max_tokens, "--lca-max-tokens", 1)
    check_range(args.lr, "--lr", 0, strict_minimum=True)
    check_range(args.warmup, "--warmup", 0)


def training_seconds(work, seconds):
    """The seconds of a mode's training: those just measured (kept in ``WORK/MODE/train_seconds.json``), else the
    kept ones of the run that trained it (None if unknown), so a rerun that trains nothing still reports them."""
    path = os.path.join(work, "train_seconds.json")
    if seconds is not None:
        write_atomic(path, json.dumps({"seconds": round(seconds)}) + "\n")
        return seconds
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["seconds"]


def compared_records(path, updates):
    """(header, intervals) of a mode's records over updates 1..``updates`` (a longer run is compared over its
    first ``updates`` updates: recording LCA does not change training)."""
    header, intervals = load_run(path)
    intervals = [r for r in intervals if r["end"] <= updates and not r.get("partial")]
    if not intervals or intervals[-1]["end"] != updates:
        raise InterpretError(f"{path} has no complete record ending at update {updates}: rerun with the same --work "
                             f"to finish training")
    return header, intervals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=defaults_help_formatter())
    parser.add_argument("--data", required=True, help="binarized training data (fairseq-preprocess output)")
    parser.add_argument("--work", required=True, help="checkpoints and LCA records of each mode (resumable)")
    parser.add_argument("--arch", default="transformer_test_tiny", help="architecture (sizes: --model-args)")
    parser.add_argument("--model-args", default=MODEL_ARGS, help="architecture options (default: 3+3 layers, "
                        "64-dim, FFN 128)")
    parser.add_argument("--updates", type=int, default=150, help="a multiple of --interval")
    parser.add_argument("--interval", type=int, default=15, help="--lca-interval (Zhu et al. Eq. 3: 15)")
    parser.add_argument("--max-tokens", type=int, default=2048, help="training batch, and batch of the exact pass")
    parser.add_argument("--lca-max-tokens", type=int,
                        help="size of B' in the approximation (default: --max-tokens, a training mini-batch)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--warmup", type=int, default=50, help="inverse-sqrt warm-up updates")
    parser.add_argument("--seed", type=int, default=1, help="training seed (both modes)")
    parser.add_argument("--statistic", choices=["mean", "sum"], default="mean",
                        help="rank the groups by LCA per parameter (Eq. 4, the paper's) or by their sums")
    parser.add_argument("--results-path", help="folder for Figure 1, the other outputs of fairseq-interp lca-plot "
                        f"and {RESULT} (default: WORK/figures)")
    parser.add_argument("--out", help="also write the result JSON to this file")
    parser.add_argument("--plot-dir", help=argparse.SUPPRESS)  # the earlier name of --results-path
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out and outputs in "
                        "--results-path not made from this --work")
    add_device_argument(parser)
    add_progress_arguments(parser, log_interval=1)
    args = parser.parse_args()
    check_driver_options(args)
    device_flags(args)  # --device cuda without a GPU: refused before any training
    if args.updates % args.interval:
        raise InterpretError(f"--updates {args.updates} is not a multiple of --interval {args.interval}: pick one "
                             f"that is (records are compared interval by interval)")
    folder, result_file, out = driver_outputs(args, RESULT, logger)

    runs, seconds = {}, {}
    for mode in progress_loop(MODES, args, prefix="LCA modes"):
        work = os.path.join(args.work, mode)
        _, ran = train(os.path.join(work, "ckpt"), args.updates, train_args(args, mode, work), threads=1)
        seconds[mode] = training_seconds(work, ran)
        records = os.path.join(work, "lca", "lca.jsonl")
        runs[mode] = compared_records(records, args.updates)
        header = runs[mode][0]
        logger.info(f"{mode}: {len(runs[mode][1])} intervals, B' = "
                    + (f"the whole split ({header['options']['sentences']} sentences)" if header["options"]["exact"]
                       else f"{header['options']['max_tokens']} tokens")
                    + ("" if ran is None else f", trained in {ran:.0f} s"))

    result = approximation_agreement(runs["approx"], runs["exact"], args.statistic)
    result.update(seed=args.seed, updates=args.updates, data=args.data, seconds=seconds,
                  sentences=runs["exact"][0]["options"]["sentences"],
                  lca_max_tokens=runs["approx"][0]["options"]["max_tokens"], work=os.path.abspath(args.work))
    for path in (result_file, out):  # before the figures: a rerun after a failure there replaces the folder's outputs
        if path:
            write_atomic(make_parent(path), json.dumps(result, indent=1) + "\n")
    run(["fairseq-interp", "lca-plot", *[os.path.join(args.work, m, "lca", "lca.jsonl") for m in MODES],
         "--labels", *MODES, "--results-path", folder, "--statistic", args.statistic, "--overwrite"],
        log=os.path.join(args.work, "lca-plot.log"))

    print(f"| {'group':22s} {'approx':>12s} {'exact':>12s} {'ratio approx':>13s} {'ratio exact':>12s}")
    for k, name in enumerate(result["groups"]):
        print(f"| {name:22s} {result['cumulative']['approx'][k]:12.4g} {result['cumulative']['exact'][k]:12.4g} "
              f"{result['occupation']['approx'][k]:13.4f} {result['occupation']['exact'][k]:12.4f}")
    taus = [r["tau"] for r in result["tau_per_interval"]]
    print(f"| Kendall τ per interval: min {min(taus):.3f}, median {sorted(taus)[len(taus) // 2]:.3f}, "
          f"mean {sum(taus) / len(taus):.3f} over {len(taus)} intervals")
    print("| Kendall τ of frequency-bucket rankings: "
          + ", ".join(f"{g} {t:.3f}" for g, t in result["tau_buckets"].items()))
    paper = load_paper_numbers("lca")
    number = paper.get("Figure 1", "Kendall τ, approximate vs exact ranking of the groups' occupation ratios",
                       "10K-sentence sample")
    setting = (f"{result['sentences']} training sentences, {args.arch} {args.model_args}, {args.updates} updates, "
               f"B' = {result['lca_max_tokens']} tokens, {args.statistic} per group")
    print(side_by_side([(f"{number.table}: {number.row}", number.value, result["tau"], setting)], digits=3))
    logger.info(f"figures and {RESULT} in {folder}")


if __name__ == "__main__":
    sys.exit(script_main("lca_approximation", main))
