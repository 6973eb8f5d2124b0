#!/usr/bin/env python
"""Snell et al. (2021) Table 2 / Table 5's SST or Multi30k row (and Table 10's) over seed sets: reads one results
folder per seed set and writes each set's numbers with their 95 % intervals over sentences, their mean ± sd over the
sets beside the paper's, and, per agreement, in how many sets its interval lies above the random baseline Â (the
paper's claim: attention agrees with the probes far above chance).

A folder is either a ``classification.py sst2`` results folder (SST; one per ``--seeds`` set, the same options
otherwise) or the ``--results-path`` of ``fairseq-interp probes --along-training`` with ``--uniform-path`` and
``--second-seed-path`` (its task's row: Multi30k for translation); the sets must differ in their training seeds only.

    python scripts/reproduce/snell2021/table2_seeds.py results/snell2021-sst2-set{1,2,3} \\
        --out docs/results/snell2021-sst2-seeds/table.md --json docs/results/snell2021-sst2-seeds/table.json
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classification import AGREEMENTS, FROZEN, XIS  # noqa: E402

from fairseq_interp.common.errors import InterpretError  # noqa: E402
from fairseq_interp.common.fairseq_runs import script_main  # noqa: E402
from fairseq_interp.common.jsonl import read_json_object, read_records  # noqa: E402
from fairseq_interp.common.outputs import (add_table_output_arguments, check_table_outputs,  # noqa: E402
                                           folder_files, write_table_outputs)
from fairseq_interp.common.paper_numbers import load_paper_numbers  # noqa: E402
from fairseq_interp.common.statistics import mean_sd  # noqa: E402
from fairseq_interp.common.tables import markdown_table_lines  # noqa: E402

SECOND_SEED_FINAL = "ξ*"
CHANCE = "random_baseline"
PAPER_ROWS = {"classification": "SST", "translation": "Multi30k"}  # Table 5's row of a probes kind
RUNS = ("main", "second_seed", "uniform")


def quantities(frozen=True):
    """``[(label, paper table, key of probes' paper_row or SECOND_SEED_FINAL, kind)]``, kind "agreement" (a share, shown
    in %, with an interval) or "accuracy" (%); Table 10's A(α, α^fr) only with ``frozen``."""
    out = [(label, "Table 5", key, "agreement") for label, key in AGREEMENTS]
    out += [(label, "Table 5", key, "accuracy") for label, key in XIS]
    out.append((SECOND_SEED_FINAL, "Table 5", SECOND_SEED_FINAL, "accuracy"))
    if frozen:
        out.append((FROZEN[0], "Table 10", FROZEN[1], "agreement"))
    return out


def probe_values(probes):
    """``(values, intervals)`` in % of a probes.json: the paper row's quantities (None where undefined) with their
    intervals; ξ* is the second seed's accuracy at the last checkpoint of its curve (the converged run probes was
    given as --second-seed-path), on the probed sentences (the scale ξ is read on, Eq. 11)."""
    row = probes["paper_row"]
    values, intervals = {}, {}
    for _, _, key, kind in quantities():
        if key == SECOND_SEED_FINAL:
            curve = probes.get("second_seed_curve") or []
            values[key] = max(curve, key=lambda p: p["update"])["accuracy"] if curve else None
        elif row.get(key) is None:
            values[key] = None
        else:
            values[key] = 100.0 * row[key] if kind == "agreement" else row[key]
            interval = row.get("interval" + key[1:]) if key.startswith("A(") else None
            if interval is not None:
                intervals[key] = [100.0 * interval[0], 100.0 * interval[1]]
    return values, intervals


def read_probes(path):
    """A probes.json with its paper row; refused in one line if it is unreadable or has none."""
    probes = read_json_object(path, "a fairseq-interp probes result", "run the probes again")
    if "paper_row" not in probes:
        raise InterpretError(f"{path} has no paper row: run fairseq-interp probes with --along-training, "
                             "--uniform-path and --second-seed-path")
    return probes


def load_set(folder):
    """One set's ``{"folder", "row", "config", "values": {key: % or None}, "intervals": {key: [low, high] %},
    "probed": {"step", "accuracy"}}``; refused in one line if the folder holds no finished run."""
    if os.path.exists(os.path.join(folder, "probes.json")):
        return load_probes_set(folder)
    path = os.path.join(folder, "probes", "probes.json")
    if not os.path.exists(path) or not os.path.exists(os.path.join(folder, "summary.md")):
        raise InterpretError(f"{folder} holds no finished classification.py sst2 run (no probes/probes.json or "
                             "summary.md) and no fairseq-interp probes results (probes.json): run the driver again "
                             "with --resume, or the probes")
    probes = read_probes(path)
    runs = read_records(os.path.join(folder, "runs.jsonl"))
    accuracy = {r["id"]: r["accuracy"] for r in read_records(os.path.join(folder, "accuracy.jsonl"))}
    values, intervals = probe_values(probes)
    probed = next(r for r in runs if r["checkpoint"] == probes["checkpoint"])
    return {"folder": folder, "row": "SST", "config": runs[0]["config"], "values": values, "intervals": intervals,
            "probed": {"step": probed["step"], "accuracy": accuracy[probed["id"]]}}


def training_length(checkpoint):
    """What sets compare a run's training length by: its updates, or, for a run stopped by fairseq's ``--patience``
    (trained until the validation loss stalled), that rule: its updates then differ from seed to seed."""
    stopping = checkpoint.get("stopping") or {}
    if (stopping.get("patience") or 0) > 0:  # fairseq's default -1: no patience
        return {"patience": stopping["patience"], "max_update": stopping.get("max_update")}
    return checkpoint["updates"]


def _length_text(length):
    if isinstance(length, dict):
        cap = f", at most {length['max_update']}" if length.get("max_update") else ""
        return f"until {length['patience']} validations without improvement{cap}"
    return str(length)


def load_probes_set(folder):
    """A ``fairseq-interp probes`` results folder as a set: its config is what probes.json records of the runs
    (architecture, updates and training seed of each, probe options, data fingerprints, probed sentences)."""
    probes = read_probes(os.path.join(folder, "probes.json"))
    if probes["kind"] not in PAPER_ROWS:
        raise InterpretError(f"{folder}/probes.json is of kind {probes['kind']!r}: the paper's Table 5 has rows for "
                             f"{', '.join(PAPER_ROWS)}")
    provenance = probes["provenance"]
    checkpoints = {name: provenance["checkpoints"].get(name) or {} for name in RUNS}
    missing = [name for name in RUNS if checkpoints[name].get("seed") is None]
    if missing:
        raise InterpretError(f"{folder}/probes.json records no training seed of the {' and '.join(missing)} run "
                             "(no --uniform-path / --second-seed-path, or probes older than the seed record): run "
                             "fairseq-interp probes again")
    data = {k: v for k, v in provenance["data"].items() if k != "path"}
    config = {"kind": probes["kind"], "arch": {n: checkpoints[n]["arch"] for n in RUNS},
              "updates": {n: training_length(checkpoints[n]) for n in RUNS}, "options": provenance["options"],
              "data": data, "sentences": probes["sentences"],
              "seeds": sorted({checkpoints[n]["seed"] for n in RUNS})}
    values, intervals = probe_values(probes)
    return {"folder": folder, "row": PAPER_ROWS[probes["kind"]], "config": config, "values": values,
            "intervals": intervals,
            "probed": {"step": checkpoints["main"]["updates"], "accuracy": probes["paper_row"].get("accuracy")},
            "updates": {n: checkpoints[n]["updates"] for n in RUNS}}


def check_sets(sets):
    """The sets are of one row and kind of folder, differ in their seeds only, and no seed is in two sets."""
    for what in ("row", "config"):
        kinds = {json.dumps(sorted(s[what])) if what == "config" else s[what] for s in sets}
        if len(kinds) > 1:
            raise InterpretError("the sets are of different " + ("tasks" if what == "row" else "kinds of folder")
                                 + f" ({', '.join(s['folder'] for s in sets)}): compare one driver's or one "
                                 "command's folders of one task")
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
    row = sets[0]["row"]
    out = []
    for label, table, key, kind in quantities(frozen=any(s["values"].get(FROZEN[1]) is not None for s in sets)):
        values = [s["values"][key] for s in sets]
        present = [v for v in values if v is not None]
        mean, sd = mean_sd(present) if present else (None, None)
        item = {"quantity": label, "table": table, "key": key, "kind": kind,
                "paper": numbers.get(table, row, label).value, "values": values,
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
    table = []
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
        table.append([f"{r['quantity']}{unit} ({r['table']})", f"{r['paper']:.2f}", *cells, spread, diff, above])
    lines = [*markdown_table_lines(head, table), "", *footer(sets)]
    return "\n".join(lines) + "\n"


def _sets(sets):
    return f"{len(sets)} seed set{'s' if len(sets) != 1 else ''}"


def footer(sets):
    """The setting under the table: what each set is and which checkpoint was probed."""
    config = sets[0]["config"]
    seeds = [f"seeds {' '.join(map(str, s['config']['seeds']))}" for s in sets]
    common = ("agreements with their 95 % bootstrap interval over sentences; ξ is – where the probe agrees with α "
              "more than any checkpoint of the second seed does (undefined)")
    if "kind" not in config:
        return [f"{_sets(sets)} (main, second seed, uniform, frozen); {config['rows']} rows, "
                f"{config['arch']}, {config['max_update']} updates, lr {config['lr']}, batch {config['batch_size']}, "
                f"probed split {config['subset']}; " + common, "",
                "probed checkpoints (main run's most accurate on valid): " + "; ".join(
                    f"{name}: update {s['probed']['step']} (valid {s['probed']['accuracy']['valid']:.1f} %, "
                    f"{config['subset']} {s['probed']['accuracy'][config['subset']]:.1f} %)"
                    for name, s in zip(seeds, sets))]
    lengths = [config["updates"][n] for n in RUNS]
    by_patience = any(isinstance(length, dict) for length in lengths)
    updates = (f"each run {_length_text(lengths[0])}" if by_patience and lengths.count(lengths[0]) == len(RUNS)
               else ", ".join(f"{n.replace('_', ' ')} {_length_text(length)}" for n, length in zip(RUNS, lengths)))
    lines = [f"{_sets(sets)} (main, second seed, uniform; fairseq-interp probes); {config['arch']['main']}, "
             f"updates: {updates}; {config['sentences']} probed sentences of {config['data']['split']}; " + common,
             "", "probed checkpoints (each set's main run): " + "; ".join(
                 f"{name}: update {s['probed']['step']} (token accuracy on the probed sentences "
                 f"{s['probed']['accuracy']:.1f} %)" for name, s in zip(seeds, sets))]
    if by_patience:
        lines += ["", "checkpoints given (updates): " + "; ".join(
            f"{name}: " + ", ".join(f"{n.replace('_', ' ')} {s['updates'][n]}" for n in RUNS)
            for name, s in zip(seeds, sets))]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="one results folder per seed set: classification.py sst2's, or "
                        "fairseq-interp probes' --results-path")
    add_table_output_arguments(parser, "the sets' values and the summary")
    args = parser.parse_args(argv)
    check_table_outputs(args, inputs=[path for folder in args.results for path in folder_files(folder)])
    sets = [load_set(folder) for folder in args.results]
    check_sets(sets)
    rows = summarize(sets)
    write_table_outputs(args, markdown(sets, rows), {
        "sets": [{k: s[k] for k in ("folder", "row", "config", "values", "intervals", "probed", "updates") if k in s}
                 for s in sets],
        "quantities": rows})

if __name__ == "__main__":
    sys.exit(script_main("table2_seeds", main))
