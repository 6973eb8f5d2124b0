#!/usr/bin/env python
"""Snell et al. (2021) Figure 6 at small scale: multi-head attention escapes a hard distribution through learning
dynamics. On ``fixed_set`` copying, single-head initializations of the attention matrix W are rejection-sampled as
*good* (the single-head model learns to attend) or *bad* (it does not); then K-head models are built from K bad
heads (``all_bad``), one good and K−1 bad heads (``one_good``) and unseeded heads (``random``) with
``--head-init-seeds``, and trained the same way. All other parameters come from ``--seed``.

    python scripts/snell2021/multihead_init.py --candidates 10 --heads 8 --repeats 2 --jobs 2 --out results/fig6

Writes OUT/candidates.jsonl, OUT/runs.jsonl and OUT/summary.md.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figure3 import one_run  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=10, help="single-head initialization seeds 1..N to classify")
    p.add_argument("--criterion", choices=["token", "attention"], default="token",
                   help="classify single-head runs by final token or attention accuracy")
    p.add_argument("--good", type=float, default=75.0, help="final accuracy (%%) of a good head, at least")
    p.add_argument("--bad", type=float, default=65.0, help="final accuracy (%%) of a bad head, at most")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="K-head runs per configuration (--seed 1..N)")
    p.add_argument("--mode", default="fixed_set")
    p.add_argument("--max-update", type=int, default=200)
    p.add_argument("--validate-every", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=10)
    p.add_argument("--vocab-size", type=int, default=20)
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--valid-size", type=int, default=200)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.time()

    single = dict(args.__dict__)
    with ThreadPoolExecutor(args.jobs) as pool:
        candidates = list(pool.map(lambda s: one_run(args.mode, 1, argparse.Namespace(**{**single, "heads": 1}),
                                                     ["--head-init-seeds", str(s)]),
                                   range(1, args.candidates + 1)))
    for seed, run in zip(range(1, args.candidates + 1), candidates):
        run["head_seed"] = seed
    with open(os.path.join(args.out, "candidates.jsonl"), "w") as f:
        for run in candidates:
            f.write(json.dumps(run) + "\n")
    key = f"{args.criterion}_accuracy"
    good = [r["head_seed"] for r in candidates if r[key][-1] >= args.good]
    bad = [r["head_seed"] for r in candidates if r[key][-1] <= args.bad]
    print(f"| good head seeds {good}, bad head seeds {bad}")
    configs = {"random": None}
    if len(bad) >= args.heads:
        configs["all_bad"] = bad[:args.heads]
    if good and len(bad) >= args.heads - 1:
        configs["one_good"] = [good[0]] + bad[:args.heads - 1]
    jobs = [(name, rep) for name in configs for rep in range(1, args.repeats + 1)]

    def multi(job):
        name, rep = job
        extra = [] if configs[name] is None else ["--head-init-seeds", ",".join(map(str, configs[name]))]
        run = one_run(args.mode, rep, args, extra)
        run.update(config=name, head_seeds=configs[name])
        return run

    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(multi, jobs))
    with open(os.path.join(args.out, "runs.jsonl"), "w") as f:
        for run in runs:
            f.write(json.dumps(run) + "\n")
    lines = [f"single-head {args.criterion} accuracy at {args.max_update}: "
             + ", ".join(f"seed {r['head_seed']}: {r[key][-1]:.1f}" for r in candidates), "",
             f"good seeds (≥ {args.good}%): {good}; bad (≤ {args.bad}%): {bad}", "",
             f"| {args.heads}-head configuration | runs | token accuracy at {args.max_update} | attention accuracy |",
             "|---|---|---|---|"]
    for name in configs:
        rs = [r for r in runs if r["config"] == name]
        tok = ", ".join(f"{r['token_accuracy'][-1]:.1f}" for r in rs)
        att = ", ".join(f"{r['attention_accuracy'][-1]:.1f}" for r in rs)
        lines.append(f"| {name} | {len(rs)} | {tok} | {att} |")
    missing = [c for c in ("all_bad", "one_good") if c not in configs]
    if missing:
        lines.append(f"\nnot run (not enough good/bad seeds among {args.candidates}): {', '.join(missing)}")
    table = "\n".join(lines) + f"\n\nwall time {time.time() - start:.0f} s with {args.jobs} parallel runs\n"
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(" ".join(sys.argv) + "\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
