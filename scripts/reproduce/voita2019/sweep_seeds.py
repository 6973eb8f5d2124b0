#!/usr/bin/env python
"""Voita et al. (2019) Table 2 (or Figure 7) over seeds: the λ sweeps of ``prune_sweep.py`` (one ``--work`` per
``--seed``, the same data and options otherwise, ``--baseline-updates`` aside) per λ as mean ± sample sd over the
seeds, each seed's BLEU change against its own λ = 0 control with sacrebleu's paired bootstrap p-value, the models
trained from scratch (Table 2's last column) against the pruned ones, the heads' statistics and roles kept vs pruned,
and the paper's numbers beside the mean change of the run nearest each of its head shares (and, with ``--figure``, a
plot).

Reads each folder's ``sweep.json`` and ``sweep.settings.json`` (an older ``--work`` gets the latter by rerunning its
sweep command, which reuses every record); writes a markdown table (``--out``) and the values (``--json``).

    python scripts/reproduce/voita2019/sweep_seeds.py results/voita-seed{1,2,3} \\
        --out docs/results/voita2019-sweep-seeds.md --json docs/results/voita2019-sweep-seeds.json
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prune_sweep import SETTINGS, gated_kinds, heads_kept, paper_matches  # noqa: E402

from fairseq_interp.common.errors import InterpretError  # noqa: E402
from fairseq_interp.common.fairseq_runs import script_main  # noqa: E402
from fairseq_interp.common.jsonl import read_json_object  # noqa: E402
from fairseq_interp.common.figures import pyplot, save_figure  # noqa: E402
from fairseq_interp.common.outputs import (add_table_output_arguments, check_output_files,  # noqa: E402
                                           make_parent, write_table_outputs)
from fairseq_interp.common.paper_numbers import side_by_side  # noqa: E402
from fairseq_interp.common.provenance import check_same  # noqa: E402
from fairseq_interp.common.statistics import format_mean_sd, mean_sd  # noqa: E402
from fairseq_interp.common.tables import markdown_table_lines  # noqa: E402

KINDS = ("encoder_self", "decoder_self", "cross")
#: the heads' statistics compared kept vs pruned over all attention types (a specialised head: confident, positional)
COMPARED = ("confidence", "positional")
SIGNIFICANCE = 0.05
#: options that may differ between the seeds' sweeps: the seed, and the from-scratch runs' updates (each baseline's
#: updates to its best checkpoint plus the fine-tuning's give the pruned model's compute)
PER_SEED_OPTIONS = ("seed", "baseline_updates")


def load(folders):
    """``[(settings, rows)]`` of the sweeps; refused in one line if one is missing a record or they differ in more
    than the seed, the baseline trained with it and its from-scratch runs' updates (:data:`PER_SEED_OPTIONS`)."""
    sweeps = []
    for folder in folders:
        fix = f"run prune_sweep.py with --work {folder} (a rerun of its command reuses every record)"
        settings = read_json_object(os.path.join(folder, SETTINGS), "a sweep's settings", fix)
        if not isinstance(settings.get("options"), dict) or not {"seed", "gate_heads"} <= set(settings["options"]):
            raise InterpretError(f"{os.path.join(folder, SETTINGS)} is not a sweep's settings: {fix}")
        path = os.path.join(folder, "sweep.json")
        rows = read_json_object(path, "a sweep's records (a list, the baseline first)", fix, kind=list)
        if not rows or not isinstance(rows[0], dict) or rows[0].get("lambda") is not None:
            raise InterpretError(f"{path} is not a sweep's records (a list, the baseline first): {fix}")
        sweeps.append((settings, rows))
    seeds = [settings["options"]["seed"] for settings, _ in sweeps]
    if len(set(seeds)) != len(seeds):
        raise InterpretError(f"seeds {seeds}: each sweep must have its own --seed")
    shared = lambda s: {"data": s["data"], "options": {k: v for k, v in s["options"].items()  # noqa: E731
                                                       if k not in PER_SEED_OPTIONS}}
    for folder, (settings, _) in zip(folders[1:], sweeps[1:]):
        check_same(shared(sweeps[0][0]), shared(settings), f"the sweep in {folder}",
                   f"compare sweeps that differ only in --seed (their baselines and --baseline-updates), as "
                   f"{folders[0]}")
    return sweeps


def _change(row, rows):
    """``(BLEU change against the λ = 0 control or else the baseline, its paired-bootstrap p-value or None)``."""
    if row["lambda"] == 0:
        return None, None
    if "vs_control" in row:
        return row["vs_control"]["difference"], row["vs_control"]["p_value"]
    control = next((r for r in rows[1:] if r["lambda"] == 0), rows[0])
    return row["bleu"] - control["bleu"], None


