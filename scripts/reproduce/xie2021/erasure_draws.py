#!/usr/bin/env python
"""Xie et al. (2021) §5.4 / Figure 5 over erasure draws: which neurons an erasure condition removes is a seeded
random choice (a share of the general neurons, of a pair's specific neurons, and the random control's neurons), so
one run is one draw. This reads the results folders of ``fairseq-interp neurons erase --random-control`` made on
one checkpoint with the same options and different ``--seed`` values, and writes, per pair and on average, the BLEU
change of the pair itself and of the other pairs under its specific erasure and under as many random neurons, as
mean ± sd over the draws, and how many draws go the paper's way; beside it the paper's −15 to −20 BLEU for 20 % of
the general neurons.

    for s in 1 2 3 4 5; do fairseq-interp neurons erase DATA --path MASKED.pt --references "DATA/raw/test.{tgt}" \\
        --gen-subset test --beam 4 --random-control --seed $s --results-path results/erase-seed$s; done
    python scripts/reproduce/xie2021/erasure_draws.py results/erase-seed{1,2,3,4,5} --out erasure-draws.md
"""

import argparse
import os
import sys

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import script_main
from fairseq_interp.common.jsonl import read_json_object
from fairseq_interp.common.outputs import add_table_output_arguments, check_table_outputs, write_table_outputs
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.common.statistics import format_mean_sd, mean_sd
from fairseq_interp.common.tables import markdown_table_lines
from fairseq_interp.neurons.erasure import FORMAT, control_over_draws

FIX = "pass the --results-path folders of fairseq-interp neurons erase --random-control"


def load(folders):
    """The ``erasure.json`` of each folder; refused in one line unless they are draws of one erasure: the same
    checkpoint, data and options, the random control on, each its own seed."""
    records = []
    for folder in folders:
        path = os.path.join(folder, "erasure.json")
        record = read_json_object(path, "an erasure.json of fairseq-interp neurons erase", FIX)
        provenance = record.get("provenance", {})
        if provenance.get("format") != FORMAT or not isinstance(provenance.get("options"), dict):
            raise InterpretError(f"{path} is not an erasure.json of fairseq-interp neurons erase: {FIX}")
        if not provenance["options"].get("random_control"):
            raise InterpretError(f"{path} was made without --random-control: rerun the erasure with it")
        records.append(record)
    seeds = [r["provenance"]["options"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise InterpretError(f"seeds {seeds}: each draw needs its own --seed")
    first = records[0]["provenance"]
    for folder, record in zip(folders[1:], records[1:]):
        other = record["provenance"]
        if other["checkpoint"].get("weights_sha256") != first["checkpoint"].get("weights_sha256"):
            raise InterpretError(f"{folder} erased another checkpoint than {folders[0]}: compare draws of one model")
        if other["data"] != first["data"]:
            raise InterpretError(f"{folder} was translated from other data or references than {folders[0]}")
        differing = [k for k in sorted(set(first["options"]) | set(other["options"]))
                     if k != "seed" and first["options"].get(k) != other["options"].get(k)]
        if differing:
            raise InterpretError(f"{folder} and {folders[0]} differ in {', '.join(differing)}: compare draws that "
                                 "differ only in --seed")
    return records


def cell(values):
    return format_mean_sd(values, 2, count=False).replace("-", "−")


def markdown(records, summary):
    options, checkpoint = records[0]["provenance"]["options"], records[0]["provenance"]["checkpoint"]
    seeds = [r["provenance"]["options"]["seed"] for r in records]
    n = len(records)
    sentences = options["num_sentences"] or "all"
    kind = options["specific_set"]
    lines = [f"{n} erasure draws (`--seed` {' '.join(str(s) for s in seeds)}) of `{checkpoint.get('path')}` "
             f"(weights {str(checkpoint.get('weights_sha256'))[:12]}); {options['general_fraction']:g} of the general "
             f"neurons, {options['specific_fraction']:g} of a pair's {kind} neurons, the random control as many "
             f"neurons drawn from all; {sentences} {options['gen_subset']} sentences per direction, beam "
             f"{options['beam']}. Mean ± sd over the draws.", ""]

    def row(name, erased, values):
        below_random = sum(a < b for a, b in zip(values["own"], values["own_random"]))
        below_others = sum(a < b for a, b in zip(values["own"], values["others"]))
        return [name, erased, *(cell(values[k]) for k in ("own", "own_random", "others", "others_random")),
                f"{below_random}/{n}", f"{below_others}/{n}"]

    rows = [row(pair, "/".join(str(e) for e in sorted(set(values["erased"]))), values)
            for pair, values in summary["pairs"].items()]
    if summary["mean_over_pairs"]:
        rows.append(row("mean over pairs", "–", summary["mean_over_pairs"]))
    lines += markdown_table_lines(["pair", "erased", f"Δ own pair, its {kind} neurons", "Δ own pair, as many random",
                                   f"Δ other pairs, its {kind} neurons", "Δ other pairs, random",
                                   "draws: own below random", "draws: own below others"], rows)
    text = "\n".join(lines)
    mean = summary["mean_over_pairs"]
    if mean:
        specific_vs_random = [a - b for a, b in zip(mean["own"], mean["own_random"])]
        own_vs_others = [a - b for a, b in zip(mean["own"], mean["others"])]
        text += ("\n\nMean over pairs, per draw: own pair under its specific neurons − under as many random "
                 f"neurons {cell(specific_vs_random)} (negative in {sum(v < 0 for v in specific_vs_random)}/{n} "
                 f"draws); own pair − other pairs under its specific neurons {cell(own_vs_others)} (negative in "
                 f"{sum(v < 0 for v in own_vs_others)}/{n}). The paper's reading (Figure 5): a pair's specific "
                 "neurons matter to it more than to the others; the control asks whether more than any neurons.")
    if summary["general"]:
        numbers = load_paper_numbers("neurons")
        low = numbers.get("Figure 5", "general 20%", "ΔBLEU low").value
        high = numbers.get("Figure 5", "general 20%", "ΔBLEU high").value
        text += "\n\n" + side_by_side([(
            f"Figure 5: BLEU change, {options['general_fraction']:.0%} of the general neurons erased (mean over "
            "directions)", f"{low:g} to {high:g}", cell(summary["general"]), f"{n} draws of one model")])
    return text + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results folders of fairseq-interp neurons erase --random-control, "
                        "one per --seed")
    add_table_output_arguments(parser, "the per-draw values")
    args = parser.parse_args(argv)
    check_table_outputs(args, inputs=[os.path.join(folder, "erasure.json") for folder in args.results])
    records = load(args.results)
    summary = control_over_draws(records)
    write_table_outputs(args, markdown(records, summary), {
        "draws": [{"folder": folder, "seed": r["provenance"]["options"]["seed"]} for folder, r in
                  zip(args.results, records)],
        "checkpoint": records[0]["provenance"]["checkpoint"], "options": records[0]["provenance"]["options"],
        "summary": summary, "mean_sd": {key: mean_sd(values) for key, values in summary["mean_over_pairs"].items()}})


if __name__ == "__main__":
    sys.exit(script_main("erasure_draws", main))
