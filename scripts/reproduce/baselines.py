#!/usr/bin/env python
"""Converged baselines for the reproductions: train until the validation loss has not improved for ``--patience``
validations, record the curve (valid loss and valid BLEU vs updates), and score the best checkpoint on the test set.

Recipes (Multi30k, ``scripts/prepare_data.py``, joint 8,000-piece sentencepiece):

* ``transformer``: the demo architecture ``transformer_multi30k`` (3+3 layers, 256-dim, shared embeddings) with the
  demo's optimizer (Adam, lr 2e-3, inverse-sqrt warm-up 200, label smoothing 0.1, ≤ 2,048 tokens per batch);
* ``lstm``: fairseq's ``lstm_wiseman_iwslt_de_en`` (the LSTM of the He et al. runs), Adam lr 1e-3, fixed schedule.

Validation every ``--validate-every`` updates (default 300, about one epoch of Multi30k) with valid BLEU (fairseq's
``--eval-bleu``: greedy, at most 1.2 × source length + 10 tokens, detokenized); fairseq's ``--patience`` stops
training; ``checkpoint_best.pt`` is the best valid loss. Test BLEU: beam 5 on test_2016_flickr with sacrebleu
(``common.bleu``, signature kept).

Everything goes to ``--work/<recipe>.<src>-<tgt>.seed<N>/``: ``summary.json`` (curve, best update, test BLEU, time,
the data's fingerprint from its ``prepare.json``) is written at the end; rerunning continues an interrupted training
from its last checkpoint and stops it where the uninterrupted one would (``common.fairseq_runs.converge``), and
reuses a finished one. ``--seeds 1 2 3`` runs them one after
another; ``table`` prints mean ± sd over seeds.

    OMP_NUM_THREADS=1 python scripts/reproduce/baselines.py train --recipe transformer --src en --tgt fr --seeds 1 \\
        --work results/baselines
    python scripts/reproduce/baselines.py table --work results/baselines
"""

import argparse
import glob
import json
import logging
import os
import sys

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references
from fairseq_interp.common.checkpoints import PLUGIN_DIR, checkpoint_updates
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import (REPO, add_device_argument, converge, device_flags, run, script_main,
                                               stopped_by, valid_curve)
from fairseq_interp.common.jsonl import read_json_object, write_atomic
from fairseq_interp.common.options import add_progress_arguments, defaults_help_formatter
from fairseq_interp.common.outputs import add_overwrite_argument, check_results_folder
from fairseq_interp.common.preparation import recorded_fingerprint
from fairseq_interp.common.provenance import compute_info
from fairseq_interp.common.statistics import format_mean_sd
from fairseq_interp.common.tables import markdown_table

logger = logging.getLogger("baselines")
THREADS = os.environ.get("OMP_NUM_THREADS", "1")
RECIPES = {
    "transformer": ["--arch", "transformer_multi30k", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                    "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "200",
                    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                    "--max-tokens", "2048"],
    "lstm": ["--arch", "lstm_wiseman_iwslt_de_en", "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed",
             "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", "2048"],
}


def prepare(args):
    """The data folder: ``--data`` if given (made by ``scripts/prepare_data.py``), else the full Multi30k pair
    prepared under ``--work/data`` (reused when there)."""
    if args.data:
        if not os.path.isdir(os.path.join(args.data, "bin")):
            raise InterpretError(f"--data {args.data} has no bin/: pass a folder made by scripts/prepare_data.py")
        return args.data
    data = os.path.join(args.work, "data", f"multi30k.{args.src}-{args.tgt}")
    run([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), "--src", args.src, "--tgt", args.tgt,
         "--out", data, "--vocab-size", "8000"], threads=THREADS)
    return data


