"""Figure 6 table and figure from a multihead-init results folder: per configuration the runs that learn (final token
accuracy >= the driver's SOLVED threshold) with the exact binomial 95% interval (scipy.stats.binomtest).
Writes FOLDER/table.json and FOLDER/figure6.png. Usage: python docs/results/snell2021-figure6/table.py FOLDER"""
import json
import os
import sys

from scipy.stats import binomtest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts",
                                "reproduce", "snell2021"))
from permutation_copy import SOLVED  # noqa: E402

folder = sys.argv[1]
runs = [json.loads(l) for l in open(f"{folder}/runs.jsonl")]
cands = sorted((json.loads(l) for l in open(f"{folder}/candidates.jsonl")), key=lambda r: r["head_seed"])
out = {"solved_threshold_token_accuracy": SOLVED, "configurations": {}}
print(f"| configuration | runs | learn (≥ {SOLVED:.0f}% tokens) | share [exact 95% interval] | ≥ 90% attention | "
      f"distinct head sets | first update ≥ {SOLVED:.0f}% tokens (learners) |")
print("|---|---|---|---|---|---|---|")
for name, colour in (("all_bad", "tab:red"), ("one_good", "tab:blue"), ("random", "tab:green")):
    rs = sorted((r for r in runs if r["configuration"] == name), key=lambda r: r["repeat"])
    if not rs:
        continue
    k, n = sum(r["token_accuracy"][-1] >= SOLVED for r in rs), len(rs)
    att = sum(r["attention_accuracy"][-1] >= 90 for r in rs)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    first = [next(s for s, a in zip(r["steps"], r["token_accuracy"]) if a >= SOLVED) for r in rs
             if r["token_accuracy"][-1] >= SOLVED]
    distinct = len({tuple(r["head_seeds"]) for r in rs})
    out["configurations"][name] = {"runs": n, "learn": k, "share": k / n, "ci_low": ci.low, "ci_high": ci.high,
                                   "attention_ge_90": att, "distinct_head_sets": distinct, "first_update": first,
                                   "final_token_accuracy": [r["token_accuracy"][-1] for r in rs],
                                   "final_attention_accuracy": [r["attention_accuracy"][-1] for r in rs]}
    print(f"| {name} | {n} | {k}/{n} | {100 * k / n:.0f}% [{100 * ci.low:.0f}, {100 * ci.high:.0f}%] | {att}/{n} | "
          f"{distinct} | {sorted(first)} |")
json.dump(out, open(f"{folder}/table.json", "w"), indent=1)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for r in cands:
    axes[0].plot(r["steps"], r["attention_accuracy"], color="0.4", alpha=0.6)
axes[0].set_title(f"single-head candidates ({len(cands)}): attention accuracy")
for name, colour in (("all_bad", "tab:red"), ("one_good", "tab:blue"), ("random", "tab:green")):
    for i, r in enumerate(r for r in runs if r["configuration"] == name):
        axes[1].plot(r["steps"], r["token_accuracy"], color=colour, alpha=0.45, label=name if i == 0 else None)
axes[1].set_title("8-head runs: token accuracy")
axes[1].legend()
for ax in axes:
    ax.set_xlabel("updates")
axes[0].set_ylabel("accuracy (%)")
fig.tight_layout()
fig.savefig(f"{folder}/figure6.png", dpi=100)
