#!/usr/bin/env python
"""Snell et al. (2021) Figure 3 at small scale: permutation-copy accuracy vs updates over seeds, per input
distribution (fixed_set, sampled_set, mixture, permute), each run a ``fairseq-train`` of ``lstm_dot_attention`` on
the ``permutation_copy`` task; runs go in parallel (``--jobs``, one thread each).

    python scripts/snell2021/figure3.py --modes fixed_set sampled_set --seeds 5 --max-update 300 --jobs 2 \
        --out results/snell2021-figure3

Writes OUT/runs.jsonl (one validation curve per run), OUT/summary.md and OUT/figure3.png.
"""

import argparse
import json
import os
import subprocess
import sys
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
    return {"mode": mode, "seed": seed, "steps": steps, "token_accuracy": [curve[s][0] for s in steps],
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
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    jobs = [(m, s) for m in args.modes for s in range(1, args.seeds + 1)]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: one_run(*job, args), jobs))
    wall = time.time() - start
    with open(os.path.join(args.out, "runs.jsonl"), "w") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")
    table = summarize(runs, args)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"{' '.join(sys.argv)}\n\n{table}\nwall time {wall:.0f} s with {args.jobs} parallel runs\n")
    plot(runs, args.modes, os.path.join(args.out, "figure3.png"))
    print(table + f"wall time {wall:.0f} s with {args.jobs} parallel runs; results in {args.out}")


if __name__ == "__main__":
    main()
