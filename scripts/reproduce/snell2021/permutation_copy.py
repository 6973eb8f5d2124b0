#!/usr/bin/env python
"""Snell et al. (2021) on the permutation-copy task at small scale, each run a ``fairseq-train`` of
``lstm_dot_attention`` on the ``permutation_copy`` task; runs go in parallel (``--jobs``, one thread each).

``figure3`` (Figure 3): token and attention accuracy vs updates over seeds, per input distribution (fixed_set,
sampled_set, mixture, permute). Writes RESULTS/runs.jsonl (one validation curve per run, appended as each run ends),
RESULTS/summary.md and RESULTS/figure3.png; ``--resume`` keeps the finished runs of an interrupted sweep.

``multihead-init`` (Figure 6): multi-head attention escapes a hard distribution through learning dynamics. On
``fixed_set`` copying, single-head initializations of the attention matrix W are rejection-sampled as *good* (the
single-head model learns to attend) or *bad* (it does not); then K-head models are built from K bad heads
(``all_bad``), one good and K−1 bad heads (``one_good``) and unseeded heads (``random``) with
``--head-init-seeds``, and trained the same way. All other parameters come from ``--seed``: with ``--repeat-over
seed`` repeat r is ``--seed r`` with the configuration's heads fixed; with ``--repeat-over heads`` every run has the
single-head runs' seed (``--base-seed``, default 1: same data and other parameters, the world the heads were
classified in) and repeat r draws the configuration's heads with seed r (``random``: fresh unclassified head seeds).
Runs go repeat by repeat (every configuration's repeat 1, then repeat 2, ...), so a stopped sweep has as many runs
of each. Writes RESULTS/candidates.jsonl, RESULTS/runs.jsonl (each run appended as it ends; ``--resume`` keeps them)
and RESULTS/summary.md.

    python scripts/reproduce/snell2021/permutation_copy.py figure3 --modes fixed_set sampled_set --seeds 5 \\
        --max-update 300 --jobs 2 --results-path results/snell2021-figure3
    python scripts/reproduce/snell2021/permutation_copy.py multihead-init --candidates 10 --heads 8 --repeats 2 \\
        --jobs 2 --results-path results/fig6
"""

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.checkpoints import PLUGIN_DIR
from fairseq_interp.common.fairseq_runs import (add_device_argument, check_driver_records, device_flags, driver_records,
                                                run, script_main)
from fairseq_interp.common.figures import pyplot, save_figure
from fairseq_interp.common.jsonl import read_records, write_atomic
from fairseq_interp.common.options import PROGRESS_OPTIONS, add_progress_arguments, check_counts, check_range, \
    rename_options
from fairseq_interp.common.outputs import OVERWRITE_HELP, check_results_folder
from fairseq_interp.common.statistics import format_mean_sd, proportion_interval
from fairseq_interp.common.tables import markdown_table, markdown_table_lines

COMMAND = "permutation_copy.py"
logger = logging.getLogger("permutation_copy")
#: token accuracy (%) at the last update from which a multi-head run counts as having solved the task
SOLVED = 99.0
#: options that never change a run's numbers (left out of the config every record carries)
NOT_CONFIG = ("jobs", "results_path", "resume", "overwrite", "func", "command", "device", *PROGRESS_OPTIONS)


def train_command(mode, seed, args, extra=()):
    vocab = args.vocab_size if mode != "mixture" else max(args.vocab_size, 2 * args.seq_len)
    return ["fairseq-train", "--user-dir", PLUGIN_DIR,
            "--task", "permutation_copy", "--perm-mode", mode, "--seq-len", str(args.seq_len),
            "--vocab-size", str(vocab), "--train-size", str(args.train_size), "--valid-size", str(args.valid_size),
            "--data-seed", str(seed), "--seed", str(seed), "--arch", "lstm_dot_attention",
            "--embed-dim", str(args.dim), "--hidden-size", str(args.dim), "--output-hidden-dim", str(args.dim),
            "--attention-heads", str(args.heads), "--output-activation", args.output_activation,
            "--optimizer", "adam", "--lr", str(args.lr),
            "--criterion", "cross_entropy", "--batch-size", str(args.batch_size), "--max-update", str(args.max_update),
            "--validate-interval-updates", str(args.validate_every), "--validate-interval", "1000",
            "--required-batch-size-multiple", "1", *device_flags(args), "--no-save", "--no-progress-bar",
            "--log-format", "json", *extra]