def _scratch(row):
    """``(BLEU of the from-scratch model, from scratch − pruned, its paired-bootstrap p-value or None)`` (Table 2's
    last column; the difference of the rounded BLEU where a record has no paired test, as :func:`_change`), Nones
    without a from-scratch model."""
    if "bleu_from_scratch" not in row:
        return None, None, None
    if "scratch_vs_pruned" in row:
        test = row["scratch_vs_pruned"]
        return row["bleu_from_scratch"], test["difference"], test["p_value"]
    return row["bleu_from_scratch"], row["bleu_from_scratch"] - row["bleu"], None


def summarize(sweeps):
    """Per λ (of any seed, in increasing order): each seed's heads kept, BLEU, change against its control and
    p-value, BLEU from scratch and its difference to the pruned model with p-value (None where not trained), and per
    compared statistic the mean over the kept and over the pruned heads; the paper's rows with each seed's nearest
    run (:func:`prune_sweep.paper_matches`)."""
    seeds = [settings["options"]["seed"] for settings, _ in sweeps]
    gate_heads = sweeps[0][0]["options"]["gate_heads"]
    gated = gated_kinds(gate_heads)
    lambdas = sorted({r["lambda"] for _, rows in sweeps for r in rows[1:]})
    per_lambda = []
    for lam in lambdas:
        entry = {"lambda": lam, "seeds": [], "total_heads": [], "gated_heads": [], "heads": {k: [] for k in KINDS},
                 "bleu": [],
                 "change": [], "p_value": [], "scratch_bleu": [], "scratch_change": [], "scratch_p_value": [],
                 "statistics": {s: {"kept": [], "pruned": []} for s in COMPARED},
                 "survival": {}}
        for seed, (_, rows) in zip(seeds, sweeps):
            row = next((r for r in rows[1:] if r["lambda"] == lam), None)
            if row is None:
                continue
            change, p_value = _change(row, rows)
            entry["seeds"].append(seed)
            entry["total_heads"].append(row["total_heads"])
            entry["gated_heads"].append(heads_kept(row, gated))
            for kind in KINDS:
                entry["heads"][kind].append(sum(row["heads"][f"{kind}_heads"]))
            entry["bleu"].append(row["bleu"])
            entry["change"].append(change)
            entry["p_value"].append(p_value)
            for key, value in zip(("scratch_bleu", "scratch_change", "scratch_p_value"), _scratch(row)):
                entry[key].append(value)
            for role, counts in row.get("survival", {}).items():
                entry["survival"].setdefault(role, {})[str(seed)] = {"kept": counts["kept"], "heads": counts["heads"]}
            for stat in COMPARED:
                means = row.get("kept_vs_pruned", {}).get(stat, {}).get("all", {})
                for side in ("kept", "pruned"):
                    entry["statistics"][stat][side].append(means.get(side))
        per_lambda.append(entry)
    matches = {seed: paper_matches(rows, gate_heads) for seed, (_, rows) in zip(seeds, sweeps)}
    pruned = [(seed, rows) for seed, (_, rows) in zip(seeds, sweeps) if matches[seed]]  # seeds with a λ > 0
    paper = []
    for i, match in enumerate(matches[pruned[0][0]] if pruned else []):
        runs = []
        for seed, rows in pruned:
            row = matches[seed][i]["row"]
            change, p_value = _change(row, rows)
            _, scratch_change, scratch_p_value = _scratch(row)
            runs.append({"seed": seed, "lambda": row["lambda"], "total_heads": row["total_heads"],
                         "gated_heads": heads_kept(row, gated),
                         "change": change, "p_value": p_value,
                         "scratch_change": scratch_change, "scratch_p_value": scratch_p_value})
        paper.append({key: match[key] for key in ("name", "label", "share", "change", "scratch")} | {"runs": runs})
    return {"seeds": seeds, "baseline_bleu": [rows[0]["bleu"] for _, rows in sweeps],
            "baseline_updates": [settings["options"].get("baseline_updates") for settings, _ in sweeps],
            "gated_heads_total": next((r["gated_heads_total"] for r in sweeps[0][1][1:]), None),
            "lambdas": per_lambda, "paper": paper}


def _per_seed(values, digits=2, signed=False):
    return " / ".join("–" if v is None else f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}" for v in values)


def _mean(values, digits=2):
    present = [v for v in values if v is not None]
    return format_mean_sd(present, digits, count=False) if present else "–"


