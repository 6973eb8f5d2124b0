#!/usr/bin/env python
"""Snell et al. (2021), the binary-classification half: SST-2 (Table 2's SST row, Table 5, Table 10) and the keyword
toy task (§6.1, Figure 7), each run a ``fairseq-train`` of ``lstm_attention_classifier``; runs in parallel
(``--jobs``, one thread each). Every step is resumable from its own records: run the same command again.

``sst2``: four runs on the same data, Adam, batches of 32 (appendix A.8): the probed model (``--seeds`` first), a
second seed (ξ, Eq. 11), the uniform-attention model (β^uf) and the frozen-β model (α^fr, appendix A.6). Each is
saved at the paper's evaluation steps (10, 50, 100, 150, 200, 250, then every 250 to ``--max-update``; no step-0
checkpoint: fairseq-train saves none before its first update) by training to each step in turn
(``CKPT/<run>/checkpoint_<epoch>_<step>.pt``, weights only). The probed checkpoint is the first run's most accurate
on ``valid`` (the authors take their main run's most accurate checkpoint). Then ``fairseq-interp probes`` over
``--gen-subset`` with the second seed along training, β^uf and α^fr from their runs' best-agreeing checkpoints.
Writes RESULTS/runs.jsonl (one record per saved step), RESULTS/accuracy.jsonl (accuracy of every checkpoint on valid and
the probed split), RESULTS/probes/ (probes.json, probes.md), RESULTS/summary.md (the paper | ours tables) and
RESULTS/accuracy.png.

``figure5``: the count-table model of §4 (Eq. 16–19, T = 1) counted over the first N training sentences for several
N: its accuracy, how much attention α^IBM the most polar word draws, and β^IBM / α^IBM of a few example sentences
(the view of Figure 5, on SST-2; no training). Writes RESULTS/figure5.{json,md,png}.

``figure7``: the uniform-attention classifier on the keyword task, checkpoints every ``--save-every`` updates; for
each, γ_{l*}, γ_{l*+1}, γ̄, γ_L over the positive validation sequences (Eq. 22–25). Writes RESULTS/gammas.jsonl,
RESULTS/summary.md and RESULTS/figure7.png.

    python scripts/reproduce/snell2021/classification.py sst2 --results-path results/snell2021-sst2 --jobs 2
    python scripts/reproduce/snell2021/classification.py figure7 --results-path results/snell2021-figure7
    python scripts/reproduce/snell2021/classification.py figure5 --results-path results/snell2021-figure5
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.checkpoints import PLUGIN_DIR, interval_checkpoints, read_raw_checkpoint
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import (REPO, add_device_argument, check_driver_records, device_flags,
                                                driver_records, run, script_main, train)
from fairseq_interp.common.figures import pyplot, save_figure
from fairseq_interp.common.jsonl import read_records, write_atomic
from fairseq_interp.common.options import (PROGRESS_OPTIONS, add_progress_arguments, check_counts, check_range,
                                           rename_options)
from fairseq_interp.common.outputs import OVERWRITE_HELP, check_results_folder
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.common.tables import markdown_table, markdown_table_lines

COMMAND = "classification.py"
logger = logging.getLogger("classification")

RUNS = ("main", "second_seed", "uniform", "frozen")
#: Table 2 / Table 5's SST columns: (the paper's label, the key of ``probes.paper_row``)
AGREEMENTS = (("A(α, β^uf)", "A(alpha, beta_uf)"), ("A(β^uf, β^px)", "A(beta_px, beta_uf)"),
              ("A(Δ, β^uf)", "A(delta, beta_uf)"), ("A(α, β)", "A(alpha, beta)"), ("Â", "random_baseline"))
XIS = (("ξ(α, β^uf)", "xi(alpha, beta_uf)"), ("ξ(β^uf, β^px)", "xi(beta_px, beta_uf)"),
       ("ξ(Δ, β^uf)", "xi(delta, beta_uf)"), ("ξ(α, β)", "xi(alpha, beta)"))
#: Table 10's SST column beside A(α, β^uf)
FROZEN = ("A(α, α^fr)", "A(alpha, alpha_fr)")
RUN_OPTIONS = {"main": [], "second_seed": [], "uniform": ["--uniform-attention"],
               "frozen": ["--freeze-except-attention"]}


def paper_steps(max_update, every=250):
    """Appendix A.8: "steps 0, 10, 50, 100, 150, 200, 250, and then every 250 iterations after that" (0 excepted)."""
    steps = [s for s in (10, 50, 100, 150, 200) if s < max_update]
    steps += list(range(every, max_update, every)) + [max_update]
    return sorted(set(steps))


def save_step(save_dir, step):
    """Copy ``checkpoint_last.pt`` (at ``step`` updates) to ``checkpoint_<epoch>_<step>.pt`` without the optimizer
    state (the probes need the weights only); written through a temporary name."""
    state = read_raw_checkpoint(os.path.join(save_dir, "checkpoint_last.pt"))
    updates = int(state["optimizer_history"][-1]["num_updates"])
    if updates != step:
        raise InterpretError(f"{save_dir}/checkpoint_last.pt is at update {updates}, not {step}: remove {save_dir} "
                             "and run again")
    import torch

    epoch = int(state.get("extra_state", {}).get("train_iterator", {}).get("epoch", 1))
    state["last_optimizer_state"] = None
    path = os.path.join(save_dir, f"checkpoint_{epoch}_{step}.pt")
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def train_steps(name, save_dir, steps, train_args, writer, lock, config):
    """Train one run to each step in turn (fairseq resumes from ``checkpoint_last.pt``), saving each step once."""
    for step in steps:
        rid = f"{name}/{step}"
        if rid in writer.done_ids:
            continue
        start = time.time()
        _, seconds = train(save_dir, step, train_args, threads=1)
        path = save_step(save_dir, step)
        with lock:
            writer.write({"id": rid, "run": name, "step": step, "checkpoint": path, "config": config,
                          "seconds": None if seconds is None else round(time.time() - start, 1)})
        logger.info(f"{rid} saved ({path})")


# ------------------------------------------------------------------------------------------------------------ sst2

def prepare(args):
    if os.path.exists(os.path.join(args.data, "prepare.json")):
        return
    cmd = [sys.executable, os.path.join(REPO, "scripts", "prepare_sst2.py"), "--out", args.data, "--rows", args.rows]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    run(cmd)


def train_args_for(name, seed, args):
    return [os.path.join(args.data, "bin"), "--user-dir", PLUGIN_DIR, "--task", "sentence_prediction",
            "--num-classes", "2", "--max-positions", "1024", "--arch", args.arch, *RUN_OPTIONS[name],
            "--criterion", "sentence_prediction", "--optimizer", "adam", "--lr", str(args.lr),
            "--batch-size", str(args.batch_size), "--required-batch-size-multiple", "1", "--seed", str(seed),
            *device_flags(args), "--disable-validation", "--no-epoch-checkpoints", "--no-progress-bar",
            "--log-format", "json"]


def checkpoint_accuracy(path, data, subsets, options):
    """{subset: accuracy %} of one classifier checkpoint (argmax of [0, γ] = label), each split loaded by its name
    and read through fairseq's batch iterator (``options``: ``--batch-size`` and the progress options)."""
    import torch
    from fairseq import utils

    from fairseq_interp.common.batches import progress, split_batches
    from fairseq_interp.common.checkpoints import load_checkpoint, load_dataset

    task, task_cfg, model = load_checkpoint(path, data, require_encoder_decoder=False)
    model.eval()
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    out = {}
    for subset in subsets:
        dataset = load_dataset(task, subset, task_cfg)
        _, batches = split_batches(task, dataset, options, max_positions, what=subset)
        correct = seen = 0
        with torch.no_grad():
            for sample in progress(batches, options, prefix=f"accuracy {subset} {os.path.basename(path)}"):
                if "net_input" not in sample:
                    continue
                predicted = model(**sample["net_input"])[0].argmax(-1)
                correct += int((predicted == sample["target"].view(-1)).sum())
                seen += len(predicted)
        if seen != len(dataset):
            raise InterpretError(f"{path}: read {seen} of the {len(dataset)} sentences of {subset}")
        out[subset] = 100.0 * correct / seen
    return out