def one_run(mode, seed, args, extra=()):
    """One training run: its validation curve (token and attention accuracy per validated update)."""
    start = time.time()
    output = run(train_command(mode, seed, args, extra), threads=1, tail=2000)
    curve = {}
    for line in output.splitlines():
        if "| valid |" in line:
            log = json.loads(line.split("| valid |", 1)[1])
            curve[int(log["valid_num_updates"])] = (float(log["valid_token_accuracy"]),
                                                    float(log["valid_attention_accuracy"]))
    steps = sorted(curve)
    return {"id": f"{mode}/seed{seed}", "mode": mode, "seed": seed, "steps": steps,
            "token_accuracy": [curve[s][0] for s in steps], "attention_accuracy": [curve[s][1] for s in steps],
            "seconds": round(time.time() - start, 1)}


# --------------------------------------------------------------------------------------------------------- figure3

def first_update_at(run, threshold=90.0, key="token_accuracy"):
    """The first validated update whose ``key`` (token or attention accuracy, %) reaches ``threshold``, or None."""
    return next((step for step, acc in zip(run["steps"], run[key]) if acc >= threshold), None)


def _share(count, total):
    interval = proportion_interval(count, total)
    return f"{count}/{total} [{100 * interval.low:.0f}, {100 * interval.high:.0f}%]"


def summarize(runs, args):
    """Per mode: final token and attention accuracy (mean ± sd over seeds), the seeds that reach 90% tokens and
    those whose attention reaches 90% (each share with its exact 95% interval), and when the tokens get there."""
    import numpy as np

    rows = []
    for mode in args.modes:
        rs = [r for r in runs if r["mode"] == mode]
        if not rs:
            continue
        tok = format_mean_sd([r["token_accuracy"][-1] for r in rs], 1, count=False)
        att = format_mean_sd([r["attention_accuracy"][-1] for r in rs], 1, count=False)
        reached = [u for u in (first_update_at(r) for r in rs) if u is not None]
        attending = sum(first_update_at(r, key="attention_accuracy") is not None for r in rs)
        when = f"{np.median(reached):.0f} ({min(reached)}–{max(reached)})" if reached else "–"
        rows.append([mode, len(rs), tok, att, _share(len(reached), len(rs)), _share(attending, len(rs)), when,
                     f"{np.mean([r['seconds'] for r in rs]):.1f}"])
    return markdown_table([
        "mode", "seeds", f"token accuracy at {args.max_update} (mean ± sd)", "attention accuracy",
        "seeds ≥ 90% tokens [95% interval of the share]", "seeds ≥ 90% attention",
        "first update ≥ 90% tokens (median, range)", "seconds per run"], rows) + "\n"