def train_one(args, data, seed):
    name = f"{args.recipe}.{args.src}-{args.tgt}.seed{seed}"
    recipe = RECIPES[args.recipe] + (["--arch", args.arch] if args.arch else [])
    save = os.path.join(args.work, name)
    summary_path = os.path.join(save, "summary.json")
    if os.path.exists(summary_path):
        logger.info(f"{name}: done ({summary_path})")
        return
    os.makedirs(save, exist_ok=True)
    log = os.path.join(save, "train.log")
    train_seconds = converge(
        ["fairseq-train", os.path.join(data, "bin"), "--user-dir", PLUGIN_DIR, *recipe, "--seed", str(seed),
         *device_flags(args), "--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_a": 1.2, "max_len_b": 10}',
         "--eval-bleu-detok", "moses", "--eval-bleu-remove-bpe", "sentencepiece"],
        save, log, args.validate_every, args.patience, args.max_update, run_log=os.path.join(save, "last-run.log"),
        threads=THREADS)
    best = os.path.join(save, "checkpoint_best.pt")
    generated = os.path.join(save, "generate-test.txt")
    if not os.path.exists(generated):
        write_atomic(generated, run(["fairseq-generate", os.path.join(data, "bin"), "--user-dir", PLUGIN_DIR,
                                     "--path", best, "--gen-subset", "test", "--beam", "5", "--batch-size", "128",
                                     "--required-batch-size-multiple", "1", "--post-process", "sentencepiece",
                                     *device_flags(args)], threads=THREADS))
    hyps, ids = read_hypotheses(generated)
    refs = read_references(os.path.join(data, "raw", f"test.{args.tgt}"))
    bleu = corpus_bleu(hyps, [refs[i] for i in ids], args.tgt)
    curve = valid_curve(log)
    best_update = min(curve, key=lambda point: point[1])[0] if curve else None
    summary = {"recipe": args.recipe, "pair": f"{args.src}-{args.tgt}", "seed": seed,
               "options": {"patience": args.patience, "validate_every": args.validate_every,
                           "max_update": args.max_update, "train_args": recipe},
               "updates": checkpoint_updates(os.path.join(save, "checkpoint_last.pt")), "best_update": best_update,
               "curve": [{"update": u, "valid_loss": loss, "valid_bleu": b} for u, loss, b in curve],
               "test_bleu": round(bleu.score, 2), "test_bleu_signature": bleu.signature,
               "data_bin_sha256": recorded_fingerprint(data), "train_seconds_last_run": round(train_seconds),
               "threads": THREADS, "cpu_capability": compute_info()["cpu_capability"]}
    write_atomic(summary_path, json.dumps(summary, indent=1) + "\n")
    logger.info(f"{name}: {summary['updates']} updates (best {best_update}), test BLEU {summary['test_bleu']:.2f}")


def train(args):
    device_flags(args)  # --device cuda without a GPU: refused before anything is prepared
    data = prepare(args)
    for seed in progress_loop(args.seeds, args, prefix="baselines seeds"):
        train_one(args, data, seed)


def summary_stopped_by(summary):
    """How a baseline's training ended (:func:`~fairseq_interp.common.fairseq_runs.stopped_by`)."""
    return stopped_by(summary["updates"], summary["options"]["max_update"])


def best_point(summary):
    """The curve point of the best update (lowest valid loss)."""
    return next(p for p in summary["curve"] if p["update"] == summary["best_update"])


def table(args):
    """``baselines.md`` (test BLEU mean ± sd over seeds, how each run stopped), ``baselines.json`` (every run's curve,
    best update and test BLEU) and ``baselines-curves.png`` (valid loss and valid BLEU vs updates, a line per run)
    in ``--out``."""
    runs, sources = {}, {}
    summaries = sorted(glob.glob(os.path.join(args.work, "*", "summary.json")))
    out = args.out or args.work
    check_results_folder(out, ["baselines.md", "baselines.json", "baselines-curves.png"], "--out", args.overwrite,
                         inputs=summaries + list(args.records))

    def add(summary, source):
        key = (summary["recipe"], summary["pair"], summary["seed"])
        if key in sources:
            if summary != sources[key][1]:
                raise InterpretError(f"{summary['recipe']} {summary['pair']} seed {summary['seed']} is in {source} "
                                     f"and {sources[key][0]} with other results: keep one of them")
            return
        sources[key] = (source, summary)
        runs.setdefault(key[:2], []).append(summary)

    for path in summaries:
        with open(path) as f:
            add(json.load(f), path)
    for path in args.records:
        fix = "pass the baselines.json that baselines.py table wrote"
        for record in read_json_object(path, "a baselines.json of baselines.py table", fix, kind=list):
            if not isinstance(record, dict) or not {"recipe", "pair", "seed", "curve"} <= set(record):
                raise InterpretError(f"{path} is not a baselines.json of baselines.py table: {fix}")
            add({key: value for key, value in record.items() if key != "stopped_by"}, path)
    if not runs:
        raise InterpretError(f"no finished baseline (*/summary.json) under {args.work}")
    rows = []
    for (recipe, pair), summaries in sorted(runs.items()):
        summaries.sort(key=lambda s: s["seed"])
        bleus = [s["test_bleu"] for s in summaries]
        valid = [best_point(s)["valid_bleu"] for s in summaries]
        updates = ", ".join(f"{s['updates']} ({s['best_update']})" for s in summaries)
        stops = ", ".join(summary_stopped_by(s) for s in summaries)
        rows.append([recipe, pair, len(summaries), format_mean_sd(bleus),
                     format_mean_sd(valid) if None not in valid else "–", updates, stops,
                     f"{summaries[0]['options']['patience']} × {summaries[0]['options']['validate_every']}"])
    signatures = sorted({s["test_bleu_signature"] for group in runs.values() for s in group})
    table = markdown_table(["recipe", "pair", "seeds", "test BLEU (beam 5)", "valid BLEU at best (greedy)",
                            "updates (best)", "stopped by", "patience"], rows)
    text = table + "\n\nsacrebleu: " + "; ".join(f"`{sig}`" for sig in signatures) + "\n"
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "baselines.md"), text)
    records = [{**s, "stopped_by": summary_stopped_by(s)} for _, group in sorted(runs.items()) for s in group]
    write_atomic(os.path.join(out, "baselines.json"), json.dumps(records, indent=1) + "\n")
    plot_curves(runs, os.path.join(out, "baselines-curves.png"))
    print(text, end="")