def _table(intro, header, rows):
    """Markdown lines: a blank line, ``intro``, a blank line, the table."""
    return ["", intro, "", *markdown_table_lines(header, rows)]


def markdown(summary, settings):
    seeds = summary["seeds"]
    options = settings["options"]
    lines = [f"Seeds {', '.join(map(str, seeds))}; per seed in that order, then mean ± sample sd over the seeds. "
             "BLEU change: pruned − the same seed's λ = 0 control (the baseline in a sweep without λ = 0) and its "
             "p-value, from sacrebleu's paired bootstrap (on unrounded BLEU, so it can differ from the rounded BLEU "
             "columns by 0.01)."
             + ("" if len(set(summary["baseline_updates"])) == 1
                else f" `--baseline-updates` per seed: {_per_seed(summary['baseline_updates'], 0)}."), ""]
    rows = [["baseline", len(seeds), "all", "all", "–", _per_seed(summary["baseline_bleu"]),
             _mean(summary["baseline_bleu"]), "–", "–", "–", "–"]]
    for e in summary["lambdas"]:
        n = len(e["seeds"])
        heads = " / ".join(f"{sum(e['heads'][k]) / n:.1f}" for k in KINDS)
        tested = [p for p in e["p_value"] if p is not None]
        which = n if n == len(seeds) else "only " + ", ".join(map(str, e["seeds"]))
        rows.append([f"{e['lambda']:g}", which, heads, _per_seed(e["total_heads"], 0), _mean(e["total_heads"], 1),
                     _per_seed(e["bleu"]), _mean(e["bleu"]), _per_seed(e["change"], signed=True),
                     _mean(e["change"]), _per_seed(e["p_value"], 3),
                     f"{sum(p < SIGNIFICANCE for p in tested)} of {len(tested)}" if tested else "–"])
    lines += markdown_table_lines(["λ", "seeds", "heads enc / dec / cross (mean)", "total heads",
                                   "total heads, mean ± sd", "BLEU", "BLEU, mean ± sd", "change",
                                   "change, mean ± sd", "p per seed", "p < 0.05"], rows)
    scratch = [e for e in summary["lambdas"] if any(v is not None for v in e["scratch_change"])]
    if scratch:
        rows = []
        for e in scratch:
            present = [i for i, v in enumerate(e["scratch_change"]) if v is not None]
            pick = lambda key: [e[key][i] for i in present]  # noqa: E731
            tested = [p for p in pick("scratch_p_value") if p is not None]
            rows.append([f"{e['lambda']:g}", ", ".join(str(e["seeds"][i]) for i in present),
                         _per_seed(pick("total_heads"), 0), _per_seed(pick("bleu")), _per_seed(pick("scratch_bleu")),
                         _mean(pick("scratch_bleu")), _per_seed(pick("scratch_change"), signed=True),
                         _mean(pick("scratch_change")), _per_seed(pick("scratch_p_value"), 3),
                         f"{sum(p < SIGNIFICANCE for p in tested)} of {len(tested)}" if tested else "–"])
        lines += _table("Trained from scratch with each seed's pruned head configuration (Table 2's last column; "
                        f"{_per_seed(summary['baseline_updates'], 0)} updates per seed, `--from-scratch`): BLEU, "
                        "and from scratch − pruned with sacrebleu's paired bootstrap p-value, per seed, then mean ± "
                        "sd:",
                        ["λ", "seeds", "total heads", "BLEU pruned", "BLEU from scratch",
                         "from scratch, mean ± sd", "from scratch − pruned", "mean ± sd", "p per seed",
                         "p < 0.05"], rows)
    compared = [e for e in summary["lambdas"] if any(v is not None for s in COMPARED
                                                      for v in e["statistics"][s]["pruned"])]
    if compared:
        rows = []
        for e in compared:
            cells = [f"{e['lambda']:g}"]
            for stat in COMPARED:
                pairs = [(k, p) for k, p in zip(e["statistics"][stat]["kept"], e["statistics"][stat]["pruned"])
                         if k is not None and p is not None]
                cells += [_mean(e["statistics"][stat]["kept"], 3), _mean(e["statistics"][stat]["pruned"], 3),
                          f"{sum(k > p for k, p in pairs)} of {len(pairs)}"]
            rows.append(cells)
        lines += _table("Mean statistic of the baseline's heads, kept / pruned (all attention types; `fairseq-interp "
                        "heads`), mean ± sd over the seeds, and the seeds whose kept heads have the higher mean:",
                        ["λ", *(f"{s}: {x}" for s in COMPARED for x in ("kept", "pruned", "kept higher"))], rows)
    surviving = [e for e in summary["lambdas"] if e["survival"]]
    if surviving:
        roles = list(dict.fromkeys(role for e in surviving for role in e["survival"]))
        rows = []
        for e in surviving:
            cells = [f"{e['lambda']:g}"]
            for role in roles:
                counts = e["survival"].get(role, {})
                kept, heads = sum(c["kept"] for c in counts.values()), sum(c["heads"] for c in counts.values())
                cells += [" / ".join(f"{c['kept']}/{c['heads']}" for c in counts.values()) or "–",
                          f"{kept}/{heads} ({100 * kept / heads:.0f} %)" if heads else "–"]
            rows.append(cells)
        lines += _table("Heads kept / heads of each role of the baseline (`fairseq-interp heads`; roles differ between "
                        "the seeds' baselines): per seed, then pooled over the seeds:",
                        ["λ", *(f"{role}: {x}" for role in roles for x in ("per seed", "pooled"))], rows)
    rows = []
    for match in summary["paper"]:
        runs = match["runs"]
        changes = [r["change"] for r in runs if r["change"] is not None]
        where = "; ".join(f"seed {r['seed']}: λ = {r['lambda']:g}, {r['gated_heads']} of "
                          f"{summary['gated_heads_total']} heads, {r['change']:+.2f}"
                          + ("" if r["p_value"] is None else f" (p = {r['p_value']:.3f})") for r in runs)
        mean, sd = mean_sd(changes) if changes else (None, None)
        rows.append((f"{match['name']}: BLEU change, pruned", match["change"], mean,
                     ("" if sd is None else f"sd {sd:.2f} over {len(changes)} seeds; ") + where))
        trained = [r for r in runs if r["scratch_change"] is not None]
        if match["scratch"] is not None and trained:
            mean, sd = mean_sd([r["scratch_change"] for r in trained])
            rows.append((f"Table 2, {match['label']}: from scratch − pruned", match["scratch"], mean,
                         ("" if sd is None else f"sd {sd:.2f} over {len(trained)} seeds; ") + "; ".join(
                             f"seed {r['seed']}: λ = {r['lambda']:g}, {r['scratch_change']:+.2f}"
                             + ("" if r["scratch_p_value"] is None else f" (p = {r['scratch_p_value']:.3f})")
                             for r in trained)))
    if rows:
        lines += ["", f"The paper's numbers beside the mean over the seeds of each seed's run nearest its share of "
                  f"heads ({options['finetune_updates']} L0 updates, lr "
                  f"{options['finetune_lr']}, gate lr ×{options['gate_lr_scale']:g}, test BLEU beam 5):", "",
                  side_by_side(rows)]
    return "\n".join(lines) + "\n"