def plot(runs, modes, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.2), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for r in runs:
            if r["mode"] == mode:
                ax.plot(r["steps"], r["token_accuracy"], color="tab:blue", alpha=0.5)
                ax.plot(r["steps"], r["attention_accuracy"], color="tab:orange", alpha=0.5, linestyle="--")
        ax.set_title(mode)
        ax.set_xlabel("updates")
    axes[0][0].set_ylabel("accuracy (%): tokens —, attention --")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def figure3(args):
    start = time.time()
    check_driver_records([os.path.join(args.results_path, "runs.jsonl")], args.resume, args.overwrite)
    check_results_folder(args.results_path, ["summary.md", "figure3.png"], "--results-path", args.overwrite or args.resume)
    config = {k: v for k, v in vars(args).items() if k not in ("modes", "seeds") + NOT_CONFIG}
    path = os.path.join(args.results_path, "runs.jsonl")
    with driver_records(path, config, COMMAND, args.resume, args.overwrite) as writer:
        new = figure3_runs(args, config, writer)
        old = [r for r in read_records(path) if r["id"] in writer.done_ids]
    wanted = {f"{m}/seed{s}" for m in args.modes for s in range(1, args.seeds + 1)}
    runs = [r for r in old if r["id"] in wanted]
    table = summarize(runs, args)
    wall = time.time() - start
    write_atomic(os.path.join(args.results_path, "summary.md"),
                 f"{' '.join(sys.argv)}\n\n{table}\nwall time {wall:.0f} s for {len(new)} runs with {args.jobs} "
                 f"parallel runs\n")
    plot(runs, args.modes, os.path.join(args.results_path, "figure3.png"))
    print(table + f"wall time {wall:.0f} s for {len(new)} runs with {args.jobs} parallel runs; results in {args.results_path}")


def figure3_runs(args, config, writer):
    """The runs of Figure 3 not yet in ``writer``'s records, in parallel; returns the new records."""
    lock = threading.Lock()
    jobs = [(m, s) for m in args.modes for s in range(1, args.seeds + 1) if f"{m}/seed{s}" not in writer.done_ids]
    logger.info(f"{len(jobs)} runs to do, {len(writer.done_ids)} kept")

    def do(job):
        result = dict(one_run(*job, args), config=config)
        with lock:
            writer.write(result)
            logger.info(f"{result['id']}: tokens {result['token_accuracy'][-1]:.1f}% in {result['seconds']} s")
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        return list(progress_loop(pool.map(do, jobs), args, prefix="figure3 runs", total=len(jobs)))


# -------------------------------------------------------------------------------------------------- multihead-init

