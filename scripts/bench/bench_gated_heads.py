"""Benchmarks of the gated-head Transformer (Voita et al. 2019): gate overhead in training, speed and size of pruned exports.

1. Training: ``fairseq-train`` of ``transformer_multi30k`` (label-smoothed CE) vs ``transformer_gated_heads_multi30k``
   (+ L0 criterion) for ``--updates`` updates, alternating, ``--repeats`` times; fairseq's "done training in" time
   (model set-up excluded), minimum over repeats.
2. Decoding: a plain and a gated checkpoint (1 update each, so the weights are arbitrary but the shapes real), gates
   closed for a given fraction of heads, exported with ``fairseq-interp prune-export``; ``fairseq-generate`` beam 5
   on the test split with every hypothesis forced to the same length (``--min-len = --max-len-b``), so all models
   do the same number of steps; fairseq's own "Translated ... in Xs" time, minimum over repeats; file sizes.

Usage (CPU, one thread; prepares Multi30k En-Fr 10k into --work if missing):
    python scripts/bench/bench_gated_heads.py --work /tmp/bench-heads --out docs/bench_gated_heads.json
"""

import argparse
import json
import os
import re
import sys

import torch

from fairseq_interp.common.checkpoints import PLUGIN_DIR
from fairseq_interp.common.fairseq_runs import REPO, run


def sh(cmd):
    return run(cmd, threads=1)


def train(data, arch, updates, save_dir=None, extra=()):
    cmd = ["fairseq-train", data, "--user-dir", PLUGIN_DIR, "--arch", arch,
           "--optimizer", "adam", "--lr", "5e-4", "--label-smoothing", "0.1", "--max-tokens", "4000",
           "--max-update", str(updates), "--cpu", "--disable-validation", "--seed", "1", "--log-format", "simple",
           "--no-epoch-checkpoints", *extra]
    cmd += ["--save-dir", save_dir] if save_dir else ["--no-save"]
    out = sh(cmd)
    return float(re.search(r"done training in ([0-9.]+) seconds", out).group(1))


def close_heads(ckpt, out, keep):
    """Open exactly ``keep[kind]`` heads (the first ones) of every layer; close the rest."""
    state = torch.load(ckpt)
    for key, value in state["model"].items():
        if key.endswith("head_gate.log_alpha"):
            kind = "cross" if "encoder_attn" in key else ("encoder" if key.startswith("encoder") else "decoder")
            new = torch.full_like(value, -5.0)
            new[: keep[kind]] = 5.0
            state["model"][key] = new
    torch.save(state, out)


def strip_optimizer(ckpt, out):
    """Same checkpoint without Adam's state, as prune-export writes it: file sizes compare like with like."""
    state = torch.load(ckpt)
    state["last_optimizer_state"] = None
    torch.save(state, out)


def generate(data, ckpt, length, sentences):
    out = sh(["fairseq-generate", data, "--user-dir", PLUGIN_DIR, "--path", ckpt,
              "--gen-subset", "test", "--beam", "5", "--batch-size", "32", "--cpu", "--min-len", str(length),
              "--max-len-a", "0", "--max-len-b", str(length)])
    m = re.search(r"Translated ([0-9,]+) sentences \(([0-9,]+) tokens\) in ([0-9.]+)s", out)
    return float(m.group(3)), int(m.group(2).replace(",", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench-gated-heads")
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--length", type=int, default=25, help="forced hypothesis length")
    ap.add_argument("--skip-train", action="store_true", help="only the decoding benchmark")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    data_root = os.path.join(args.work, "m30k-10k.en-fr")
    if not os.path.isdir(os.path.join(data_root, "bin")):
        sh([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), "--src", "en", "--tgt", "fr",
            "--out", data_root,
            "--train-size", "10000", "--valid-size", "500", "--test-size", "200", "--vocab-size", "4000"])
    data = os.path.join(data_root, "bin")
    results = {"threads": 1, "updates": args.updates, "repeats": args.repeats}

    l0 = ["--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "0.05"]
    times = {"plain": [], "gated": []}
    for _ in range(0 if args.skip_train else args.repeats):
        times["plain"].append(train(data, "transformer_multi30k", args.updates,
                                    extra=["--criterion", "label_smoothed_cross_entropy"]))
        times["gated"].append(train(data, "transformer_gated_heads_multi30k", args.updates, extra=l0))
    if not args.skip_train:
        results["train_seconds"] = times
        results["train_overhead"] = min(times["gated"]) / min(times["plain"])
        print(f"| training {args.updates} updates: plain {min(times['plain']):.1f}s, gated {min(times['gated']):.1f}s "
              f"-> overhead x{results['train_overhead']:.3f}")

    ckpts = os.path.join(args.work, "ckpts")
    train(data, "transformer_multi30k", 1, os.path.join(ckpts, "plain"),
          extra=["--criterion", "label_smoothed_cross_entropy"])
    train(data, "transformer_gated_heads_multi30k", 1, os.path.join(ckpts, "gated"), extra=l0)
    plain = os.path.join(ckpts, "plain.pt")
    strip_optimizer(os.path.join(ckpts, "plain", "checkpoint_last.pt"), plain)
    configs = {"50%": {"encoder": 2, "decoder": 2, "cross": 2},   # 18 of 36 heads removed
               "75%": {"encoder": 1, "decoder": 1, "cross": 1}}   # 27 of 36
    results["decode"] = {}
    for name, keep in configs.items():
        gated = os.path.join(ckpts, f"gated-{name[:-1]}.pt")
        pruned = os.path.join(ckpts, f"pruned-{name[:-1]}.pt")
        close_heads(os.path.join(ckpts, "gated", "checkpoint_last.pt"), gated, keep)
        strip_optimizer(gated, gated)
        sh(["fairseq-interp", "prune-export", "--path", gated, "--out", pruned])
        t = {"plain": [], "gated": [], "pruned": []}
        for _ in range(args.repeats):
            for label, path in (("plain", plain), ("gated", gated), ("pruned", pruned)):
                t[label].append(generate(data, path, args.length, 200)[0])
        sizes = {label: os.path.getsize(p) for label, p in (("plain", plain), ("gated", gated), ("pruned", pruned))}
        params = {label: sum(v.numel() for v in torch.load(p)["model"].values() if torch.is_tensor(v))
                  for label, p in (("plain", plain), ("pruned", pruned))}
        entry = {"heads_kept_per_layer": keep, "seconds": t, "bytes": sizes, "parameters": params,
                 "speedup_vs_plain": min(t["plain"]) / min(t["pruned"]),
                 "speedup_vs_gated": min(t["gated"]) / min(t["pruned"])}
        results["decode"][name] = entry
        print(f"| decode 200 sentences, beam 5, length {args.length}, {name} heads removed: plain "
              f"{min(t['plain']):.2f}s, gated {min(t['gated']):.2f}s, pruned {min(t['pruned']):.2f}s -> x"
              f"{entry['speedup_vs_plain']:.2f} vs plain; parameters {params['plain']} -> {params['pruned']}; "
              f"file {sizes['plain']} -> {sizes['pruned']} bytes")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
