#!/usr/bin/env python
"""Xie et al. 2021 on Multi30k at small scale: the Multilingual baseline vs neuron-masked fine-tuning, 8
many-to-many directions (``prepare_data.py --lang-pairs xie2021``: En<->De, En<->Fr, En<->Cs, De<->Fr).

``table1`` (Table 1 style): BLEU per direction of the baseline, the baseline continued without masks for the
fine-tuning updates (``baseline+ft``, the control for the extra training), and masked fine-tuning with
Taylor-expansion and absolute-value importance.

``sweep`` (Figure 4 / Table 3 style): average BLEU of masked fine-tuning for several thresholds k (Eq. 9) at a fixed
share ρ of general neurons and several ρ at a fixed k (Taylor importance); with ``--erasure``, the masked model at
(``--k``, ``--rho``) then goes through ``fairseq-interp neurons erase`` (Figure 5).

Steps, shared by both: ``prepare_data.py`` (joint sentencepiece, one dictionary, the first ``--train-size``
sentences); the Multilingual baseline (``translation_multi_simple_epoch`` + ``transformer``, ``--encoder-langtok
tgt``, Johnson et al. 2017); ``fairseq-interp neurons importance`` on the valid split of every direction, then
``neurons allocate``; fine-tuning from the baseline (``translation_multi_neuron_masked``); ``fairseq-generate`` per
direction on the test split and sacrebleu (detokenized). Finished steps are reused on a second run with the same
``--work`` (an interrupted training continues from its last checkpoint; the sweep refuses other model or data
settings). With ``--report``, the marked section of that markdown file is replaced.

    python scripts/reproduce/xie2021/masked_finetuning.py table1 --work results/xie2021 --report docs/neurons.md
    python scripts/reproduce/xie2021/masked_finetuning.py sweep --work results/xie2021-sweep --ks 0.5 0.7 0.9 \\
        --rhos 0.8 0.9 0.95 --report docs/neurons.md [--erasure]
"""

import argparse
import json
import os
import sys
import time

from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references
from fairseq_interp.common.checkpoints import PLUGIN_DIR
from fairseq_interp.common.fairseq_runs import REPO, run, script_main, train as train_until
from fairseq_interp.common.jsonl import write_atomic

THREADS = os.environ.get("OMP_NUM_THREADS", "1")  # one thread per job: run two jobs side by side on two cores
TABLE1_MARK = ("<!-- xie2021-table1 -->", "<!-- /xie2021-table1 -->")
SWEEP_MARK = ("<!-- xie2021-sweep -->", "<!-- /xie2021-sweep -->")
SYSTEMS = ("baseline", "baseline+ft", "masked-taylor", "masked-absolute")
BASELINE_TASK, MASKED_TASK = "translation_multi_simple_epoch", "translation_multi_neuron_masked"
# settings that must match for finished sweep runs to be reused
MODEL_KEYS = ("train_size", "valid_size", "test_size", "vocab_size", "layers", "dim", "max_tokens",
              "baseline_updates", "finetune_updates", "beam", "criterion")