def plot_curves(runs, path):
    """Valid loss (left) and valid BLEU (right) against updates, one line per run, the best update marked."""
    from fairseq_interp.common.figures import pyplot, save_figure

    plt = pyplot()
    fig, (loss_ax, bleu_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for (recipe, pair), summaries in sorted(runs.items()):
        for s in summaries:
            updates = [p["update"] for p in s["curve"]]
            label = f"{recipe} {pair} seed {s['seed']}"
            (line,) = loss_ax.plot(updates, [p["valid_loss"] for p in s["curve"]], label=label)
            best = best_point(s)
            loss_ax.plot([best["update"]], [best["valid_loss"]], "o", color=line.get_color())
            if all(p["valid_bleu"] is not None for p in s["curve"]):
                bleu_ax.plot(updates, [p["valid_bleu"] for p in s["curve"]], color=line.get_color(), label=label)
                bleu_ax.plot([best["update"]], [best["valid_bleu"]], "o", color=line.get_color())
    loss_ax.set(xlabel="updates", ylabel="valid loss (label-smoothed, base 2)", title="valid loss (dot: best)")
    bleu_ax.set(xlabel="updates", ylabel="valid BLEU (greedy)", title="valid BLEU")
    loss_ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or continue) converged baselines", formatter_class=defaults_help_formatter())
    t.add_argument("--recipe", choices=sorted(RECIPES), default="transformer", help="architecture and optimizer")
    t.add_argument("--src", default="en", help="source language")
    t.add_argument("--tgt", default="fr", help="target language")
    t.add_argument("--seeds", type=int, nargs="+", default=[1], help="one training per seed, one after another")
    t.add_argument("--patience", type=positive, default=5, help="validations without a better valid loss before stopping")
    t.add_argument("--validate-every", type=positive, default=300, help="updates between validations")
    t.add_argument("--max-update", type=positive, default=20000, help="a cap, reached only if the patience never is")
    t.add_argument("--arch", help="another architecture for the recipe's optimizer and criterion (say why in the notes)")
    t.add_argument("--data", help="a prepared data folder (scripts/prepare_data.py) instead of the full pair")
    t.add_argument("--work", required=True)
    add_device_argument(t)
    add_progress_arguments(t, log_interval=1)
    t.set_defaults(func=train)
    s = sub.add_parser("table", help="mean ± sd of test BLEU over seeds of every finished baseline, their curves",
                       formatter_class=defaults_help_formatter())
    s.add_argument("--work", required=True, help="the folder given to train")
    s.add_argument("--out", help="where baselines.md, baselines.json and baselines-curves.png go (default: --work)")
    s.add_argument("--records", nargs="+", default=[], metavar="JSON",
                   help="baselines.json files of earlier tables: their runs join those of --work (e.g. runs made on "
                        "another machine; a run in both must have the same results)")
    add_overwrite_argument(s)
    s.set_defaults(func=table)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    script_main("baselines", main)