def plot(summary, path):
    """BLEU change against each seed's λ = 0 control versus the share of (gated) heads kept, one line per seed,
    the paper's Table 2 (Figure 7) points beside them."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    total = summary["gated_heads_total"]
    for i, seed in enumerate(summary["seeds"]):
        points = sorted((100 * e["gated_heads"][j] / total, e["change"][j] or 0.0) for e in summary["lambdas"]
                        for j in [e["seeds"].index(seed)] if seed in e["seeds"])
        ax.plot(*zip(*points), "o-", color=f"C{i}", alpha=0.8, label=f"seed {seed} (pruned − λ = 0)")
    if summary["paper"]:
        ax.plot([100 * m["share"] for m in summary["paper"]], [m["change"] for m in summary["paper"]], "ks",
                label="Voita et al. (pruned − full)")
    ax.axhline(0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel(f"heads kept (% of {total})")
    ax.set_ylabel("BLEU change")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, make_parent(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", help="--work folders of prune_sweep.py, one per --seed")
    add_table_output_arguments(parser, "the per-seed values")
    parser.add_argument("--figure", metavar="PNG", help="plot the BLEU changes against the share of heads kept, the "
                        "paper's beside them (refused if it exists, unless --overwrite)")
    args = parser.parse_args()
    inputs = [os.path.join(f, name) for f in args.sweeps for name in (SETTINGS, "sweep.json")]
    check_output_files([args.out, args.json, args.figure], ["--out", "--json", "--figure"], args.overwrite, inputs)
    sweeps = load(args.sweeps)
    summary = summarize(sweeps)
    write_table_outputs(args, markdown(summary, sweeps[0][0]), summary)
    if args.figure:
        plot(summary, args.figure)


if __name__ == "__main__":
    sys.exit(script_main("sweep_seeds", main))