class Experiment:
    """The prepared data, directions and training/scoring steps of one ``--work`` folder."""

    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.data = os.path.join(self.work, "data")
        self.bin = os.path.join(self.data, "bin")
        run([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), "--lang-pairs", "xie2021", "--out",
             self.data, "--train-size", str(args.train_size), "--valid-size", str(args.valid_size), "--test-size",
             str(args.test_size), "--vocab-size", str(args.vocab_size)], threads=THREADS)
        with open(os.path.join(self.bin, "lang_pairs.txt"), encoding="utf-8") as f:
            self.pairs = f.read().strip().split(",")
        self.multi = ["--lang-pairs", ",".join(self.pairs), "--encoder-langtok", "tgt"]

    def size_args(self):
        n, d = self.args.layers, self.args.dim
        return ["--encoder-layers", str(n), "--decoder-layers", str(n), "--encoder-embed-dim", str(d),
                "--decoder-embed-dim", str(d), "--encoder-ffn-embed-dim", str(2 * d), "--decoder-ffn-embed-dim",
                str(2 * d), "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                "--share-all-embeddings", "--dropout", "0.1"]

    def train(self, name, updates, extra):
        """Train into ``WORK/NAME`` unless done: ``(checkpoint, seconds or None)``."""
        return train_until(os.path.join(self.work, name), updates, [
            self.bin, "--user-dir", PLUGIN_DIR, *self.multi, *self.size_args(), "--optimizer", "adam",
            "--adam-betas", "(0.9,0.98)", "--lr-scheduler", "inverse_sqrt", "--criterion",
            "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", str(self.args.max_tokens),
            "--cpu", "--seed", "1", "--no-epoch-checkpoints", "--disable-validation", "--log-format", "simple",
            "--log-interval", "100", *extra], threads=THREADS)

    def baseline(self):
        return self.train("baseline", self.args.baseline_updates, [
            "--task", BASELINE_TASK, "--arch", "transformer", "--lr", "2e-3", "--warmup-updates", "200"])

    def finetune_args(self, baseline):
        return ["--lr", "1e-3", "--warmup-updates", "50", "--finetune-from-model", baseline]

    def importance(self, baseline):
        path = os.path.join(self.work, "importance.pt")
        if not os.path.exists(path):
            run(["fairseq-interp", "neurons", "importance", self.bin, "--path", baseline, "--pairs", *self.pairs,
                 "--subset", "valid", "--out", path + ".tmp.pt"], threads=THREADS)
            os.replace(path + ".tmp.pt", path)
        return path

    def allocate(self, importance, rho, k, criterion, masks, plot):
        """``neurons allocate`` into ``masks`` (once); returns its summary line."""
        out = run(["fairseq-interp", "neurons", "allocate", importance, "--rho", str(rho), "--k", str(k),
                   "--criterion", criterion, "--out", masks + ".tmp.pt", "--plot", plot], threads=THREADS)
        os.replace(masks + ".tmp.pt", masks)
        return out.splitlines()[0].lstrip("| ").split(" -> ")[0]

    def bleu(self, ckpt, task, pair, out):
        """sacrebleu of one direction's test split (the generate output is kept in ``out``)."""
        src, tgt = pair.split("-")
        if not os.path.exists(out):
            text = run(["fairseq-generate", self.bin, "--user-dir", PLUGIN_DIR, "--task", task, *self.multi,
                        "--source-lang", src, "--target-lang", tgt, "--path", ckpt, "--gen-subset", "test",
                        "--beam", str(self.args.beam), "--max-tokens", "4000", "--max-len-a", "1.5",
                        "--max-len-b", "10",
                        # fairseq's batch_by_size drops the last len % 8 sentences with the default multiple of 8
                        "--required-batch-size-multiple", "1", "--post-process", "sentencepiece", "--cpu"],
                       threads=THREADS)
            write_atomic(out, text)
        hyps, ids = read_hypotheses(out)
        refs = read_references(os.path.join(self.data, "raw", f"test.{tgt}"))
        if len(ids) != len(refs):
            raise SystemExit(f"{out}: {len(ids)} hypotheses for {len(refs)} references")
        return corpus_bleu(hyps, refs, tgt).score

    def score(self, ckpt, task, system, digits=None):
        """BLEU of every direction: ``{pair: BLEU}`` (rounded to ``digits`` if given)."""
        os.makedirs(os.path.join(self.work, "generate", system), exist_ok=True)
        scores = {pair: self.bleu(ckpt, task, pair, os.path.join(self.work, "generate", system, f"{pair}.txt"))
                  for pair in self.pairs}
        return {p: round(v, digits) for p, v in scores.items()} if digits is not None else scores

    def average(self, row):
        return sum(row[p] for p in self.pairs) / len(self.pairs)


def replace_section(path, marks, section, heading):
    """Replace the text between ``marks`` in the markdown file ``path`` (or append it under ``heading``)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = f"{marks[0]}\n{section}\n{marks[1]}"
    if marks[0] in text:
        start, end = text.index(marks[0]), text.index(marks[1]) + len(marks[1])
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    write_atomic(path, text)


# ---------------------------------------------------------------------------------------------------------- table1

def table1(args):
    t_start = time.time()
    exp = Experiment(args)
    timings = {}
    base, timings["baseline"] = exp.baseline()
    importance = exp.importance(base)
    finetune = exp.finetune_args(base)
    checkpoints = {"baseline": (base, BASELINE_TASK)}
    ckpt, timings["baseline+ft"] = exp.train("baseline-ft", args.finetune_updates, [
        "--task", BASELINE_TASK, "--arch", "transformer", *finetune])
    checkpoints["baseline+ft"] = (ckpt, BASELINE_TASK)
    allocation = {}
    for criterion in ("taylor", "absolute"):
        masks = os.path.join(exp.work, f"masks-{criterion}.pt")
        allocation[criterion] = exp.allocate(importance, args.rho, args.k, criterion, masks,
                                             os.path.join(exp.work, f"scores-{criterion}.png"))
        ckpt, timings[f"masked-{criterion}"] = exp.train(f"masked-{criterion}", args.finetune_updates, [
            "--task", MASKED_TASK, "--arch", "transformer_neuron_masked", "--neuron-masks", masks, *finetune])
        checkpoints[f"masked-{criterion}"] = (ckpt, MASKED_TASK)
    results = {}
    for system in SYSTEMS:
        ckpt, task = checkpoints[system]
        results[system] = exp.score(ckpt, task, system)
        print(f"| {system}: " + " ".join(f"{p} {b:.2f}" for p, b in results[system].items()), flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("work", "report", "func", "command")}
    record = {"settings": settings, "bleu": results, "allocation": allocation,
              "train_seconds": {k: round(v) for k, v in timings.items() if v},
              "total_seconds": round(time.time() - t_start)}
    write_atomic(os.path.join(exp.work, "table1.json"), json.dumps(record, indent=1))
    md = table1_markdown(exp, results)
    write_atomic(os.path.join(exp.work, "table1.md"), md + "\n")
    print(md)
    print(json.dumps({"allocation": allocation, "train_seconds": record["train_seconds"],
                      "total_seconds": record["total_seconds"]}))
    if args.report:
        table1_report(args.report, record, md)


def table1_markdown(exp, results):
    lines = ["| system | " + " | ".join(exp.pairs) + " | avg |", "|" + "---|" * (len(exp.pairs) + 2)]
    for system in SYSTEMS:
        row = results[system]
        lines.append(f"| {system} | " + " | ".join(f"{row[p]:.2f}" for p in exp.pairs)
                     + f" | **{exp.average(row):.2f}** |")
    return "\n".join(lines)


def table1_report(path, record, md):
    s = record["settings"]
    section = f"""**Scale (small, not the paper's):** {s['train_size']:,} aligned Multi30k training sentences per language (8
directions → {8 * s['train_size']:,} pairs), a {s['layers']}-layer {s['dim']}-dim Transformer (FFN {2 * s['dim']},
4 heads, shared embeddings), {s['vocab_size']:,}-piece joint sentencepiece, Multilingual baseline
{s['baseline_updates']:,} updates of ≤ {s['max_tokens']:,} tokens, then {s['finetune_updates']} fine-tuning updates
per system; importance on the first {s['valid_size']} valid sentences of each direction; ρ = {s['rho']}, k = {s['k']};
BLEU (sacrebleu, detokenized, beam {s['beam']}) on the first {s['test_size']} test_2016_flickr sentences of each
direction. `baseline+ft` continues the baseline without masks for the same fine-tuning updates (control for the
extra training). One seed; 1 CPU core (a shared machine); {record['total_seconds'] // 60} min in total
(training: {', '.join(f'{k} {v} s' for k, v in record['train_seconds'].items())}).

{md}

Allocation: {'; '.join(record['allocation'].values())}.
Command: `python scripts/reproduce/xie2021/masked_finetuning.py table1 --work results/xie2021 --report {path}`
(options as above)."""
    replace_section(path, TABLE1_MARK, section,
                    "Xie et al. 2021, Table 1 style (small scale): Multilingual baseline vs neuron-masked fine-tuning")


# ----------------------------------------------------------------------------------------------------------- sweep

def grid(args):
    """(k, ρ) points: every k at ``--rho``, every ρ at ``--k``; the shared point once, in that order."""
    points = [(k, args.rho) for k in args.ks] + [(args.k, r) for r in args.rhos]
    return list(dict.fromkeys(points))


def system_name(k, rho):
    return f"k{k:g}-rho{rho:g}"


def load_state(path, settings):
    if not os.path.exists(path):
        return {"settings": settings, "runs": {}}
    with open(path) as f:
        state = json.load(f)
    diff = [key for key in MODEL_KEYS if state["settings"].get(key) != settings.get(key)]
    if diff:
        raise SystemExit(f"{path} was made with other settings ({diff[0]}: {state['settings'].get(diff[0])} vs "
                         f"{settings.get(diff[0])}): use another --work or the same options")
    state["settings"] = {**state["settings"], **settings}
    return state


def save_state(path, state):
    write_atomic(path, json.dumps(state, indent=1) + "\n")


def specific_share(masks_path):
    """Mean over pairs of the share of all neurons specific to that pair (the LScore over the whole model)."""
    import torch

    masks = torch.load(masks_path, map_location="cpu", weights_only=True)
    total = sum(g.numel() for g in masks["general"].values())
    per_pair = sum(s.sum(1).double() for s in masks["specific"].values())
    return float((per_pair / total).mean()), int(sum(int(g.sum()) for g in masks["general"].values())), total


def sweep(args):
    t_start = time.time()
    exp = Experiment(args)
    settings = {key: v for key, v in vars(args).items() if key not in ("work", "report", "func", "command")}
    state_path = os.path.join(exp.work, "sweep.json")
    state = load_state(state_path, settings)
    base, seconds = exp.baseline()
    if seconds:
        state.setdefault("train_seconds", {})["baseline"] = round(seconds)
    importance = exp.importance(base)
    finetune = exp.finetune_args(base)
    if not args.no_controls:
        if "baseline" not in state["runs"]:
            state["runs"]["baseline"] = {"bleu": exp.score(base, BASELINE_TASK, "baseline", 2)}
            save_state(state_path, state)
        if "baseline+ft" not in state["runs"]:
            ckpt, seconds = exp.train("baseline-ft", args.finetune_updates, [
                "--task", BASELINE_TASK, "--arch", "transformer", *finetune])
            state["runs"]["baseline+ft"] = {"bleu": exp.score(ckpt, BASELINE_TASK, "baseline+ft", 2),
                                            "train_seconds": seconds}
            save_state(state_path, state)
    for k, rho in grid(args):
        system = system_name(k, rho)
        if system in state["runs"]:
            print(f"| {system}: kept", flush=True)
            continue
        masks = os.path.join(exp.work, f"masks-{system}.pt")
        if not os.path.exists(masks):
            exp.allocate(importance, rho, k, args.criterion, masks, os.path.join(exp.work, f"scores-{system}.png"))
        ckpt, seconds = exp.train(f"masked-{system}", args.finetune_updates, [
            "--task", MASKED_TASK, "--arch", "transformer_neuron_masked", "--neuron-masks", masks, *finetune])
        share, general, total = specific_share(masks)
        state["runs"][system] = {"k": k, "rho": rho, "specific_share": share, "general": general, "neurons": total,
                                 "bleu": exp.score(ckpt, MASKED_TASK, system, 2), "train_seconds": seconds}
        save_state(state_path, state)
        print(f"| {system}: avg BLEU {exp.average(state['runs'][system]['bleu']):.2f}", flush=True)
    if args.erasure:
        system = system_name(args.k, args.rho)
        out = os.path.join(exp.work, "erasure")
        if not os.path.exists(os.path.join(out, "erasure.json")):
            run(["fairseq-interp", "neurons", "erase", exp.bin, "--path",
                 os.path.join(exp.work, f"masked-{system}", "checkpoint_last.pt"), "--references",
                 os.path.join(exp.data, "raw", "test.{tgt}"), "--subset", "test", "--beam", str(args.beam),
                 "--seed", str(args.erasure_seed), "--out-dir", out], threads=THREADS)
        with open(os.path.join(out, "erasure.md")) as f:
            state["erasure"] = {"model": system, "markdown": f.read().strip()}
        with open(os.path.join(out, "erasure.json")) as f:
            state["erasure"]["seconds"] = json.load(f)["seconds"]
        save_state(state_path, state)
    state["last_run_seconds"] = round(time.time() - t_start)
    save_state(state_path, state)
    md = sweep_markdown(exp, state)
    write_atomic(os.path.join(exp.work, "sweep.md"), md + "\n")
    print(md)
    if args.report:
        sweep_report(args.report, state, md)


def sweep_markdown(exp, state):
    """One row per system, BLEU per direction and average, allocation share of specific neurons."""
    head = "| system | k | ρ | specific / pair | " + " | ".join(exp.pairs) + " | avg |"
    lines = [head, "|" + "---|" * (len(exp.pairs) + 5)]
    runs = state["runs"]
    order = [s for s in ("baseline", "baseline+ft") if s in runs] + \
        sorted((s for s in runs if s.startswith("k")), key=lambda s: (runs[s]["k"], runs[s]["rho"]))
    for system in order:
        r = runs[system]
        k, rho = (f"{r['k']:g}", f"{r['rho']:g}") if "k" in r else ("", "")
        share = f"{r['specific_share']:.3f}" if "specific_share" in r else ""
        lines.append(f"| {system} | {k} | {rho} | {share} | " + " | ".join(f"{r['bleu'][p]:.2f}" for p in exp.pairs)
                     + f" | **{exp.average(r['bleu']):.2f}** |")
    return "\n".join(lines)


def sweep_report(path, state, md):
    s = state["settings"]
    seconds = [r["train_seconds"] for r in state["runs"].values() if r.get("train_seconds")]
    timing = ", ".join(([f"baseline {state['train_seconds']['baseline']} s"] if "baseline" in
                        state.get("train_seconds", {}) else [])
                       + ([f"fine-tuning {min(seconds):.0f}–{max(seconds):.0f} s per run"] if seconds else [])
                       + ([f"erasure {state['erasure']['seconds']:.0f} s"] if state.get("erasure", {}).get("seconds")
                          else []))
    timing = f"Time: {timing}." if timing else ""
    erasure = ""
    if "erasure" in state:
        erasure = (f"\n\nErasure (Figure 5) on the masked model {state['erasure']['model']} (`fairseq-interp neurons "
                   f"erase`, seed {s.get('erasure_seed', 1)}; BLEU change per direction,\nthe first row is the "
                   f"unerased BLEU):\n\n{state['erasure']['markdown']}")
    ks, rhos = " ".join(f"{v:g}" for v in s["ks"]), " ".join(f"{v:g}" for v in s["rhos"])
    command = (f"python scripts/reproduce/xie2021/masked_finetuning.py sweep --work results/xie2021-sweep --ks {ks} "
               f"--rhos {rhos}\n--report {path}" + (" --erasure" if "erasure" in state else ""))
    section = f"""**Scale:** as the Table-1 run above ({s['train_size']:,} sentences per language, {s['layers']}-layer {s['dim']}-dim
Transformer, baseline {s['baseline_updates']:,} updates, {s['finetune_updates']} fine-tuning updates per system,
{s['criterion']} importance on {s['valid_size']} valid sentences per direction, BLEU on {s['test_size']} test
sentences per direction, beam {s['beam']}), one seed, 1 CPU core. k sweep at ρ = {s['rho']}, ρ sweep at
k = {s['k']}. `specific / pair`: mean over pairs of the share of all allocated neurons specific to the pair.
{timing}

{md}{erasure}

Command: `{command}`."""
    replace_section(path, SWEEP_MARK, section, "Xie et al. 2021, Figure 4 / Table 3 style (small scale): sweeps of k "
                                               "and ρ, erasure (Figure 5)")


# ------------------------------------------------------------------------------------------------------------ main

def add_scale_arguments(p):
    """The options of data size, model size and training length (both subcommands)."""
    p.add_argument("--work", required=True, help="folder for data, checkpoints and outputs")
    p.add_argument("--train-size", type=int, default=5000, help="aligned training sentences (x 8 directions)")
    p.add_argument("--valid-size", type=int, default=200, help="valid sentences per direction (importance)")
    p.add_argument("--test-size", type=int, default=200, help="test_2016_flickr sentences per direction (BLEU)")
    p.add_argument("--vocab-size", type=int, default=4000, help="joint sentencepiece vocabulary")
    p.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
    p.add_argument("--dim", type=int, default=128, help="embedding width (FFN: 2x)")
    p.add_argument("--max-tokens", type=int, default=2048, help="tokens per batch")
    p.add_argument("--baseline-updates", type=int, default=1500, help="updates of the Multilingual baseline")
    p.add_argument("--finetune-updates", type=int, default=300, help="updates of each fine-tuning run")
    p.add_argument("--beam", type=int, default=4, help="beam size")
    p.add_argument("--report", help="markdown file whose marked section is replaced by the results")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t1 = sub.add_parser("table1", help="Table 1 style: baseline, baseline+ft, masked (taylor, absolute)")
    add_scale_arguments(t1)
    t1.add_argument("--rho", type=float, default=0.9, help="share of general neurons (Eq. 9)")
    t1.add_argument("--k", type=float, default=0.7, help="specific-neuron threshold (Eq. 9)")
    t1.set_defaults(func=table1)
    sw = sub.add_parser("sweep", help="Figure 4 / Table 3 style: sweeps of k and ρ, optional erasure")
    add_scale_arguments(sw)
    sw.add_argument("--criterion", choices=["taylor", "absolute"], default="taylor", help="importance criterion")
    sw.add_argument("--ks", type=float, nargs="+", default=[0.5, 0.7, 0.9], help="k values at --rho")
    sw.add_argument("--rhos", type=float, nargs="+", default=[0.8, 0.9, 0.95], help="ρ values at --k")
    sw.add_argument("--k", type=float, default=0.7, help="k of the ρ sweep and of the erasure model")
    sw.add_argument("--rho", type=float, default=0.9, help="ρ of the k sweep and of the erasure model")
    sw.add_argument("--no-controls", action="store_true", help="skip scoring the baseline and baseline+ft")
    sw.add_argument("--erasure", action="store_true",
                    help="run fairseq-interp neurons erase on the masked model at (--k, --rho) afterwards")
    sw.add_argument("--erasure-seed", type=int, default=1, help="--seed of the erasure")
    sw.set_defaults(func=sweep)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    script_main("masked_finetuning", main)