def multihead_init(args):
    check_driver_records([os.path.join(args.results_path, name) for name in ("candidates.jsonl", "runs.jsonl")],
                         args.resume, args.overwrite)
    check_results_folder(args.results_path, ["summary.md"], "--results-path", args.overwrite or args.resume)
    start, lock = time.time(), threading.Lock()
    config = {k: v for k, v in vars(args).items() if k not in NOT_CONFIG}
    for option, before in (("repeat_over", "seed"), ("base_seed", 1)):
        if config[option] == before:  # the behaviour before the option: records made then resume unchanged
            del config[option]
    single = argparse.Namespace(**{**vars(args), "heads": 1})
    path = os.path.join(args.results_path, "candidates.jsonl")
    with driver_records(path, config, COMMAND, args.resume, args.overwrite, "candidates") as writer:
        def candidate(seed):
            result = dict(one_run(args.mode, args.base_seed, single, ["--head-init-seeds", str(seed)]),
                          head_seed=seed, config=config, id=f"head{seed}")
            with lock:
                writer.write(result)
            return result

        todo = [s for s in range(1, args.candidates + 1) if f"head{s}" not in writer.done_ids]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(progress_loop(pool.map(candidate, todo), args, prefix="single-head runs", total=len(todo)))
    candidates = sorted((r for r in read_records(path) if r["head_seed"] <= args.candidates),
                        key=lambda r: r["head_seed"])
    key = f"{args.criterion}_accuracy"
    good = [r["head_seed"] for r in candidates if r[key][-1] >= args.good]
    bad = [r["head_seed"] for r in candidates if r[key][-1] <= args.bad]
    logger.info(f"good head seeds {good}, bad head seeds {bad}")
    configs = {"random": None}
    if len(bad) >= args.heads:
        configs["all_bad"] = bad[:args.heads]
    if good and len(bad) >= args.heads - 1:
        configs["one_good"] = [good[0]] + bad[:args.heads - 1]

    def heads_of(name, rep):
        """The head seeds of a configuration's repeat ``rep`` (None: unseeded, from --seed)."""
        if args.repeat_over == "seed" or name not in configs:
            return configs.get(name)
        draw = random.Random(rep)
        if name == "all_bad":
            return sorted(draw.sample(bad, args.heads))
        if name == "one_good":
            return [draw.choice(good)] + sorted(draw.sample(bad, args.heads - 1))
        return [args.candidates + (rep - 1) * args.heads + k for k in range(1, args.heads + 1)]
    path = os.path.join(args.results_path, "runs.jsonl")
    with driver_records(path, config, COMMAND, args.resume, args.overwrite) as writer:
        def multi(job):
            name, rep = job
            seeds = heads_of(name, rep)
            extra = [] if seeds is None else ["--head-init-seeds", ",".join(map(str, seeds))]
            result = one_run(args.mode, rep if args.repeat_over == "seed" else args.base_seed, args, extra)
            result.update(id=f"{name}/seed{rep}", config=config, head_seeds=seeds, repeat=rep)
            result["configuration"] = name
            with lock:
                writer.write(result)
            return result

        jobs = [(name, rep) for rep in range(1, args.repeats + 1) for name in configs
                if f"{name}/seed{rep}" not in writer.done_ids]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(progress_loop(pool.map(multi, jobs), args, prefix="multi-head runs", total=len(jobs)))
    wanted = {f"{name}/seed{rep}" for name in configs for rep in range(1, args.repeats + 1)}
    runs = [r for r in read_records(path) if r["id"] in wanted]
    lines = [f"single-head {args.criterion} accuracy at {args.max_update}: "
             + ", ".join(f"seed {r['head_seed']}: {r[key][-1]:.1f}" for r in candidates), "",
             f"good seeds (≥ {args.good}%): {good}; bad (≤ {args.bad}%): {bad}", ""]
    rows = []
    for name in configs:
        rs = sorted((r for r in runs if r["configuration"] == name), key=lambda r: r.get("repeat", r["seed"]))
        tok = ", ".join(f"{r['token_accuracy'][-1]:.1f}" for r in rs)
        att = ", ".join(f"{r['attention_accuracy'][-1]:.1f}" for r in rs)
        solved = sum(r["token_accuracy"][-1] >= SOLVED for r in rs)
        cell = _share(solved, len(rs)) if rs else "–"
        rows.append([name, len(rs), cell, tok, att])
    lines += markdown_table_lines([f"{args.heads}-head configuration", "runs",
                                   f"runs ≥ {SOLVED:.0f}% tokens [95% interval of the share]",
                                   f"token accuracy at {args.max_update}", "attention accuracy"], rows)
    missing = [c for c in ("all_bad", "one_good") if c not in configs]
    if missing:
        lines.append(f"\nnot run (not enough good/bad seeds among {args.candidates}): {', '.join(missing)}")
    table = "\n".join(lines) + f"\n\nwall time {time.time() - start:.0f} s with {args.jobs} parallel runs\n"
    write_atomic(os.path.join(args.results_path, "summary.md"), " ".join(sys.argv) + "\n\n" + table)
    print(table)


# ------------------------------------------------------------------------------------------------------------ main

def check_options(args):
    """The drivers' numbers, before any run starts."""
    check_counts(args, {"seeds": 1, "max_update": 1, "validate_every": 1, "seq_len": 1, "vocab_size": 1,
                        "train_size": 1, "valid_size": 1, "dim": 1, "heads": 1, "batch_size": 1, "jobs": 1,
                        "candidates": 1, "repeats": 1, "base_seed": 1})
    check_range(args.lr, "--lr", 0, strict_minimum=True)
    if args.command == "multihead-init":
        check_range(args.good, "--good", 0, 100)
        check_range(args.bad, "--bad", 0, 100)
    device_flags(args)  # --device cuda without a GPU: refused before any run


