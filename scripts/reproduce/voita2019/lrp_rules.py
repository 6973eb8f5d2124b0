"""Two LRP rules on one model: do they rank the heads alike, and which ranking predicts the heads the L0 gates keep?

Reads ``heads.json`` of ``fairseq-interp heads`` run with different ``--lrp-rule`` values on the same (unpruned)
model and, optionally, gated checkpoints fine-tuned from it with the L0 penalty (``prune_sweep.py``). Prints and
writes (``--out``) two markdown tables: the rank correlation of head relevance between every pair of rules
(scipy's Kendall τ-b and Spearman ρ, over all heads and within layers) and, per gated checkpoint and rule, the AUC
of relevance for telling kept from pruned heads (``heads.survival.kept_prediction``).

    python scripts/reproduce/voita2019/lrp_rules.py --heads ding=results/h-ding/heads.json \
        conservative=results/h-cons/heads.json --gated results/voita-demo-c20/l0-0.02/checkpoint_last.pt \
        --out results/lrp-rules.md
"""

import argparse
import itertools
import os

from fairseq_interp.common.checkpoints import read_raw_checkpoint
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import script_main
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.outputs import add_overwrite_argument, check_output_file
from fairseq_interp.common.tables import markdown_table_lines
from fairseq_interp.heads.report import read_report
from fairseq_interp.heads.survival import kept_prediction, open_head_masks, rank_agreement


def _fmt(x):
    return "–" if x is None else f"{x:.3f}"


def tables(reports, gated):
    """Markdown of the two tables for ``reports`` = ``{rule: heads.json dict}`` and ``gated`` = ``{name: masks}``."""
    agreements = [[f"{a} vs {b}", kind, r["heads"], _fmt(r["kendall_tau"]), _fmt(r["spearman_rho"]),
                   _fmt(r["layer_kendall_tau"])]
                  for (a, ra), (b, rb) in itertools.combinations(reports.items(), 2)
                  for kind, r in rank_agreement(ra, rb).items()]
    lines = markdown_table_lines(["rules", "attention", "heads", "Kendall τ", "Spearman ρ",
                                  "Kendall τ within layers (mean)"], agreements)
    if gated:
        table = []
        for name, masks in gated.items():
            predictions = {rule: kept_prediction(report, masks) for rule, report in reports.items()}
            for kind, first in next(iter(predictions.values())).items():
                table.append([name, kind, f"{first['n_kept']} / {first['n_pruned']}",
                              *(_fmt(p[kind]["auc"]) for p in predictions.values())])
        lines += ["", *markdown_table_lines(["gated checkpoint", "attention", "heads kept / pruned",
                                             *(f"AUC {rule}" for rule in reports)], table)]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", nargs="+", required=True, metavar="RULE=HEADS_JSON",
                    help="heads.json of fairseq-interp heads per LRP rule, on the same model")
    ap.add_argument("--gated", nargs="*", default=[], help="gated checkpoints fine-tuned from that model")
    ap.add_argument("--out", help="also write the tables here (refused if it exists, unless --overwrite)")
    add_overwrite_argument(ap)
    args = ap.parse_args()
    reports, paths = {}, []
    for item in args.heads:
        rule, sep, path = item.partition("=")
        if not sep or not rule or not path:
            raise InterpretError(f"--heads {item!r}: pass RULE=PATH with the heads.json of that rule")
        if rule in reports:
            raise InterpretError(f"--heads names rule {rule!r} twice: pass one heads.json per rule")
        reports[rule] = read_report(path)
        paths.append(path)
    if len(reports) < 2:
        raise InterpretError("--heads needs the reports of at least two rules")
    if args.out:
        check_output_file(args.out, "--out", args.overwrite, inputs=paths + list(args.gated))
    gated = {os.path.relpath(path): open_head_masks(read_raw_checkpoint(path), path) for path in args.gated}
    text = tables(reports, gated)
    if args.out:
        write_atomic(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    script_main("lrp_rules", main)