def sst2(args):
    check_driver_records([os.path.join(args.results_path, "runs.jsonl")], args.resume, args.overwrite)
    check_results_folder(args.results_path, ["summary.md", "accuracy.png"], "--results-path",
                         args.overwrite or args.resume)
    prepare(args)
    seeds = dict(zip(RUNS, args.seeds))
    steps = paper_steps(args.max_update, args.every)
    config = {"arch": args.arch, "lr": args.lr, "batch_size": args.batch_size, "max_update": args.max_update,
              "every": args.every, "seeds": args.seeds, "rows": args.rows, "train_size": args.train_size,
              "subset": args.gen_subset, "proxy_epochs": args.proxy_epochs}
    start, lock = time.time(), threading.Lock()
    with driver_records(os.path.join(args.results_path, "runs.jsonl"), config, COMMAND, args.resume,
                        args.overwrite) as writer:
        def one(name):
            train_steps(name, os.path.join(args.ckpt_dir, name), steps, train_args_for(name, seeds[name], args),
                        writer, lock, config)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(progress_loop(pool.map(one, RUNS), args, prefix="sst2 runs", total=len(RUNS)))
    runs = read_records(os.path.join(args.results_path, "runs.jsonl"))
    data = os.path.join(args.data, "bin")
    subsets = ["valid"] + ([args.gen_subset] if args.gen_subset != "valid" else [])
    with driver_records(os.path.join(args.results_path, "accuracy.jsonl"), config, COMMAND, resume=True,
                        what="accuracies") as writer:
        for r in progress_loop(runs, args, prefix="accuracy of checkpoints"):
            if r["id"] not in writer.done_ids:
                writer.write({"id": r["id"], "run": r["run"], "step": r["step"], "config": config,
                              "accuracy": checkpoint_accuracy(r["checkpoint"], data, subsets, args)})
    accuracy = {r["id"]: r["accuracy"] for r in read_records(os.path.join(args.results_path, "accuracy.jsonl"))}
    main = [r for r in runs if r["run"] == "main"]
    best = max(main, key=lambda r: (accuracy[r["id"]]["valid"], -r["step"]))
    probes_dir = os.path.join(args.results_path, "probes")
    if not os.path.exists(os.path.join(probes_dir, "probes.json")):
        last = {name: os.path.join(args.ckpt_dir, name, "checkpoint_last.pt") for name in RUNS}
        run(["fairseq-interp", "probes", data, "--path", best["checkpoint"], "--second-seed-path",
             last["second_seed"], "--along-training", "--uniform-path", last["uniform"], "--frozen-path",
             last["frozen"], "--gen-subset", args.gen_subset, "--num-sentences", str(args.num_sentences),
             "--proxy-epochs", str(args.proxy_epochs), "--results-path", probes_dir, "--overwrite"], threads=1)
    with open(os.path.join(probes_dir, "probes.json")) as f:
        probes = json.load(f)
    summary = sst2_summary(args, config, runs, accuracy, best, probes, time.time() - start)
    write_atomic(os.path.join(args.results_path, "summary.md"), summary)
    plot_accuracy(runs, accuracy, args.gen_subset, os.path.join(args.results_path, "accuracy.png"))
    print(summary)