def add_common(parser, max_update, seq_len, vocab_size, train_size, valid_size, dim, lr, batch_size):
    """The options of a training run both figures share."""
    parser.add_argument("--max-update", type=int, default=max_update, help="updates per run (default: %(default)s)")
    parser.add_argument("--validate-every", type=int, default=50, help="validate every N updates (default: "
                                                                       "%(default)s)")
    parser.add_argument("--seq-len", type=int, default=seq_len, help="tokens per sequence (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=vocab_size,
                        help="content tokens (mixture uses at least 2 x seq-len; default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=train_size, help="training sequences (default: "
                                                                           "%(default)s)")
    parser.add_argument("--valid-size", type=int, default=valid_size, help="validation sequences (default: "
                                                                           "%(default)s)")
    parser.add_argument("--dim", type=int, default=dim, help="embedding, LSTM and output hidden size (default: "
                                                             "%(default)s)")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="default: %(default)s")
    parser.add_argument("--output-activation", choices=["relu", "tanh"], default="relu",
                        help="non-linearity of the output network (A.8: relu; the results in docs before it: tanh; "
                             "default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one CPU thread each (default: "
                                                            "%(default)s)")
    parser.add_argument("--results-path", required=True, help="results folder (required; created if missing)")
    parser.add_argument("--resume", action="store_true", help="keep the finished runs in the results folder's "
                                                              "records")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    add_device_argument(parser)
    add_progress_arguments(parser, log_interval=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f3 = sub.add_parser("figure3", help="accuracy vs updates over seeds, per input distribution (Figure 3)")
    f3.add_argument("--modes", nargs="+", default=["fixed_set", "sampled_set"],
                    choices=["fixed_set", "sampled_set", "mixture", "permute"], help="default: %(default)s")
    f3.add_argument("--seeds", type=int, default=5, help="seeds 1..N per mode (default: %(default)s)")
    f3.add_argument("--heads", type=int, default=1, help="attention heads (default: %(default)s)")
    add_common(f3, 300, 40, 60, 10000, 200, 64, 5e-3, 32)
    f3.set_defaults(func=figure3)
    mh = sub.add_parser("multihead-init", help="K-head models from good and bad single-head initializations "
                                               "(Figure 6)")
    mh.add_argument("--candidates", type=int, default=10,
                    help="single-head initialization seeds 1..N to classify (default: %(default)s)")
    mh.add_argument("--criterion", choices=["token", "attention"], default="token",
                    help="classify single-head runs by final token or attention accuracy (default: %(default)s)")
    mh.add_argument("--good", type=float, default=75.0, help="final accuracy (%%) of a good head, at least "
                                                             "(default: %(default)s)")
    mh.add_argument("--bad", type=float, default=65.0, help="final accuracy (%%) of a bad head, at most (default: "
                                                            "%(default)s)")
    mh.add_argument("--heads", type=int, default=8, help="heads K of the multi-head models (default: %(default)s)")
    mh.add_argument("--repeats", type=int, default=2, help="K-head runs per configuration, --seed 1..N (default: "
                                                           "%(default)s)")
    mh.add_argument("--repeat-over", choices=["seed", "heads"], default="seed",
                    help="what a configuration's repeats vary. seed: repeat r is --seed r (data and all other "
                         "parameters), the configuration's heads fixed; heads: every run has the single-head runs' "
                         "--base-seed and repeat r draws the configuration's heads with seed r (all_bad: K of the bad "
                         "seeds, one_good: one good and K-1 bad, random: K fresh unclassified head seeds) "
                         "(default: %(default)s)")
    mh.add_argument("--base-seed", type=int, default=1,
                    help="--seed (data and all parameters but W) of the single-head runs and, with --repeat-over "
                         "heads, of the K-head runs (default: %(default)s)")
    mh.add_argument("--mode", default="fixed_set", choices=["fixed_set", "sampled_set", "mixture", "permute"],
                    help="default: %(default)s")
    add_common(mh, 200, 10, 20, 2000, 200, 32, 1e-2, 50)
    mh.set_defaults(func=multihead_init)
    args = parser.parse_args(rename_options(sys.argv[1:] if argv is None else argv, {"--out": "--results-path"},
                                            COMMAND))
    check_options(args)
    args.func(args)


if __name__ == "__main__":
    script_main("permutation_copy", main)
