"""Zhu et al. (2020): how well does the mini-batch LCA approximation rank the groups like exact LCA does?

Trains the same model twice with the same seed, once recording LCA with a sampled batch B' per update (the
approximation, default options) and once with ``--lca-exact`` (gradient over the whole training split). LCA
recording does not change training (the weights are identical, see user_dir_tests/lca/test_lca.py), so both runs
allocate the same steps. Reports the Kendall τ between the groups' rankings by cumulative LCA (sum and mean per
parameter); the paper reports 0.905.

    python scripts/prepare_data.py --src en --tgt de --train-size 10000 --out data/m30k-10k.en-de
    OMP_NUM_THREADS=1 python scripts/reproduce/zhu2020/lca_approximation.py --data data/m30k-10k.en-de/bin --updates 300

Exact mode runs a forward/backward over the whole split at every update: keep the data and model small.
"""

import argparse
import json
import os
import tempfile

from fairseq_interp.common.checkpoints import PLUGIN_DIR
from fairseq_interp.common.fairseq_runs import run, script_main
from fairseq_interp.lca.figures import cumulative, load_run


def kendall_tau(a, b):
    """Kendall τ-b of two score lists (``scipy.stats.kendalltau``)."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def train(args, lca_dir, extra):
    run(["fairseq-train", args.data, "--user-dir", PLUGIN_DIR, "--task", "translation_lca", "--lca-dir", lca_dir,
         "--lca-interval", str(args.interval), "--arch", args.arch, *args.model_args.split(), "--optimizer", "adam",
         "--adam-betas", "(0.9,0.98)", "--lr", str(args.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates",
         str(args.warmup), "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
         "--max-tokens", str(args.max_tokens), "--max-update", str(args.updates), "--cpu", "--seed", "1",
         "--disable-validation", "--no-progress-bar", "--no-save", *extra])


def finished(records, updates):
    """Whether the LCA file ``records`` holds a complete interval ending at update ``updates`` (a run stopped
    later also counts: recording LCA does not change training, so its first ``updates`` updates are the same)."""
    if not os.path.exists(records):
        return False
    with open(records) as f:
        for line in f:
            record = json.loads(line)
            if record.get("type") == "interval" and record.get("end") == updates and not record.get("partial"):
                return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="binarized training data (fairseq-preprocess output)")
    parser.add_argument("--arch", default="transformer_test_tiny")
    parser.add_argument("--model-args", default="--encoder-layers 3 --decoder-layers 3 --encoder-embed-dim 64 "
                        "--decoder-embed-dim 64 --encoder-ffn-embed-dim 128 --decoder-ffn-embed-dim 128 "
                        "--max-source-positions 128 --max-target-positions 128")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", help="also write the result as JSON here")
    parser.add_argument("--work", help="keep each mode's LCA records here; a mode whose records already reach "
                                       "--updates is not trained again (default: a fresh temporary folder)")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="zhu2020-")
    runs = {}
    exact = ["--lca-exact", "--lca-max-tokens", str(args.max_tokens)]  # full batches: the pass is over all data
    for mode, extra in (("exact", exact), ("approx", [])):
        lca_dir = os.path.join(work, mode)
        records = os.path.join(lca_dir, "lca.jsonl")
        if not finished(records, args.updates):
            if os.path.exists(records):
                os.replace(records, records + ".unfinished")  # a partial run is redone from update 1
            train(args, lca_dir, extra)
        header, intervals = load_run(records)
        intervals = [r for r in intervals if r["end"] <= args.updates]  # a longer run compared over its start
        runs[mode] = (header, intervals)
        print(f"| {mode}: {len(intervals)} intervals, B' = {header['options']['max_tokens']} tokens"
              f"{' (whole split)' if header['options']['exact'] else ''}", flush=True)
    header = runs["exact"][0]
    names = [g["name"] for g in header["groups"]]
    sizes = {g["name"]: g["size"] for g in header["groups"]}
    sums = {m: cumulative(runs[m][1])[0] for m in runs}
    result = {"groups": names, "updates": args.updates, "data": args.data,
              "cumulative_sum": {m: [sums[m][n] for n in names] for m in runs}}
    result["tau_sum"] = kendall_tau(result["cumulative_sum"]["approx"], result["cumulative_sum"]["exact"])
    result["tau_mean"] = kendall_tau([sums["approx"][n] / sizes[n] for n in names],
                                     [sums["exact"][n] / sizes[n] for n in names])
    # per interval (Figure 4's interval LCA): rankings of one interval's groups, a harder test than the sums
    per_interval = []
    for a, e in zip(runs["approx"][1], runs["exact"][1]):
        if a["end"] == e["end"]:
            per_interval.append({"end": a["end"], "tau": kendall_tau([a["groups"][n]["sum"] for n in names],
                                                                      [e["groups"][n]["sum"] for n in names])})
    result["tau_per_interval"] = per_interval
    buckets = {m: cumulative(runs[m][1])[1] for m in runs}
    result["tau_buckets"] = {g: kendall_tau(buckets["approx"][g], buckets["exact"][g]) for g in buckets["exact"]}
    print(f"| {'group':22s} {'approx':>12s} {'exact':>12s}")
    for n in names:
        print(f"| {n:22s} {sums['approx'][n]:12.5f} {sums['exact'][n]:12.5f}")
    print(f"| Kendall tau of group rankings: by sum {result['tau_sum']:.3f}, by mean per parameter "
          f"{result['tau_mean']:.3f} (Zhu et al.: 0.905)")
    print("| Kendall tau of group rankings per interval: "
          + ", ".join(f"{r['end']}: {r['tau']:.3f}" for r in per_interval))
    print("| Kendall tau of frequency-bucket rankings: "
          + ", ".join(f"{g} {t:.3f}" for g, t in result["tau_buckets"].items()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    script_main("lca_approximation", main)