def ours_setting(args, probes):
    return (f"SST-2 whole sentences ({args.rows}), {args.arch}, random embeddings, {args.max_update} updates, "
            f"{probes['sentences']} {args.gen_subset} sentences")


def sst2_summary(args, config, runs, accuracy, best, probes, seconds):
    """The paper | ours tables (Table 2 SST row with Table 5's two decimals, Table 10), ξ's curve and accuracies."""
    numbers = load_paper_numbers("attention_learning")
    row = probes["paper_row"]
    setting = ours_setting(args, probes)

    def pct(key):
        """A value in %, with its 95% interval over sentences when probes computed one."""
        if row.get(key) is None:
            return None
        interval = row.get("interval" + key[1:]) if key.startswith("A(") else None
        return 100.0 * row[key] if interval is None else (100.0 * row[key], 100.0 * interval[0], 100.0 * interval[1])

    table5 = [(f"{label} (%)", numbers.get("Table 5", "SST", label).value, pct(key), setting)
              for label, key in AGREEMENTS]
    final = max((accuracy[r["id"]][args.gen_subset] for r in runs if r["run"] == "second_seed" and
                 r["step"] == args.max_update), default=None)
    table5 += [(f"{label} (accuracy %)", numbers.get("Table 5", "SST", label).value, row.get(key), setting)
               for label, key in XIS]
    table5.append(("ξ* (accuracy %, second seed's final)", numbers.get("Table 5", "SST", "ξ*").value, final,
                   setting))
    table10 = [(f"{FROZEN[0]} (%)", numbers.get("Table 10", "SST", FROZEN[0]).value, pct(FROZEN[1]), setting),
               ("A(α, β^uf) (%)", numbers.get("Table 10", "SST", "A(α, β^uf)").value, pct("A(alpha, beta_uf)"),
                setting)]
    lines = [f"{' '.join(sys.argv)}", "", "Table 2 / Table 5, SST row (agreements in % with their 95% bootstrap interval over sentences, "
             "ξ in accuracy %):", "",
             side_by_side(table5), "", "Table 10, SST (A(α, α^fr) at the frozen run's best-agreeing checkpoint):", "",
             side_by_side(table10), "",
             f"probed checkpoint: main run at update {best['step']} (most accurate on valid: "
             f"{accuracy[best['id']]['valid']:.1f}%, {args.gen_subset} {accuracy[best['id']][args.gen_subset]:.1f}%); β^uf "
             f"from the uniform run's update {row.get('update(alpha, beta_uf)')} for A(α, β^uf), "
             f"{row.get('update(beta_px, beta_uf)')} for A(β^px, β^uf), {row.get('update(delta, beta_uf)')} for "
             f"A(Δ, β^uf); α^fr from the frozen run's update {row.get('update(alpha, alpha_fr)')}", "",
             f"accuracy % on {args.gen_subset} at the paper's steps:", ""]
    table = []
    for step in sorted({r["step"] for r in runs}):
        cells = [accuracy.get(f"{name}/{step}", {}).get(args.gen_subset) for name in RUNS]
        table.append([step, *("–" if c is None else f"{c:.1f}" for c in cells)])
    lines += markdown_table_lines(["step", *RUNS], table)
    lines += ["", f"wall time of this invocation {seconds:.0f} s; training seconds per run: " + ", ".join(
        f"{name} {sum(r['seconds'] or 0 for r in runs if r['run'] == name):.0f}" for name in RUNS), ""]
    return "\n".join(lines)


