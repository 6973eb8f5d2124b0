"""Voita et al. §4-5 on one model: the heads' relevance, confidence and roles under the paper's definitions
(``heads.json`` of ``fairseq-interp heads``), per layer, and the paper's numbers beside ours (Table 1, §5.1, §5.3).

    python scripts/reproduce/voita2019/head_roles.py --heads results/heads-ding-syntax/heads.json \
        --setting "demo model, 200 valid sentences" --out results/head-roles.md
"""

import argparse

from fairseq_interp.common.fairseq_runs import script_main
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.outputs import add_overwrite_argument, check_output_file
from fairseq_interp.common.paper_numbers import side_by_side
from fairseq_interp.common.statistics import Interval, format_interval
from fairseq_interp.common.tables import markdown_table
from fairseq_interp.heads.paper import analysis_rows
from fairseq_interp.heads.report import read_report
from fairseq_interp.heads.roles import value_with_interval


def _fmt(x, pattern="{:.2f}"):
    return "–" if x is None else pattern.format(x)


def _with_interval(head, name):
    """A head's statistic with its 95% interval over sentences when the report has one: ``0.83 [0.80, 0.86]``."""
    value, interval = value_with_interval(head, name)
    if interval is None:
        return _fmt(value)
    return format_interval(Interval(value, interval[0], interval[1], 0), digits=2)


def layer_table(report):
    """Markdown: per attention type and layer, the heads sorted by relevance (as the paper's Figures 1-2), each as
    relevance / confidence / most frequent offset and its share / rare_top2 (the last three with their 95% intervals
    over sentences when ``heads`` computed them), and the roles found."""
    table = []
    for kind, data in report["kinds"].items():
        for i, layer in enumerate(data["layers"]):
            heads = sorted(layer, key=lambda h: -(h.get("relevance") or 0))
            cells = [f"h{h['head']}: {_fmt(h.get('relevance'), '{:+.3f}')} / {_with_interval(h, 'confidence')} / "
                     + (f"{h['positional_offset']:+d} ({_with_interval(h, 'positional_share')})"
                        if h.get("positional_offset") is not None else "–")
                     + f" / {_with_interval(h, 'rare_top2')}" for h in heads]
            roles = sorted({f"h{h['head']} {r}" for h in layer for r in h.get("roles", [])})
            table.append([kind, i, "; ".join(cells), ", ".join(roles) or "none"])
    return markdown_table(["attention", "layer", "heads by relevance: relevance / confidence / offset (share) / rare "
                           "top-2, [95% interval over sentences]", "roles"], table) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", required=True, help="heads.json of fairseq-interp heads")
    ap.add_argument("--setting", default="", help="our setting, printed beside the paper's numbers")
    ap.add_argument("--out", help="also write the tables here (refused if it exists, unless --overwrite)")
    add_overwrite_argument(ap)
    args = ap.parse_args()
    if args.out:
        check_output_file(args.out, "--out", args.overwrite, inputs=[args.heads])
    report = read_report(args.heads)
    text = layer_table(report) + "\n" + side_by_side(analysis_rows(report, args.setting)) + "\n"
    if args.out:
        write_atomic(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    script_main("head_roles", main)
