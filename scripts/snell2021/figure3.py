#!/usr/bin/env python
"""Snell et al. (2021) Figure 3 at small scale: permutation-copy accuracy vs updates over seeds, per input
distribution (fixed_set, sampled_set, mixture, permute), each run a ``fairseq-train`` of ``lstm_dot_attention`` on
the ``permutation_copy`` task; runs go in parallel (``--jobs``, one thread each).

    python scripts/snell2021/figure3.py --modes fixed_set sampled_set --seeds 5 --max-update 300 --jobs 2 \
        --out results/snell2021-figure3

Writes OUT/runs.jsonl (one validation curve per run, appended as each run ends), OUT/summary.md and
OUT/figure3.png. ``--resume`` keeps the finished runs of an interrupted sweep and runs the others.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def train_command(mode, seed, args, extra=()):
    vocab = args.vocab_size if mode != "mixture" else max(args.vocab_size, 2 * args.seq_len)
    return [os.path.join(BIN, "fairseq-train"), "--user-dir", os.path.join(REPO, "fairseq_interp"),
            "--task", "permutation_copy", "--perm-mode", mode, "--seq-len", str(args.seq_len),
            "--vocab-size", str(vocab), "--train-size", str(args.train_size), "--valid-size", str(args.valid_size),
            "--data-seed", str(seed), "--seed", str(seed), "--arch", "lstm_dot_attention",
            "--embed-dim", str(args.dim), "--hidden-size", str(args.dim), "--output-hidden-dim", str(args.dim),
            "--attention-heads", str(args.heads), "--optimizer", "adam", "--lr", str(args.lr),
            "--criterion", "cross_entropy", "--batch-size", str(args.batch_size), "--max-update", str(args.max_update),
            "--validate-interval-updates", str(args.validate_every), "--validate-interval", "1000",
            "--required-batch-size-multiple", "1", "--cpu", "--no-save", "--no-progress-bar", "--log-format", "json",
            *extra]


def one_run(mode, seed, args, extra=()):
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(train_command(mode, seed, args, extra), capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} seed {seed} failed:\n{proc.stderr[-2000:]}")
    curve = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        if "| valid |" in line:
            log = json.loads(line.split("| valid |", 1)[1])
            curve[int(log["valid_num_updates"])] = (float(log["valid_token_accuracy"]),
                                                    float(log["valid_attention_accuracy"]))
    steps = sorted(curve)
    return {"id": f"{mode}/seed{seed}", "mode": mode, "seed": seed, "steps": steps, "token_accuracy": [curve[s][0] for s in steps],
            "attention_accuracy": [curve[s][1] for s in steps], "seconds": round(time.time() - start, 1)}


def summarize(runs, args):
    import numpy as np

    lines = [f"| mode | seeds | token accuracy at {args.max_update} (mean ± sd) | attention accuracy | "
             f"seeds ≥ 90% tokens | seconds per run |", "|---|---|---|---|---|---|"]
    for mode in args.modes:
        rs = [r for r in runs if r["mode"] == mode]
        tok = np.array([r["token_accuracy"][-1] for r in rs])
        att = np.array([r["attention_accuracy"][-1] for r in rs])
        lines.append(f"| {mode} | {len(rs)} | {tok.mean():.1f} ± {tok.std():.1f} | {att.mean():.1f} ± {att.std():.1f} "
                     f"| {(tok >= 90).sum()}/{len(rs)} | {np.mean([r['seconds'] for r in rs]):.1f} |")
    return "\n".join(lines) + "\n"


def plot(runs, modes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", default=["fixed_set", "sampled_set"],
                   choices=["fixed_set", "sampled_set", "mixture", "permute"])
    p.add_argument("--seeds", type=int, default=5, help="seeds 1..N per mode")
    p.add_argument("--max-update", type=int, default=300)
    p.add_argument("--validate-every", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=40)
    p.add_argument("--vocab-size", type=int, default=60, help="(mixture uses at least 2 x seq-len)")
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--valid-size", type=int, default=200)
    p.add_argument("--dim", type=int, default=64, help="embedding, LSTM and output hidden size")
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="keep the finished runs in OUT/runs.jsonl")
    args = p.parse_args()
    sys.path.insert(0, REPO)
    from fairseq_interp.errors import InterpretError
    from fairseq_interp.report.jsonl import JsonlWriter, read_records, write_atomic

    os.makedirs(args.out, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("modes", "seeds", "jobs", "out", "resume")}
    path = os.path.join(args.out, "runs.jsonl")
    try:
        writer = JsonlWriter(path, resume=args.resume)
    except InterpretError as e:
        sys.exit(f"figure3: error: {e}".replace("--results-path", "--out"))
    old = [r for r in read_records(path) if r["id"] in writer.done_ids] if writer.done_ids else []
    if any(r.get("config") != config for r in old):
        sys.exit(f"figure3: error: {path} holds runs with other settings; choose another --out")
    start, lock = time.time(), threading.Lock()
    jobs = [(m, s) for m in args.modes for s in range(1, args.seeds + 1) if f"{m}/seed{s}" not in writer.done_ids]
    print(f"{len(jobs)} runs to do, {len(writer.done_ids)} kept", flush=True)

    def do(job):
        run = dict(one_run(*job, args), config=config)
        with lock:
            writer.write(run)
            print(f"{run['id']}: tokens {run['token_accuracy'][-1]:.1f}% in {run['seconds']} s", flush=True)
        return run

    with writer, ThreadPoolExecutor(args.jobs) as pool:
        new = list(pool.map(do, jobs))
    wall = time.time() - start
    wanted = {f"{m}/seed{s}" for m in args.modes for s in range(1, args.seeds + 1)}
    runs = [r for r in old + new if r["id"] in wanted]
    table = summarize(runs, args)
    write_atomic(os.path.join(args.out, "summary.md"),
                 f"{' '.join(sys.argv)}\n\n{table}\nwall time {wall:.0f} s for {len(new)} runs with {args.jobs} "
                 f"parallel runs\n")
    plot(runs, args.modes, os.path.join(args.out, "figure3.png"))
    print(table + f"wall time {wall:.0f} s for {len(new)} runs with {args.jobs} parallel runs; results in {args.out}")


if __name__ == "__main__":
    main()