def plot_accuracy(runs, accuracy, subset, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name in RUNS:
        points = sorted((r["step"], accuracy[r["id"]][subset]) for r in runs if r["run"] == name)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set_xlabel("updates")
    ax.set_ylabel(f"accuracy on {subset} (%)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


# --------------------------------------------------------------------------------------------------------- figure7

ORDER_NAMES = {"gamma_keyword": "γ_{l*}", "gamma_after_keyword": "γ_{l*+1}", "gamma_mean": "γ̄", "gamma_last": "γ_L"}


def keyword_train_args(args):
    return ["--user-dir", PLUGIN_DIR, "--task", "keyword_classification", "--seq-len", str(args.seq_len),
            "--vocab-size", str(args.vocab_size), "--train-size", str(args.train_size), "--valid-size",
            str(args.valid_size), "--data-seed", str(args.seed), "--seed", str(args.seed), "--arch", args.arch,
            "--uniform-attention", "--criterion", "sentence_prediction", "--optimizer", "adam", "--lr", str(args.lr),
            "--batch-size", str(args.batch_size), "--required-batch-size-multiple", "1", *device_flags(args),
            "--disable-validation", "--save-interval-updates", str(args.save_every), "--keep-interval-updates", "-1",
            "--no-progress-bar", "--log-format", "json"]


def measured_checkpoints(ckpt_dir, every):
    """{update: path} of the checkpoints at multiples of ``every``: the interval checkpoints, and the epoch checkpoints
    ``checkpoint<epoch>.pt`` for the updates that end an epoch (fairseq writes no interval checkpoint there)."""
    import re

    from fairseq_interp.common.checkpoints import checkpoint_updates

    found = dict(interval_checkpoints(ckpt_dir))
    for name in sorted(os.listdir(ckpt_dir)):
        if re.fullmatch(r"checkpoint\d+\.pt", name):
            update = checkpoint_updates(os.path.join(ckpt_dir, name))
            if update % every == 0:
                found.setdefault(update, os.path.join(ckpt_dir, name))
    return dict(sorted(found.items()))


def gammas_of(path, options):
    """Figure 7's four means and the validation accuracy of one checkpoint of the uniform keyword classifier, over
    the validation sequences read through fairseq's batch iterator (``options``: ``--batch-size`` and the progress
    options; the sequences have one length, so they stack)."""
    import torch

    from fairseq_interp.attention_learning.keyword import keyword_log_odds
    from fairseq_interp.common.batches import rows_by_id
    from fairseq_interp.common.checkpoints import load_checkpoint, load_dataset

    task, task_cfg, model = load_checkpoint(path, require_encoder_decoder=False)
    model.eval()
    dataset = load_dataset(task, "valid", task_cfg)
    rows = rows_by_id(task, dataset, options, what="valid")
    src, labels = torch.stack([source for source, _ in rows]), torch.stack([label for _, label in rows])
    keyword = task.dictionary.index(str(task_cfg.keyword))
    out = keyword_log_odds(model, src, labels, keyword)
    with torch.no_grad():
        out["accuracy"] = 100.0 * float((model(src)[0].argmax(-1) == labels).double().mean())
    return out


def ordering(record):
    values = {k: record[k] for k in ORDER_NAMES if record.get(k) is not None}
    return " > ".join(ORDER_NAMES[k] for k in sorted(values, key=values.get, reverse=True))


def figure7(args):
    check_driver_records([os.path.join(args.results_path, "gammas.jsonl")], args.resume, args.overwrite,
                         "measurements")
    check_results_folder(args.results_path, ["summary.md", "figure7.png"], "--results-path",
                         args.overwrite or args.resume)
    config = {k: v for k, v in vars(args).items()
              if k not in ("results_path", "ckpt_dir", "resume", "overwrite", "func", "command", "device",
                           *PROGRESS_OPTIONS)}
    start = time.time()
    _, seconds = train(args.ckpt_dir, args.max_update, keyword_train_args(args), threads=1)
    path = os.path.join(args.results_path, "gammas.jsonl")
    with driver_records(path, config, COMMAND, args.resume, args.overwrite, "measurements") as writer:
        for update, ckpt in progress_loop(measured_checkpoints(args.ckpt_dir, args.save_every).items(), args,
                                          prefix="figure7 checkpoints"):
            if str(update) not in writer.done_ids and update <= args.max_update:
                writer.write({"id": str(update), "update": update, "config": config, **gammas_of(ckpt, args)})
    records = sorted(read_records(path), key=lambda r: r["update"])
    lines = [" ".join(sys.argv), "", f"uniform-attention {args.arch} on the keyword task (length {args.seq_len}, "
             f"{args.vocab_size} word types, keyword 1), positive validation sequences; γ_l = Wᵀh_l (Eq. 22)", "",
             *markdown_table_lines(
                 ["update", "γ_{l*}", "γ_{l*+1}", "γ̄", "γ_L", "accuracy %", "ordering"],
                 [[r["update"], f"{r['gamma_keyword']:.2f}",
                   "–" if r["gamma_after_keyword"] is None else f"{r['gamma_after_keyword']:.2f}",
                   f"{r['gamma_mean']:.2f}", f"{r['gamma_last']:.2f}", f"{r['accuracy']:.1f}", ordering(r)]
                  for r in records])]
    lines += ["", "Hypothesis 2 (Eq. 24): γ_{l*} ≫ γ_{l*+1} ≫ γ̄ ≈ γ_L; Observation 3 (Eq. 25): γ_L ≫ γ_{l*+1} ≫ "
              "γ̄ ≈ γ_{l*}", "", f"training {'(already done)' if seconds is None else f'{seconds:.0f} s'}; "
              f"wall time of this invocation {time.time() - start:.0f} s", ""]
    summary = "\n".join(lines)
    write_atomic(os.path.join(args.results_path, "summary.md"), summary)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, label in ORDER_NAMES.items():
        points = [(r["update"], r[key]) for r in records if r.get(key) is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
    ax.set_xlabel("updates (uniform attention)")
    ax.set_ylabel("log-odds γ (positive sequences)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, os.path.join(args.results_path, "figure7.png"), dpi=120)
    print(summary)


# ------------------------------------------------------------------------------------------------------------ main

# --------------------------------------------------------------------------------------------------------- figure5

def read_text_split(data, split):
    """(word lists, labels) of a split prepared by ``scripts/prepare_sst2.py`` (``text/SPLIT.input0``, ``.label``)."""
    paths = [os.path.join(data, "text", f"{split}.{ext}") for ext in ("input0", "label")]
    for path in paths:
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass --data of a scripts/prepare_sst2.py folder that has the "
                                 f"split {split!r}")
    with open(paths[0], encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    with open(paths[1], encoding="utf-8") as f:
        labels = [int(line) for line in f]
    if len(sentences) != len(labels):
        raise InterpretError(f"{paths[0]} has {len(sentences)} lines but {paths[1]} {len(labels)}: prepare again")
    return sentences, labels


def count_table_point(train, train_labels, test, test_labels, n, examples):
    """The count-table model on the first ``n`` training sentences: its accuracy on ``test`` (label of the larger
    Σ_l Trans(y | x_l)), the mean largest α^IBM toward the gold label, and β^IBM, α^IBM of the ``examples``."""
    import numpy as np

    from fairseq_interp.attention_learning.count_table import count_table, polarity_and_attention

    model = count_table(train[:n], train_labels[:n])
    correct, peaks = 0, []
    for words, label in zip(test, test_labels):
        scores = [polarity_and_attention(model, words, y)[0].sum() for y in (0, 1)]
        correct += int(int(np.argmax(scores)) == label) if scores[0] != scores[1] else 0
        peaks.append(float(polarity_and_attention(model, words, label)[1].max()) if words else 0.0)
    views = []
    for i in examples:
        beta, alpha = polarity_and_attention(model, test[i], test_labels[i])
        views.append({"id": i, "words": test[i], "label": test_labels[i], "beta": [round(float(b), 6) for b in beta],
                      "alpha": [round(float(a), 6) for a in alpha]})
    return {"train_sentences": n, "accuracy": 100.0 * correct / len(test), "mean_max_alpha": float(np.mean(peaks)),
            "uniform_max_alpha": float(np.mean([1.0 / len(w) for w in test if w])), "examples": views}


def plot_figure5(points, path):
    plt = pyplot()
    examples = len(points[0]["examples"])
    fig, axes = plt.subplots(examples, len(points), figsize=(3.2 * len(points), 2.2 * examples), squeeze=False)
    for col, point in enumerate(points):
        for row, view in enumerate(point["examples"]):
            ax = axes[row][col]
            x = range(len(view["words"]))
            ax.bar([i - 0.2 for i in x], view["beta"], width=0.4, label="β^IBM = Trans(y | x_l) (polarity)")
            ax.bar([i + 0.2 for i in x], view["alpha"], width=0.4, label="α^IBM (attention)")
            ax.set_xticks(list(x))
            ax.set_xticklabels(view["words"], rotation=60, fontsize=7)
            ax.set_ylim(0, 1)
            if row == 0:
                ax.set_title(f"{point['train_sentences']} training sentences", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"label {view['label']}", fontsize=8)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def figure5(args):
    outputs = ["figure5.json", "figure5.md", "figure5.png"]
    check_results_folder(args.results_path, outputs, "--results-path", args.overwrite)
    prepare(args)
    train, train_labels = read_text_split(args.data, "train")
    test, test_labels = read_text_split(args.data, args.gen_subset)
    counts = sorted({len(train) if n == 0 else min(n, len(train)) for n in args.counts})
    examples = [i for i, w in enumerate(test) if args.min_words <= len(w) <= args.max_words][:args.sentences]
    if not examples:
        raise InterpretError(f"no {args.gen_subset} sentence has {args.min_words}..{args.max_words} words: widen "
                             "--min-words/--max-words")
    points = [count_table_point(train, train_labels, test, test_labels, n, examples)
              for n in progress_loop(counts, args, prefix="figure5 counts")]
    summary = markdown_table(["training sentences counted", f"accuracy on {args.gen_subset} (%)",
                              "mean max α^IBM (gold label)", "uniform 1/L"],
                             [[p["train_sentences"], f"{p['accuracy']:.1f}", f"{p['mean_max_alpha']:.3f}",
                               f"{p['uniform_max_alpha']:.3f}"] for p in points]) + "\n"
    os.makedirs(args.results_path, exist_ok=True)
    write_atomic(os.path.join(args.results_path, "figure5.json"), json.dumps(
        {"options": {"data": args.data, "gen_subset": args.gen_subset, "counts": counts, "examples": examples},
         "points": points}, indent=1))
    write_atomic(os.path.join(args.results_path, "figure5.md"), summary)
    plot_figure5(points, os.path.join(args.results_path, "figure5.png"))
    print(summary)


def add_sst2_options(parser):
    """The results folder and the SST-2 preparation options of the subcommands that read SST-2."""
    parser.add_argument("--results-path", required=True, help="results folder (required; created if missing)")
    parser.add_argument("--data", default=os.path.join(REPO, "data", "sst2"),
                        help="prepared folder (scripts/prepare_sst2.py; prepared here when missing; default: "
                             "%(default)s)")
    parser.add_argument("--rows", choices=["sentences", "all"], default="sentences",
                        help="prepare_sst2.py --rows (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=0,
                        help="prepare_sst2.py --train-size (0 = all; default: %(default)s)")


def check_options(args):
    """The drivers' numbers, before any run starts."""
    check_counts(args, {"train_size": 1 if args.command == "figure7" else 0, "valid_size": 1, "max_update": 1,
                        "every": 1, "batch_size": 1, "num_sentences": 0, "proxy_epochs": 0, "jobs": 1, "seq_len": 1,
                        "vocab_size": 2, "save_every": 1, "sentences": 1, "min_words": 1, "max_words": 1})
    for count in getattr(args, "counts", None) or []:
        check_range(count, "--counts", 0, what="0 = all")
    check_range(getattr(args, "lr", None), "--lr", 0, strict_minimum=True)
    device_flags(args)  # --device cuda without a GPU: refused before any run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sst2", help="Table 2's SST row (Table 5) and Table 10 on SST-2")
    add_sst2_options(s)
    s.add_argument("--ckpt-dir", default=os.path.join(REPO, "checkpoints", "snell2021-sst2"),
                   help="folder of the four runs' checkpoints (default: %(default)s)")
    s.add_argument("--arch", default="lstm_attention_classifier", help="default: %(default)s")
    s.add_argument("--seeds", type=int, nargs=4, default=[1, 2, 3, 4], metavar="SEED",
                   help="seeds of the main, second-seed, uniform and frozen runs (default: %(default)s)")
    s.add_argument("--max-update", type=int, default=4000, help="appendix A.8: 4000 (default: %(default)s)")
    s.add_argument("--every", type=int, default=250,
                   help="checkpoints every N updates after 250 (A.8: 250; default: %(default)s)")
    s.add_argument("--lr", type=float, default=1e-3,
                   help="Adam learning rate (the authors' code: Adam's default; default: %(default)s)")
    s.add_argument("--batch-size", type=int, default=32, help="appendix A.8: 32 (default: %(default)s)")
    s.add_argument("--gen-subset", default="test",
                   help="probed split (test = GLUE's SST-2 dev, 872 sentences; default: %(default)s)")
    s.add_argument("--num-sentences", type=int, default=0,
                   help="probe the sentences with id < N (0 = all; default: %(default)s)")
    s.add_argument("--proxy-epochs", type=int, default=30,
                   help="epochs of the β^px proxy, best by valid loss (default: %(default)s)")
    s.add_argument("--jobs", type=int, default=2, help="runs in parallel, one CPU thread each (default: %(default)s)")
    s.add_argument("--resume", action="store_true", help="continue from the results folder's records")
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    add_device_argument(s)
    add_progress_arguments(s, log_interval=1)
    s.set_defaults(func=sst2)
    f = sub.add_parser("figure7", help="γ_{l*}, γ_{l*+1}, γ̄, γ_L over training under uniform attention (Figure 7)")
    f.add_argument("--results-path", required=True, help="results folder (required; created if missing)")
    f.add_argument("--ckpt-dir", default=os.path.join(REPO, "checkpoints", "snell2021-figure7"),
                   help="default: %(default)s")
    f.add_argument("--arch", default="lstm_attention_classifier", help="default: %(default)s")
    f.add_argument("--seq-len", type=int, default=40, help="§6.1: 40 (default: %(default)s)")
    f.add_argument("--vocab-size", type=int, default=40, help="§6.1: 40 (default: %(default)s)")
    f.add_argument("--train-size", type=int, default=10000, help="default: %(default)s")
    f.add_argument("--valid-size", type=int, default=1000, help="default: %(default)s")
    f.add_argument("--max-update", type=int, default=3000, help="default: %(default)s")
    f.add_argument("--save-every", type=int, default=100, help="measure every N updates (default: %(default)s)")
    f.add_argument("--lr", type=float, default=1e-3, help="default: %(default)s")
    f.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    f.add_argument("--seed", type=int, default=1, help="seed of the data and the model (default: %(default)s)")
    f.add_argument("--resume", action="store_true", help="continue from the results folder's records")
    f.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    add_device_argument(f)
    add_progress_arguments(f, log_interval=1)
    f.set_defaults(func=figure7)
    g = sub.add_parser("figure5", help="the count-table model's word polarity and attention on SST-2 (Figure 5)")
    add_sst2_options(g)
    g.add_argument("--gen-subset", default="test", help="the split shown and scored (default: %(default)s)")
    g.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000, 0],
                   help="training sentences counted at each point (0 = all; default: %(default)s)")
    g.add_argument("--sentences", type=int, default=3, help="example sentences drawn (default: %(default)s)")
    g.add_argument("--min-words", type=int, default=5, help="shortest example sentence (default: %(default)s)")
    g.add_argument("--max-words", type=int, default=9, help="longest example sentence (default: %(default)s)")
    g.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    add_progress_arguments(g, log_interval=1)
    g.set_defaults(func=figure5)
    args = parser.parse_args(rename_options(sys.argv[1:] if argv is None else argv,
                                            {"--out": "--results-path", "--subset": "--gen-subset"}, COMMAND))
    check_options(args)
    args.func(args)


if __name__ == "__main__":
    script_main("classification", main)
