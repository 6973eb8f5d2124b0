#!/usr/bin/env python
"""Snell et al. (2021) Table 2 / Table 5's SST row and Table 10's over seed sets: reads the results folders of
``classification.py sst2`` (one per ``--seeds`` set, the same options otherwise) and writes each set's numbers with
their 95 % intervals over sentences, their mean ± sd over the sets beside the paper's, and, per agreement, in how many
sets its interval lies above the random baseline Â (the paper's claim: attention agrees with the probes far above
chance).

    python scripts/reproduce/snell2021/sst2_seeds.py results/snell2021-sst2-set{1,2,3} \\
        --out docs/results/snell2021-sst2-seeds.md --json docs/results/snell2021-sst2-seeds.json --overwrite
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classification import AGREEMENTS, FROZEN, XIS  # noqa: E402

from fairseq_interp.common.errors import InterpretError  # noqa: E402
from fairseq_interp.common.fairseq_runs import script_main  # noqa: E402
from fairseq_interp.common.jsonl import read_records, write_atomic  # noqa: E402
from fairseq_interp.common.outputs import add_overwrite_argument, check_output_files, make_parent  # noqa: E402
from fairseq_interp.common.paper_numbers import load_paper_numbers  # noqa: E402
from fairseq_interp.common.statistics import mean_sd  # noqa: E402

SECOND_SEED_FINAL = "ξ*"
CHANCE = "random_baseline"


def quantities():
    """``[(label, paper table, key of probes' paper_row or SECOND_SEED_FINAL, kind)]``, kind "agreement" (a share, shown
    in %, with an interval) or "accuracy" (%)."""
    out = [(label, "Table 5", key, "agreement") for label, key in AGREEMENTS]
    out += [(label, "Table 5", key, "accuracy") for label, key in XIS]
    out.append((SECOND_SEED_FINAL, "Table 5", SECOND_SEED_FINAL, "accuracy"))
    out.append((FROZEN[0], "Table 10", FROZEN[1], "agreement"))
    return out


def load_set(folder):
    """One set's ``{"folder", "config", "values": {key: % or None}, "intervals": {key: [low, high] %},
    "probed": {"step", "accuracy"}}``; refused in one line if the driver has not finished it."""
    path = os.path.join(folder, "probes", "probes.json")
    if not os.path.exists(path) or not os.path.exists(os.path.join(folder, "summary.md")):
        raise InterpretError(f"{folder} holds no finished classification.py sst2 run (no probes/probes.json or "
                             "summary.md): run it again with --resume")
    with open(path) as f:
        probes = json.load(f)
    runs = read_records(os.path.join(folder, "runs.jsonl"))
    accuracy = {r["id"]: r["accuracy"] for r in read_records(os.path.join(folder, "accuracy.jsonl"))}
    config = runs[0]["config"]
    row = probes["paper_row"]
    values, intervals = {}, {}
    for _, _, key, kind in quantities():
        if key == SECOND_SEED_FINAL:
            values[key] = accuracy[f"second_seed/{config['max_update']}"][config["subset"]]
        elif row.get(key) is None:
            values[key] = None
        else:
            values[key] = 100.0 * row[key] if kind == "agreement" else row[key]
            interval = row.get("interval" + key[1:]) if key.startswith("A(") else None
            if interval is not None:
                intervals[key] = [100.0 * interval[0], 100.0 * interval[1]]
    probed = next(r for r in runs if r["checkpoint"] == probes["checkpoint"])
    return {"folder": folder, "config": config, "values": values, "intervals": intervals,
            "probed": {"step": probed["step"], "accuracy": accuracy[probed["id"]]}}


def check_sets(sets):
    """The sets differ in their seeds only, and no seed is in two sets."""
    for key in sets[0]["config"]:
        if key != "seeds" and len({json.dumps(s["config"].get(key)) for s in sets}) > 1:
            raise InterpretError(f"the sets differ in {key} ({', '.join(str(s['config'].get(key)) for s in sets)}): "
                                 "compare runs that differ only in --seeds")
    seen = {}
    for s in sets:
        for seed in s["config"]["seeds"]:
            if seed in seen:
                raise InterpretError(f"seed {seed} is in {seen[seed]} and {s['folder']}: give each set its own seeds")
            seen[seed] = s["folder"]


def summarize(sets):
    """Per quantity: the sets' values, mean and sd over the sets that have it, the paper's value; per agreement the
    number of sets whose interval's lower end is above that set's Â."""
    numbers = load_paper_numbers("attention_learning")
    out = []
    for label, table, key, kind in quantities():
        values = [s["values"][key] for s in sets]
        present = [v for v in values if v is not None]
        mean, sd = mean_sd(present) if present else (None, None)
        item = {"quantity": label, "table": table, "key": key, "kind": kind,
                "paper": numbers.get(table, "SST", label).value, "values": values,
                "intervals": [s["intervals"].get(key) for s in sets], "sets_with_value": len(present),
                "mean": mean, "sd": sd}
        if kind == "agreement" and key != CHANCE:
            item["sets_above_chance"] = sum(s["intervals"].get(key) is not None and
                                            s["intervals"][key][0] > s["values"][CHANCE] for s in sets)
        out.append(item)
    return out


def markdown(sets, rows):
    head = ["quantity", "paper", *(f"seeds {' '.join(map(str, s['config']['seeds']))}" for s in sets),
            "mean ± sd", "mean − paper", "interval above Â"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for value, interval in zip(r["values"], r["intervals"]):
            cells.append("–" if value is None else f"{value:.2f}" + (
                "" if interval is None else f" [{interval[0]:.2f}, {interval[1]:.2f}]"))
        unit = " (%)" if r["kind"] == "agreement" else " (accuracy %)"
        spread = "–" if r["mean"] is None else f"{r['mean']:.2f}" + ("" if r["sd"] is None else f" ± {r['sd']:.2f}")
        if r["mean"] is not None and r["sets_with_value"] < len(sets):
            spread += f" ({r['sets_with_value']} set{'s' if r['sets_with_value'] != 1 else ''})"
        diff = "–" if r["mean"] is None or r["paper"] is None else f"{r['mean'] - r['paper']:+.2f}"
        above = f"{r['sets_above_chance']}/{len(sets)}" if "sets_above_chance" in r else "–"
        lines.append(f"| {r['quantity']}{unit} ({r['table']}) | {r['paper']:.2f} | " + " | ".join(cells)
                     + f" | {spread} | {diff} | {above} |")
    config = sets[0]["config"]
    lines += ["", f"{len(sets)} seed sets (main, second seed, uniform, frozen); {config['rows']} rows, "
              f"{config['arch']}, {config['max_update']} updates, lr {config['lr']}, batch {config['batch_size']}, "
              f"probed split {config['subset']}; agreements with their 95 % bootstrap interval over sentences; "
              "ξ is – where the probe agrees with α more than any checkpoint of the second seed does (undefined)", "",
              "probed checkpoints (main run's most accurate on valid): " + "; ".join(
                  f"seeds {' '.join(map(str, s['config']['seeds']))}: update {s['probed']['step']} "
                  f"(valid {s['probed']['accuracy']['valid']:.1f} %, {config['subset']} "
                  f"{s['probed']['accuracy'][config['subset']]:.1f} %)" for s in sets)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results folders of classification.py sst2, one per seed set")
    parser.add_argument("--out", help="write the markdown table here (default: print it only; refused if it exists, "
                        "unless --overwrite)")
    parser.add_argument("--json", help="write the sets' values and the summary here (refused if it exists, unless "
                        "--overwrite)")
    add_overwrite_argument(parser)
    args = parser.parse_args(argv)
    check_output_files([args.out, args.json], ["--out", "--json"], args.overwrite)
    sets = [load_set(folder) for folder in args.results]
    check_sets(sets)
    rows = summarize(sets)
    text = markdown(sets, rows)
    if args.out:
        write_atomic(make_parent(args.out), text)
    if args.json:
        write_atomic(make_parent(args.json), json.dumps(
            {"sets": [{k: s[k] for k in ("folder", "config", "values", "intervals", "probed")} for s in sets],
             "quantities": rows}, indent=1, ensure_ascii=False) + "\n")
    print(text, end="")


if __name__ == "__main__":
    sys.exit(script_main("sst2_seeds", main))
