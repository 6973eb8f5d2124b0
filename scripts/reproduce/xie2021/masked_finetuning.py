#!/usr/bin/env python
"""Xie et al. 2021 on Multi30k at small scale: the paper's systems and baselines, the k / ρ sweeps and erasure.

``table1`` (Table 1, many-to-many: the 8 directions En<->De, En<->Fr, En<->Cs, De<->Fr) and ``table2`` (Table 2,
one-to-many: En->De, En->Fr, En->Cs) train and score, per seed (``--seeds``), the systems of §4.2:

* ``individual``: one bilingual Transformer per direction (the Multilingual model's size, same dictionary);
* ``multilingual``: the Multilingual baseline (``translation_multi_simple_epoch``, ``--encoder-langtok tgt``,
  Johnson et al. 2017);
* ``baseline+ft``: the baseline continued without masks for the fine-tuning updates (our control for the extra
  training of the masked systems; not in the paper);
* ``ts``: target-specific attention (Blackwood et al. 2018, ``transformer_target_attention``), from scratch;
* ``adapter``: language-pair adapters with a ``--adapter-dim`` projection (Bapna and Firat 2019,
  ``transformer_lang_adapter``; default a quarter of the model width, as the paper's 128 of 512), from scratch;
* ``masked-absolute`` / ``masked-taylor``: importance on the training data (Eq. 7-8), allocation (Eq. 9, ρ, k),
  masked fine-tuning from the baseline (Our Method-AV / -TE);
* ``expansion`` (``table2`` only): the baseline's FFN widened by ``--expansion-ffn / FFN`` (the paper: 3000 / 2048)
  with the new units' output weights at zero (``fairseq-interp neurons expand``), trained unmasked for the
  fine-tuning updates so the new units learn, then Taylor importance, allocation and masked fine-tuning.

BLEU per direction (sacrebleu, detokenized), parameter counts (shared embeddings once; the masks and pair names are
buffers, not parameters), mean ± sd over seeds, and sacrebleu's paired bootstrap of every system against the
Multilingual baseline (and of the masked systems against ``baseline+ft``) per direction and seed. Then the paper's
Table 1 / Table 2 numbers beside ours (``paper_numbers.json``): average BLEU, gain over Multilingual, parameters
relative to Multilingual.

``sweep`` (Figure 4 / Table 3): masked fine-tuning for several k at ``--rho`` and several ρ at ``--k``; with
``--erasure``, ``fairseq-interp neurons erase --random-control`` on the masked model at (``--k``, ``--rho``)
(Figure 5 with the random-neuron control).

Every step is resumable from the records of ``--work``: finished trainings (checkpoints hold their update count),
translations (kept per system, seed and direction) and table rows (``records.json`` / ``sweep.json``, written after
every system) are reused, an interrupted training continues from its last checkpoint, and other model or data
settings into the same ``--work`` are refused; ``--baseline-from WORK`` copies another folder's data and finished
baselines, so another fine-tuning setting (``--finetune-lr``) of the same baselines costs minutes. The data are
prepared (``scripts/prepare_data.py``) in the driver's own process, so a rerun finds them prepared without starting
a Python that imports torch and fairseq; fairseq's commands and the plugin's run as subprocesses. With
``--report``, the marked section of that markdown file is replaced.

    python scripts/reproduce/xie2021/masked_finetuning.py table1 --work results/xie2021 --report docs/neurons.md
    python scripts/reproduce/xie2021/masked_finetuning.py table2 --work results/xie2021-o2m --report docs/neurons.md
    python scripts/reproduce/xie2021/masked_finetuning.py sweep --work results/xie2021-sweep --ks 0.5 0.7 0.9 \\
        --rhos 0.8 0.9 0.95 --report docs/neurons.md [--erasure]
"""

import argparse
import contextlib
import json
import logging
import os
import shlex
import time

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.bleu import corpus_bleu, paired_generate_outputs, read_hypotheses, read_references
from fairseq_interp.common.checkpoints import PLUGIN_DIR, checkpoint_updates
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import (REPO, add_device_argument, converge, device_flags, run, script_main,
                                               stopped_by, train as train_until, valid_curve)
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.options import PROGRESS_OPTIONS, add_progress_arguments, defaults_help_formatter
from fairseq_interp.common.outputs import output_lock
from fairseq_interp.common.preparation import prepare_data
from fairseq_interp.common.tables import markdown_table, markdown_table_lines

TRAINING_RECORD = "training.json"  # a run to convergence: its curve, best update and how it stopped
THREADS = os.environ.get("OMP_NUM_THREADS", "1")  # one thread per job: run two jobs side by side on two cores
logger = logging.getLogger("masked_finetuning")
TABLE1_MARK = ("<!-- xie2021-table1 -->", "<!-- /xie2021-table1 -->")
TABLE2_MARK = ("<!-- xie2021-table2 -->", "<!-- /xie2021-table2 -->")
# the sections of models trained to convergence (--patience), beside those of fixed-length training
CONVERGED_MARKS = {"table1": ("<!-- xie2021-table1-converged -->", "<!-- /xie2021-table1-converged -->"),
                   "table2": ("<!-- xie2021-table2-converged -->", "<!-- /xie2021-table2-converged -->")}
SWEEP_MARK = ("<!-- xie2021-sweep -->", "<!-- /xie2021-sweep -->")
BASELINE_TASK, MASKED_TASK = "translation_multi_simple_epoch", "translation_multi_neuron_masked"
LANG_SPECIFIC_TASK = "translation_multi_lang_specific"
XIE2021_M2M = "en-de,de-en,en-fr,fr-en,en-cs,cs-en,de-fr,fr-de"
XIE2021_O2M = "en-de,en-fr,en-cs"
# the systems of each table, in the paper's row order (baseline+ft is our control)
SYSTEMS = {"table1": ("individual", "multilingual", "baseline+ft", "ts", "adapter", "masked-absolute",
                      "masked-taylor"),
           "table2": ("individual", "multilingual", "baseline+ft", "ts", "adapter", "masked-absolute",
                      "masked-taylor", "expansion")}
PAPER_ROWS = {"individual": "Individual", "multilingual": "Multilingual", "ts": "+TS", "adapter": "+Adapter",
              "masked-absolute": "Our Method-AV", "masked-taylor": "Our Method-TE", "expansion": "+Expansion"}
# settings that must match for finished runs to be reused
MODEL_KEYS = ("lang_pairs", "train_size", "valid_size", "test_size", "vocab_size", "layers", "dim", "max_tokens",
              "baseline_updates", "finetune_updates", "individual_updates", "beam", "criterion", "rho", "k",
              "adapter_dim", "ts_attention", "expansion_ffn", "importance_subset", "importance_sentences",
              "patience", "validate_every", "finetune_lr")
# settings added after records were first written: records that do not name them were made with the option's default
ADDED_SETTINGS = ("patience", "validate_every", "finetune_lr")
# the settings a baseline (and the prepared data) depends on: --baseline-from reuses one made with the same
BASELINE_KEYS = ("lang_pairs", "train_size", "valid_size", "test_size", "vocab_size", "layers", "dim", "max_tokens",
                 "baseline_updates", "patience", "validate_every")
# the sections of records.json keyed by seed ("seed1", ...): each process of a shared --work writes its own seeds'
SEED_SECTIONS = ("bleu", "bootstrap", "allocation", "train_seconds", "training")


class BaselineSource:
    """The ``--work`` folder named by ``--baseline-from``: its prepared data and finished Multilingual baselines,
    copied into a run whose settings differ only after the baseline (fine-tuning, systems, allocation)."""

    def __init__(self, path, args):
        self.path, self.work = path, os.path.abspath(path)
        if self.work == os.path.abspath(args.work):
            raise InterpretError(f"--baseline-from {path}: that is the --work folder itself")
        found = [os.path.join(self.work, name) for name in ("records.json", "sweep.json")
                 if os.path.exists(os.path.join(self.work, name))]
        if not found:
            raise InterpretError(f"--baseline-from {path}: no records.json or sweep.json there (not a --work folder "
                                 f"of this driver)")
        with open(found[0]) as f:
            self.records = json.load(f)
        ours = settings_of(args)
        self.settings = made_with(self.records, ours)
        diff = first_difference(self.settings, ours, BASELINE_KEYS)
        if diff:
            raise InterpretError(f"--baseline-from {path} was made with other data or baseline settings ({diff})")

    def copy_data(self, dest):
        """The prepared data (once): the baselines' dictionaries and sentencepiece model are these."""
        if not os.path.exists(dest):
            copy_folder(os.path.join(self.work, "data"), dest)

    def copy_baseline(self, seed, dest):
        """Copy the finished baseline of ``seed`` to ``dest`` (once); its training seconds (or None)."""
        src = os.path.join(self.work, f"seed{seed}", "baseline")
        if not os.path.isdir(dest):
            if not training_finished(src, self.settings["baseline_updates"], self.settings["patience"]):
                raise InterpretError(f"--baseline-from {self.path}: the baseline of seed {seed} has not finished "
                                     f"training there ({src})")
            copy_folder(src, dest)
        seconds = self.records.get("train_seconds", {})
        return seconds.get(f"seed{seed}", {}).get("multilingual") or (seconds.get("baseline") if seed == 1 else None)


def training_finished(folder, updates, patience):
    """Whether the training into ``folder`` has ended: with ``patience``, its record ``training.json`` (written
    when fairseq-train has stopped, :meth:`Experiment.converge`); without, ``updates`` updates in its last
    checkpoint."""
    if patience:
        return os.path.exists(os.path.join(folder, TRAINING_RECORD))
    return checkpoint_updates(os.path.join(folder, "checkpoint_last.pt")) >= updates


def copy_folder(src, dest):
    """Copy a folder without its lock files; ``dest`` appears whole or not at all."""
    import shutil

    partial = dest + ".copying"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(src, partial, ignore=shutil.ignore_patterns("*.lock"))
    os.replace(partial, dest)


class Experiment:
    """The prepared data, directions and training/scoring steps of one ``--work`` folder."""

    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.data = os.path.join(self.work, "data")
        self.bin = os.path.join(self.data, "bin")
        self.source = BaselineSource(args.baseline_from, args) if getattr(args, "baseline_from", None) else None
        os.makedirs(self.work, exist_ok=True)
        with output_lock(self.work, "data", "masked_finetuning", "--work", wait=True):  # one process prepares
            if self.source:
                self.source.copy_data(self.data)
            self.prepare()
        with open(os.path.join(self.bin, "lang_pairs.txt"), encoding="utf-8") as f:
            self.pairs = f.read().strip().split(",")
        self.multi = self.lang_args(self.pairs)

    def prepare(self):
        args = self.args
        prepare_data(["--lang-pairs", args.lang_pairs, "--out", self.data, "--train-size", args.train_size,
                      "--valid-size", args.valid_size, "--test-size", args.test_size, "--vocab-size", args.vocab_size])

    @staticmethod
    def lang_args(pairs):
        return ["--lang-pairs", ",".join(pairs), "--encoder-langtok", "tgt"]

    def ffn(self):
        return 2 * self.args.dim

    def size_args(self, ffn=None):
        n, d = self.args.layers, self.args.dim
        ffn = ffn or self.ffn()
        return ["--encoder-layers", str(n), "--decoder-layers", str(n), "--encoder-embed-dim", str(d),
                "--decoder-embed-dim", str(d), "--encoder-ffn-embed-dim", str(ffn), "--decoder-ffn-embed-dim",
                str(ffn), "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                "--share-all-embeddings", "--dropout", "0.1"]

    def folder(self, seed, name):
        return os.path.join(self.work, f"seed{seed}", name)

    def train_args(self, seed, langs=None, ffn=None):
        """fairseq-train options every training shares (data, languages, model size, optimizer, seed)."""
        return [self.bin, "--user-dir", PLUGIN_DIR, *(langs or self.multi), *self.size_args(ffn), "--optimizer",
                "adam", "--adam-betas", "(0.9,0.98)", "--lr-scheduler", "inverse_sqrt", "--criterion",
                "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", str(self.args.max_tokens),
                *device_flags(self.args), "--seed", str(seed), "--no-epoch-checkpoints"]

    def train(self, name, updates, extra, seed=1, langs=None, ffn=None):
        """Train ``updates`` updates into ``WORK/seedS/NAME`` unless done: ``(checkpoint, seconds or None)``."""
        return train_until(self.folder(seed, name), updates, [
            *self.train_args(seed, langs, ffn), "--disable-validation", "--log-format", "simple", "--log-interval",
            "100", *extra], threads=THREADS)

    def converge(self, name, max_update, extra, seed=1, langs=None):
        """Train into ``WORK/seedS/NAME`` until the valid loss (every direction's valid split) has not improved for
        ``--patience`` validations of ``--validate-every`` updates, or ``max_update``, unless done:
        ``(checkpoint_best.pt, seconds or None, training record)``. The record (curve of valid loss against
        updates, best update, how it stopped) is ``training.json`` in the folder, written when fairseq-train has
        ended; until then a rerun continues the training from its last checkpoint and stops where the uninterrupted
        one would (:func:`~fairseq_interp.common.fairseq_runs.converge`)."""
        args, folder = self.args, self.folder(seed, name)
        record_path = os.path.join(folder, TRAINING_RECORD)
        best = os.path.join(folder, "checkpoint_best.pt")
        if training_finished(folder, max_update, args.patience):
            with open(record_path) as f:
                return best, None, json.load(f)
        log = os.path.join(folder, "train.jsonl")
        seconds = converge(["fairseq-train", *self.train_args(seed, langs), *extra], folder, log,
                           args.validate_every, args.patience, max_update,
                           run_log=os.path.join(folder, "last-run.log"), threads=THREADS) or None
        curve = valid_curve(log)
        if not curve:
            raise InterpretError(f"{log}: fairseq-train validated nothing (is there a valid split?)")
        updates = checkpoint_updates(os.path.join(folder, "checkpoint_last.pt"))
        record = {"updates": updates, "best_update": min(curve, key=lambda point: point[1])[0],
                  "stopped_by": stopped_by(updates, max_update), "max_update": max_update,
                  "patience": args.patience, "validate_every": args.validate_every,
                  "curve": [{"update": u, "valid_loss": loss} for u, loss, _ in curve]}
        write_atomic(record_path, json.dumps(record, indent=1) + "\n")
        return best, seconds, record

    def scratch(self, name, updates, extra, seed=1, langs=None):
        """A model trained from scratch: ``updates`` updates, or with ``--patience`` until convergence with
        ``updates`` as the cap: ``(checkpoint, seconds or None, training record or None)``."""
        if self.args.patience:
            return self.converge(name, updates, extra, seed, langs)
        return (*self.train(name, updates, extra, seed, langs), None)

    def scratch_args(self):
        """Optimizer settings of every model trained from scratch (the baseline's)."""
        return ["--lr", "2e-3", "--warmup-updates", "200"]

    def baseline(self, seed=1):
        """The Multilingual baseline: ``(checkpoint, seconds or None, training record or None)``; with
        ``--baseline-from``, the other folder's finished baseline of this seed (copied once), with its seconds."""
        seconds = None
        if self.source:
            seconds = self.source.copy_baseline(seed, self.folder(seed, "baseline"))
        ckpt, ran, training = self.scratch("baseline", self.args.baseline_updates, [
            "--task", BASELINE_TASK, "--arch", "transformer", *self.scratch_args()], seed)
        return ckpt, ran or seconds, training

    def finetune_args(self, baseline):
        """Optimizer settings of every fine-tuning run: ``--finetune-lr`` after a 50-update warm-up."""
        return ["--lr", f"{self.args.finetune_lr:g}", "--warmup-updates", "50", "--finetune-from-model", baseline]

    def importance(self, ckpt, out):
        """``neurons importance`` of ``ckpt`` on every direction (once)."""
        if not os.path.exists(out):
            run(["fairseq-interp", "neurons", "importance", self.bin, "--path", ckpt, "--pairs", *self.pairs,
                 "--train-subset", self.args.importance_subset, "--num-sentences",
                 str(self.args.importance_sentences), "--out", out + ".tmp.pt", "--overwrite"], threads=THREADS)
            os.replace(out + ".tmp.pt", out)
        return out

    def allocate(self, importance, rho, k, criterion, masks, plot):
        """``neurons allocate`` into ``masks`` (once); returns its summary line and the scores of §5.2."""
        out = run(["fairseq-interp", "neurons", "allocate", importance, "--rho", str(rho), "--k", str(k),
                   "--criterion", criterion, "--out", masks + ".tmp.pt", "--plot", plot, "--overwrite"],
                  threads=THREADS)
        os.replace(masks + ".tmp.pt", masks)
        lines = out.splitlines()
        # the logged summary "... | fairseq_interp.neurons | N/M general neurons (rho, k, criterion) -> FILE"
        summary = next(line for line in lines if " general neurons (" in line)
        summary = summary.rsplit(" | ", 1)[-1].lstrip("| ").split(" -> ")[0]
        scores = {}
        for line in lines:
            if line.startswith('{"lscore"') or line.startswith('{"mscore"'):
                scores.update(json.loads(line))
        return summary, scores

    def hypotheses(self, ckpt, task, pair, out, langs=None):
        """The test-split translations of one direction (``fairseq-generate`` output kept in ``out``)."""
        src, tgt = pair.split("-")
        if not os.path.exists(out):
            text = run(["fairseq-generate", self.bin, "--user-dir", PLUGIN_DIR, "--task", task,
                        *(langs or self.multi), "--source-lang", src, "--target-lang", tgt, "--path", ckpt,
                        "--gen-subset", "test", "--beam", str(self.args.beam), "--max-tokens", "4000",
                        "--max-len-a", "1.5", "--max-len-b", "10",
                        # fairseq's batch_by_size drops the last len % 8 sentences with the default multiple of 8
                        "--required-batch-size-multiple", "1", "--post-process", "sentencepiece",
                        *device_flags(self.args)],
                       threads=THREADS)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            write_atomic(out, text)
        hyps, ids = read_hypotheses(out)
        refs = self.references(pair)
        if len(ids) != len(refs):
            raise InterpretError(f"{out}: {len(ids)} hypotheses for {len(refs)} references")
        return hyps

    def references(self, pair):
        return read_references(os.path.join(self.data, "raw", f"test.{pair.split('-')[1]}"))

    def generate_path(self, seed, system, pair):
        return os.path.join(self.work, "generate", f"seed{seed}", system, f"{pair}.txt")

    def bleu(self, ckpt, task, pair, out, langs=None):
        """sacrebleu of one direction's test split."""
        return corpus_bleu(self.hypotheses(ckpt, task, pair, out, langs), self.references(pair),
                           pair.split("-")[1]).score

    def score(self, ckpt, task, system, digits=None, seed=1):
        """BLEU of every direction: ``{pair: BLEU}`` (rounded to ``digits`` if given)."""
        scores = {pair: self.bleu(ckpt, task, pair, self.generate_path(seed, system, pair)) for pair in self.pairs}
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


def settings_of(args, exclude=("work", "report", "func", "command", "seeds", "systems", "erasure", "device",
                                "baseline_from")):
    return {k: v for k, v in vars(args).items() if k not in exclude + PROGRESS_OPTIONS}


def setting_defaults():
    """The parser's defaults of the settings added after records were first written (:data:`ADDED_SETTINGS`)."""
    parser = argparse.ArgumentParser()
    add_scale_arguments(parser)
    return {key: parser.get_default(key) for key in ADDED_SETTINGS}


def made_with(records, settings):
    """The settings ``records`` were made with: its own, and for the :data:`ADDED_SETTINGS` that ``settings`` has
    and the records do not name, the option's default."""
    return {**{k: v for k, v in setting_defaults().items() if k in settings}, **records["settings"]}


def first_difference(made, settings, keys):
    """``"key: made vs wanted"`` for the first of ``keys`` (present in ``settings``) whose values differ, or None."""
    for key in keys:
        if key in settings and made.get(key) != settings.get(key):
            return f"{key}: {made.get(key)} vs {settings.get(key)}"
    return None


def load_state(path, settings, empty, keys=MODEL_KEYS):
    """The records of a ``--work`` folder (or ``empty``); refuses records made with other model or data settings."""
    if not os.path.exists(path):
        return {"settings": settings, **empty}
    with open(path) as f:
        state = json.load(f)
    diff = first_difference(made_with(state, settings), settings, keys)
    if diff:
        raise InterpretError(f"{path} was made with other settings ({diff}): use another --work or the same options")
    state["settings"] = {**state["settings"], **settings}
    return state


def save_state(path, state, seeds=None):
    """Write the records. With ``seeds`` (the seeds this process runs), other processes may run other seeds into
    the same ``--work``: under a lock, the records of the other seeds are taken from the file as it is now (and
    added to ``state``), so no process drops what another wrote."""
    if seeds is None:
        write_atomic(path, json.dumps(state, indent=1) + "\n")
        return
    mine = {f"seed{seed}" for seed in seeds}
    with output_lock(os.path.dirname(path), os.path.basename(path), "masked_finetuning", "--work", wait=True):
        if os.path.exists(path):
            with open(path) as f:
                on_disk = json.load(f)
            for section in SEED_SECTIONS:
                for key, value in on_disk.get(section, {}).items():
                    if key not in mine:
                        state.setdefault(section, {})[key] = value
            for system, count in on_disk.get("params", {}).items():
                state["params"].setdefault(system, count)
        write_atomic(path, json.dumps(state, indent=1) + "\n")


def parameter_count(ckpt):
    """Parameters of a checkpoint's model: every tensor of its state dict once (tied embeddings count once),
    without the buffers (neuron masks, pair names, positional-embedding placeholders, versions)."""
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    seen = {}
    for key, tensor in state.items():
        if key.startswith("neuron_mask") or key == "lang_specific_pairs" or key.endswith(".version") or \
                key.endswith("_float_tensor"):
            continue
        seen[(tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))] = tensor.numel()
    return sum(seen.values())


# ------------------------------------------------------------------------------------------------- table1 / table2

class TableRun:
    """One seed's systems of ``table1``/``table2``: ``(checkpoint, task, language args)`` per system and
    direction, trained on demand."""

    def __init__(self, exp, args, seed, records):
        self.exp, self.args, self.seed, self.records = exp, args, seed, records
        self._baseline = None

    def baseline(self):
        if self._baseline is None:
            self._baseline, seconds, training = self.exp.baseline(self.seed)
            self.note_time("multilingual", seconds, training)
        return self._baseline

    def note_time(self, system, seconds, training=None):
        """Record a training's seconds (when it ran now) and, for one trained to convergence, its curve."""
        if seconds:
            self.records.setdefault("train_seconds", {}).setdefault(f"seed{self.seed}", {})[system] = round(seconds)
        if training:
            self.records.setdefault("training", {}).setdefault(f"seed{self.seed}", {})[system] = training

    def masks(self, ckpt, criterion, tag):
        """Importance of ``ckpt`` (once per checkpoint) and the allocation with ``criterion``."""
        exp, args = self.exp, self.args
        folder = exp.folder(self.seed, "")
        importance = exp.importance(ckpt, os.path.join(folder, f"importance-{tag}.pt"))
        masks = os.path.join(folder, f"masks-{tag}-{criterion}.pt")
        summary, scores = exp.allocate(importance, args.rho, args.k, criterion, masks,
                                       os.path.join(folder, f"figure3-{tag}-{criterion}.png"))
        self.records.setdefault("allocation", {}).setdefault(f"seed{self.seed}", {})[f"{tag}-{criterion}"] = {
            "summary": summary, **scores}
        return masks

    def system(self, name):
        """``{pair: (checkpoint, task, language args)}`` of one system (trained if needed)."""
        exp, args = self.exp, self.args
        base = self.baseline() if name != "individual" else None
        if name == "multilingual":
            return {p: (base, BASELINE_TASK, None) for p in exp.pairs}
        if name == "individual":
            out = {}
            for pair in exp.pairs:
                langs = exp.lang_args([pair])
                ckpt, seconds, training = exp.scratch(f"individual-{pair}", args.individual_updates, [
                    "--task", BASELINE_TASK, "--arch", "transformer", *exp.scratch_args()], self.seed, langs)
                self.note_time(f"individual-{pair}", seconds, training)
                out[pair] = (ckpt, BASELINE_TASK, langs)
            return out
        training = None
        if name == "baseline+ft":
            ckpt, seconds = exp.train("baseline-ft", args.finetune_updates, [
                "--task", BASELINE_TASK, "--arch", "transformer", *exp.finetune_args(base)], self.seed)
        elif name == "ts":
            ckpt, seconds, training = exp.scratch("ts", args.baseline_updates, [
                "--task", LANG_SPECIFIC_TASK, "--arch", "transformer_target_attention", "--target-attention",
                args.ts_attention, *exp.scratch_args()], self.seed)
        elif name == "adapter":
            ckpt, seconds, training = exp.scratch("adapter", args.baseline_updates, [
                "--task", LANG_SPECIFIC_TASK, "--arch", "transformer_lang_adapter", "--lang-adapter-dim",
                str(args.adapter_dim), *exp.scratch_args()], self.seed)
        elif name in ("masked-absolute", "masked-taylor"):
            criterion = name.split("-")[1]
            masks = self.masks(base, criterion, "baseline")
            ckpt, seconds = exp.train(name, args.finetune_updates, [
                "--task", MASKED_TASK, "--arch", "transformer_neuron_masked", "--neuron-masks", masks,
                *exp.finetune_args(base)], self.seed)
        elif name == "expansion":
            ckpt, seconds = self.expansion(base)
        else:
            raise InterpretError(f"unknown system {name!r}")
        self.note_time(name, seconds, training)
        task = {"ts": LANG_SPECIFIC_TASK, "adapter": LANG_SPECIFIC_TASK}.get(
            name, MASKED_TASK if name.startswith("masked") or name == "expansion" else BASELINE_TASK)
        return {p: (ckpt, task, None) for p in exp.pairs}

    def expansion(self, base):
        """+Expansion: widen the baseline's FFN (new output weights zero), train it unmasked for the fine-tuning
        updates, then Taylor importance, allocation and masked fine-tuning of the wide model."""
        exp, args = self.exp, self.args
        wide = exp.folder(self.seed, "expanded.pt")
        if not os.path.exists(wide):
            run(["fairseq-interp", "neurons", "expand", "--path", base, "--ffn-dim", str(args.expansion_ffn),
                 "--seed", str(self.seed), "--out", wide], threads=THREADS)
        trained, s1 = exp.train("expanded-ft", args.finetune_updates, [
            "--task", BASELINE_TASK, "--arch", "transformer", *exp.finetune_args(wide)], self.seed,
            ffn=args.expansion_ffn)
        masks = self.masks(trained, "taylor", "expanded")
        ckpt, s2 = exp.train("expansion", args.finetune_updates, [
            "--task", MASKED_TASK, "--arch", "transformer_neuron_masked", "--neuron-masks", masks,
            *exp.finetune_args(trained)], self.seed, ffn=args.expansion_ffn)
        return ckpt, (s1 or 0) + (s2 or 0) or None


def table(args, which):
    """``table1`` (many-to-many) or ``table2`` (one-to-many): every system of ``--systems`` for every seed."""
    t_start = time.time()
    exp = Experiment(args)
    systems = args.systems or list(SYSTEMS[which])
    unknown = [s for s in systems if s not in SYSTEMS[which]]
    if unknown:
        raise InterpretError(f"--systems: {unknown[0]!r} is not a system of {which} (systems: "
                             f"{', '.join(SYSTEMS[which])})")
    state_path = os.path.join(exp.work, "records.json")
    state = load_state(state_path, settings_of(args), {"bleu": {}, "params": {}, "bootstrap": {}})
    state["table"] = which
    if exp.source:
        state["baseline_from"] = os.path.relpath(exp.source.work, REPO)
    with contextlib.ExitStack() as held:  # one process per seed; other seeds may run beside it
        for seed in args.seeds:
            held.enter_context(output_lock(exp.work, f"seed{seed}", "masked_finetuning", "--work or other --seeds"))
        for seed in args.seeds:
            run_seed(exp, args, state, state_path, seed, systems, which)
    state["last_run_seconds"] = round(time.time() - t_start)
    save_state(state_path, state, args.seeds)
    md = table_markdown(exp, state, which)
    write_atomic(os.path.join(exp.work, f"{which}.md"), md + "\n")
    print(md)
    if args.report:
        table_report(args.report, exp, state, which, md)


def run_seed(exp, args, state, state_path, seed, systems, which):
    """Every system of one seed (kept when its records are there), then the seed's paired bootstrap."""
    key = f"seed{seed}"
    runner = TableRun(exp, args, seed, state)
    rows = state["bleu"].setdefault(key, {})
    for system in progress_loop(systems, args, prefix=f"{which} seed {seed} systems"):
        if system in rows:
            logger.info(f"seed {seed} {system}: kept")
            continue
        plan = runner.system(system)
        rows[system] = {pair: round(exp.bleu(ckpt, task, pair, exp.generate_path(seed, system, pair), langs), 4)
                        for pair, (ckpt, task, langs) in plan.items()}
        if system not in state["params"]:
            state["params"][system] = sum(parameter_count(c) for c in dict.fromkeys(c for c, _, _ in plan.values()))
        save_state(state_path, state, args.seeds)
        logger.info(f"seed {seed} {system}: avg BLEU {exp.average(rows[system]):.2f}")
    bootstrap(exp, state, seed, systems)
    save_state(state_path, state, args.seeds)


def bootstrap(exp, state, seed, systems):
    """sacrebleu's paired bootstrap per direction: every system against the Multilingual baseline, the masked
    systems also against ``baseline+ft`` (once per seed, system and reference system)."""
    from fairseq_interp.common.statistics import paired_bootstrap_bleu

    key = f"seed{seed}"
    done = state["bootstrap"].setdefault(key, {})
    comparisons = [(s, "multilingual") for s in systems if s != "multilingual"]
    comparisons += [(s, "baseline+ft") for s in systems if s.startswith("masked") or s == "expansion"]
    for system, reference in comparisons:
        name = f"{system} vs {reference}"
        if name in done or reference not in state["bleu"].get(key, {}) or system not in state["bleu"][key]:
            continue
        done[name] = {}
        for pair in exp.pairs:
            test = paired_bootstrap_bleu(*paired_generate_outputs(
                exp.generate_path(seed, reference, pair), exp.generate_path(seed, system, pair), exp.references(pair),
                "its --work mixes records of other data: run again with a new --work"), lang=pair.split("-")[1])
            done[name][pair] = {"difference": round(test.difference, 4), "p_value": round(test.p_value, 4),
                                "ci": round(test.system_ci, 4)}


def _mean_sd(values):
    from fairseq_interp.common.statistics import mean_sd

    return mean_sd(values)


def _cell(values, digits=2):
    mean, sd = _mean_sd(values)
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def by_seed(section):
    """The ``(seedS, value)`` items of a per-seed section of the records, in seed order."""
    return sorted(section.items(), key=lambda item: int(item[0][4:]))


def system_rows(exp, state, which):
    """``{system: {"bleu": {pair: [per seed]}, "avg": [per seed]}}`` for the systems scored in every seed."""
    seeds = [k for k, rows in by_seed(state["bleu"]) if rows]
    out = {}
    for system in SYSTEMS[which]:
        scored = [k for k in seeds if system in state["bleu"][k]]
        if not scored:
            continue
        out[system] = {"seeds": scored,
                       "bleu": {p: [state["bleu"][k][system][p] for k in scored] for p in exp.pairs},
                       "avg": [exp.average(state["bleu"][k][system]) for k in scored]}
    return out


def table_markdown(exp, state, which):
    """BLEU per direction (mean ± sd over seeds), average, parameters; the paired bootstrap; the paper beside."""
    rows = system_rows(exp, state, which)
    table = []
    for system, r in rows.items():
        params = state["params"].get(system)
        table.append([system, len(r["seeds"]), *(_cell(r["bleu"][p]) for p in exp.pairs), f"**{_cell(r['avg'])}**",
                      f"{params / 1e6:.2f}M" if params else "–"])
    tests_table = []
    for seed, tests in by_seed(state["bootstrap"]):
        for name, per_pair in tests.items():
            diffs = [v["difference"] for v in per_pair.values()]
            better = [p for p, v in per_pair.items() if v["p_value"] < 0.05 and v["difference"] > 0]
            worse = [p for p, v in per_pair.items() if v["p_value"] < 0.05 and v["difference"] < 0]
            tests_table.append([name, seed[4:], f"{sum(diffs) / len(diffs):+.2f}", ", ".join(better) or "–",
                                ", ".join(worse) or "–"])
    lines = [*markdown_table_lines(["system", "seeds", *exp.pairs, "avg", "Para"], table),
             "", "Paired bootstrap (sacrebleu, 1,000 samples) per direction: the difference in BLEU, and the "
             "directions where p < 0.05 (better / worse); one line per seed.", "",
             *markdown_table_lines(["comparison", "seed", "mean Δ over directions", "better (p < 0.05)",
                                    "worse (p < 0.05)"], tests_table),
             "", paper_comparison(exp, state, which, rows)]
    trained = training_lines(state)
    return "\n".join(lines + (["", *trained] if trained else []))


def training_lines(state):
    """How each model trained to convergence (``--patience``) ended: one line per seed."""
    runs = by_seed(state.get("training", {}))
    if not runs:
        return []
    first = next(iter(runs[0][1].values()))
    out = [f"Trained until the valid loss had not improved for {first['patience']} validations of "
           f"{first['validate_every']} updates (best checkpoint used); per seed, each model's last update (best):"]
    for seed, models in runs:
        out.append(f"seed {seed[4:]}: " + ", ".join(f"{name} {r['updates']:,} ({r['best_update']:,}, "
                                                    f"{r['stopped_by']})" for name, r in models.items()) + ".")
    return [" ".join(out[:1]), *(f"* {line}" for line in out[1:])]


def paper_comparison(exp, state, which, rows):
    """paper | ours | difference for the quantities that transfer across data sets: average BLEU, gain over
    Multilingual, parameters relative to Multilingual."""
    from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side

    numbers = load_paper_numbers("neurons")
    name = "Table 1" if which == "table1" else "Table 2"
    s = state["settings"]
    setting = (f"Multi30k {len(exp.pairs)} directions, {s['train_size']:,} sentences, {s['layers']}-layer "
               f"{s['dim']}-dim, {len(next(iter(rows.values()))['seeds']) if rows else 0} seed(s)")
    base = rows.get("multilingual")
    out = []
    for system, row_name in PAPER_ROWS.items():
        if system not in rows:
            continue
        try:
            ave = numbers.get(name, row_name, "AVE").value
        except InterpretError:
            continue
        ours = _mean_sd(rows[system]["avg"])[0]
        out.append((f"{row_name}: average BLEU", ave, ours, setting))
        if base is not None and system != "multilingual":
            paper_gain = ave - numbers.get(name, "Multilingual", "AVE").value
            ours_gain = ours - _mean_sd(base["avg"])[0]
            out.append((f"{row_name}: gain over Multilingual (BLEU)", paper_gain, ours_gain, "same"))
        para = state["params"].get(system)
        if para and state["params"].get("multilingual"):
            ratio = numbers.get(name, row_name, "Para").value / numbers.get(name, "Multilingual", "Para").value
            out.append((f"{row_name}: parameters / Multilingual's", ratio, para / state["params"]["multilingual"],
                        f"{para / 1e6:.2f}M vs {state['params']['multilingual'] / 1e6:.2f}M"))
    return side_by_side(out)


def table_report(path, exp, state, which, md):
    s = state["settings"]
    seconds = state.get("train_seconds", {})
    timing = "; ".join(f"{seed[4:]}: " + ", ".join(f"{k} {v} s" for k, v in t.items()) for seed, t in seconds.items())
    setting = ("many-to-many, 8 directions" if which == "table1" else "one-to-many, English into German, French "
                                                                       "and Czech")
    options = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in s.items()
                       if not isinstance(v, (list, bool)) and v is not None)
    source = f" --baseline-from {state['baseline_from']}" if state.get("baseline_from") else ""
    copied = (f" (its baseline and data copied from `{state['baseline_from']}`)" if state.get("baseline_from") else
              "")
    if s.get("patience"):
        length = (f"until the valid loss had not improved for {s['patience']} validations of "
                  f"{s['validate_every']} updates (at most {s['baseline_updates']:,} updates)")
        individual = f"the same way (at most {s['individual_updates']:,} updates)"
    else:
        length, individual = f"for {s['baseline_updates']:,} updates", f"{s['individual_updates']:,} updates"
    section = f"""**Scale (small, not the paper's):** Multilingual Multi30k, {setting} ({s['lang_pairs']}),
{s['train_size']:,} aligned training sentences per language, a {s['layers']}-layer {s['dim']}-dim Transformer (FFN
{2 * s['dim']}, 4 heads, shared embeddings), {s['vocab_size']:,}-piece joint sentencepiece. Multilingual, +TS and
+Adapter (projection {s['adapter_dim']}, attention copies: {s['ts_attention']}) trained from scratch {length}
(batches of ≤ {s['max_tokens']:,} tokens), Individual {individual} per direction; the masked systems and `baseline+ft` fine-tune the Multilingual model for {s['finetune_updates']}
updates (peak lr {s['finetune_lr']:g} after a 50-update warm-up){copied}{'; +Expansion widens its FFN to ' + str(s['expansion_ffn']) + ' units' if which == 'table2' else ''}.
Importance on the {s['importance_subset']} split ({'all' if not s['importance_sentences'] else s['importance_sentences']}
sentences per direction), ρ = {s['rho']}, k = {s['k']}. BLEU: sacrebleu, detokenized, beam {s['beam']}, first
{s['test_size']} test_2016_flickr sentences per direction. 1 CPU core of a shared machine; training seconds per
seed: {timing or '–'}.

{md}

Command: `python scripts/reproduce/xie2021/masked_finetuning.py {which} --work {os.path.relpath(exp.work, REPO)}
--seeds {' '.join(str(x) for x in sorted(int(k[4:]) for k, rows in state['bleu'].items() if rows))} {options}{source} --report {path}`."""
    marks, heading = report_section(which, s)
    replace_section(path, marks, section, heading)


def report_section(which, settings):
    """The marks and heading of a run's section: fixed-length or converged baseline, and a section of its own for
    each fine-tuning learning rate other than the default."""
    marks = TABLE1_MARK if which == "table1" else TABLE2_MARK
    title = "Table 1" if which == "table1" else "Table 2"
    extra = ", converged baseline" if settings.get("patience") else ""
    if settings.get("patience"):
        marks = CONVERGED_MARKS[which]
    marks, lr = own_lr_section(marks, settings)
    return marks, f"Xie et al. 2021, {title} (small scale{extra}{lr})"


def own_lr_section(marks, settings):
    """``marks`` of a run with the default fine-tuning lr; with another, marks of its own (``...-lr0.0002 -->``) and
    the words to add to its heading."""
    lr = settings["finetune_lr"]
    if lr == setting_defaults()["finetune_lr"]:
        return marks, ""
    return tuple(mark.replace(" -->", f"-lr{lr:g} -->") for mark in marks), f", fine-tuning lr {lr:g}"


# ----------------------------------------------------------------------------------------------------------- sweep

def grid(args):
    """(k, ρ) points: every k at ``--rho``, every ρ at ``--k``; the shared point once, in that order."""
    points = [(k, args.rho) for k in args.ks] + [(args.k, r) for r in args.rhos]
    return list(dict.fromkeys(points))


def system_name(k, rho):
    return f"k{k:g}-rho{rho:g}"


def specific_share(masks_path):
    """Mean over pairs of the share of all allocated neurons specific to that pair, general and total counts."""
    import torch

    from fairseq_interp.neurons.allocation import specific_share as share

    masks = torch.load(masks_path, map_location="cpu", weights_only=True)
    total = sum(g.numel() for g in masks["general"].values())
    return share(masks), int(sum(int(g.sum()) for g in masks["general"].values())), total


def sweep(args):
    t_start = time.time()
    exp = Experiment(args)
    state_path = os.path.join(exp.work, "sweep.json")
    state = load_state(state_path, settings_of(args, ("work", "report", "func", "command", "baseline_from")),
                       {"runs": {}}, [key for key in MODEL_KEYS if key not in ("rho", "k")])
    if exp.source:
        state["baseline_from"] = os.path.relpath(exp.source.work, REPO)
    base, seconds, training = exp.baseline()
    if training:
        state["baseline_training"] = training
    if seconds:
        state.setdefault("train_seconds", {})["baseline"] = round(seconds)
    importance = exp.importance(base, os.path.join(exp.work, "importance.pt"))
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
    for k, rho in progress_loop(grid(args), args, prefix="sweep (k, ρ)"):
        system = system_name(k, rho)
        if system in state["runs"]:
            logger.info(f"{system}: kept")
            continue
        masks = os.path.join(exp.work, f"masks-{system}.pt")
        if not os.path.exists(masks):
            exp.allocate(importance, rho, k, args.criterion, masks, os.path.join(exp.work, f"figure3-{system}.png"))
        ckpt, seconds = exp.train(f"masked-{system}", args.finetune_updates, [
            "--task", MASKED_TASK, "--arch", "transformer_neuron_masked", "--neuron-masks", masks, *finetune])
        share, general, total = specific_share(masks)
        state["runs"][system] = {"k": k, "rho": rho, "specific_share": share, "general": general, "neurons": total,
                                 "bleu": exp.score(ckpt, MASKED_TASK, system, 2), "train_seconds": seconds}
        save_state(state_path, state)
        logger.info(f"{system}: avg BLEU {exp.average(state['runs'][system]['bleu']):.2f}")
    if args.erasure:
        system = system_name(args.k, args.rho)
        out = os.path.join(exp.work, "erasure")
        if not os.path.exists(os.path.join(out, "erasure.json")):
            run(["fairseq-interp", "neurons", "erase", exp.bin, "--path",
                 os.path.join(exp.folder(1, f"masked-{system}"), "checkpoint_last.pt"), "--references",
                 os.path.join(exp.data, "raw", "test.{tgt}"), "--gen-subset", "test", "--beam", str(args.beam),
                 "--seed", str(args.erasure_seed), "--random-control", "--results-path", out, "--overwrite"],
                threads=THREADS)
        with open(os.path.join(out, "erasure.md")) as f:
            state["erasure"] = {"model": system, "markdown": f.read().strip()}
        with open(os.path.join(out, "erasure.json")) as f:
            record = json.load(f)
        state["erasure"]["seconds"] = record["seconds"]
        from fairseq_interp.neurons.erasure import erasure_control

        state["erasure"]["control"] = erasure_control(record)
        general = record["delta"].get("general")
        state["erasure"]["general_delta"] = round(sum(general.values()) / len(general), 2) if general else None
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
    table = []
    runs = state["runs"]
    order = [s for s in ("baseline", "baseline+ft") if s in runs] + \
        sorted((s for s in runs if s.startswith("k")), key=lambda s: (runs[s]["k"], runs[s]["rho"]))
    for system in order:
        r = runs[system]
        k, rho = (f"{r['k']:g}", f"{r['rho']:g}") if "k" in r else ("", "")
        share = f"{r['specific_share']:.3f}" if "specific_share" in r else ""
        table.append([system, k, rho, share, *(f"{r['bleu'][p]:.2f}" for p in exp.pairs),
                      f"**{exp.average(r['bleu']):.2f}**"])
    return (markdown_table(["system", "k", "ρ", "specific / pair", *exp.pairs, "avg"], table) + "\n\n"
            + sweep_paper_comparison(exp, state))


def sweep_paper_comparison(exp, state):
    """Table 3 (average BLEU per ρ at k 0.7) and Figure 4's best k beside ours."""
    from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side

    numbers = load_paper_numbers("neurons")
    runs, s = state["runs"], state["settings"]
    setting = (f"Multi30k {len(exp.pairs)} directions, {s['train_size']:,} sentences, {s['layers']}-layer "
               f"{s['dim']}-dim, one seed")
    rows = []
    for rho in (0.8, 0.9, 0.95):
        system = system_name(s["k"], rho)
        if system in runs and abs(s["k"] - 0.7) < 1e-9:
            paper = numbers.get("Table 3", f"ρ = {int(round(rho * 100))}%", "AVE").value
            rows.append((f"Table 3: average BLEU at ρ = {rho:g}, k = 0.7", paper, exp.average(runs[system]["bleu"]),
                         setting))
    ks = {runs[n]["k"]: exp.average(runs[n]["bleu"]) for n in runs if "k" in runs[n] and runs[n]["rho"] == s["rho"]}
    if len(ks) > 1:
        best = max(ks, key=ks.get)
        rows.append((f"Figure 4: best k (at ρ = {s['rho']:g}, among {', '.join(f'{k:g}' for k in sorted(ks))})",
                     numbers.get("Figure 4", "best k", "k").value, best, setting))
    return side_by_side(rows) if rows else ""


def importance_data(s):
    """``the 5,000 train`` / ``200 valid``: the sentences importance was measured on."""
    subset = s.get("importance_subset", "train")
    count = s.get("importance_sentences") or (s["train_size"] if subset == "train" else s["valid_size"])
    return f"{count:,} {subset}" if count else f"all {subset}"


def baseline_length(settings, training):
    """How long the sweep's baseline trained, in words."""
    if not training:
        return f"{settings['baseline_updates']:,} updates"
    return (f"{training['updates']:,} updates (best {training['best_update']:,}; patience {training['patience']} × "
            f"{training['validate_every']}, {training['stopped_by']})")


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
                   f"erase --random-control`, seed {s.get('erasure_seed', 1)}; BLEU change per direction,\nthe "
                   f"first row is the unerased BLEU; `random:PAIR` erases as many neurons as `specific:PAIR`, drawn "
                   f"from all neurons):\n\n{state['erasure']['markdown']}")
        control = state["erasure"].get("control")
        if control:
            table = markdown_table(["pair", "erased", "Δ own pair (its specific neurons)",
                                    "Δ own pair (random, same number)", "Δ other pairs (specific)",
                                    "Δ other pairs (random)"],
                                   [[pair, c["erased"], *(f"{c[key]:+.2f}" for key in
                                                          ("own", "own_random", "others", "others_random"))]
                                    for pair, c in control.items()])
            erasure += ("\n\nThe paper's claim, a pair's specific neurons matter to that pair more than to the others "
                        "(and more than random neurons):\n\n" + table)
        from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side

        numbers = load_paper_numbers("neurons")
        general = [v for v in (state["erasure"].get("general_delta"),) if v is not None]
        if general:
            low = numbers.get("Figure 5", "general 20%", "ΔBLEU low").value
            high = numbers.get("Figure 5", "general 20%", "ΔBLEU high").value
            erasure += "\n\n" + side_by_side([
                ("Figure 5: BLEU change, 20% of the general neurons erased (mean over directions)",
                 f"{low:g} to {high:g}", general[0], "our masked model above, seed 1")])
    ks, rhos = " ".join(f"{v:g}" for v in s["ks"]), " ".join(f"{v:g}" for v in s["rhos"])
    options = ("" if s.get("importance_subset", "train") == "train" else
               f" --importance-subset {s['importance_subset']}")
    marks, lr_words = own_lr_section(SWEEP_MARK, s)
    if lr_words:
        options += f" --finetune-lr {s['finetune_lr']:g}"
    if state.get("baseline_from"):
        options += f" --baseline-from {state['baseline_from']}"
    command = (f"python scripts/reproduce/xie2021/masked_finetuning.py sweep --work results/xie2021-sweep --ks {ks} "
               f"--rhos {rhos}{options}\n--report {path}" + (" --erasure" if "erasure" in state else ""))
    section = f"""**Scale:** as the Table-1 run above ({s['train_size']:,} sentences per language, {s['layers']}-layer {s['dim']}-dim
Transformer, baseline {baseline_length(s, state.get("baseline_training"))}, {s['finetune_updates']} fine-tuning updates per system
(peak lr {s['finetune_lr']:g}), {s['criterion']} importance on {importance_data(s)} sentences per direction, BLEU on {s['test_size']} test
sentences per direction, beam {s['beam']}), one seed, 1 CPU core. k sweep at ρ = {s['rho']}, ρ sweep at
k = {s['k']}. `specific / pair`: mean over pairs of the share of all allocated neurons specific to the pair.
{timing}

{md}{erasure}

Command: `{command}`."""
    replace_section(path, marks, section, "Xie et al. 2021, Figure 4 / Table 3 style (small scale): sweeps of k "
                                          f"and ρ, erasure (Figure 5){lr_words}")


# ------------------------------------------------------------------------------------------------------------ main

def add_scale_arguments(p, lang_pairs=XIE2021_M2M):
    """The options of data size, model size, training length and importance (every subcommand)."""
    p.add_argument("--work", required=True, help="folder for data, checkpoints and outputs")
    add_device_argument(p)
    p.add_argument("--lang-pairs", default=lang_pairs, help=f"directions (default {lang_pairs})")
    p.add_argument("--train-size", type=int, default=5000, help="aligned training sentences per language")
    p.add_argument("--valid-size", type=int, default=200, help="valid sentences per direction")
    p.add_argument("--test-size", type=int, default=200, help="test_2016_flickr sentences per direction (BLEU)")
    p.add_argument("--vocab-size", type=int, default=4000, help="joint sentencepiece vocabulary")
    p.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
    p.add_argument("--dim", type=int, default=128, help="embedding width (FFN: 2x)")
    p.add_argument("--max-tokens", type=int, default=2048, help="tokens per batch")
    p.add_argument("--baseline-updates", type=int, default=1500,
                   help="updates of the Multilingual baseline (and of +TS, +Adapter from scratch)")
    p.add_argument("--finetune-updates", type=int, default=300, help="updates of each fine-tuning run")
    p.add_argument("--finetune-lr", type=float, default=1e-3,
                   help="peak learning rate of each fine-tuning run (inverse square root after a 50-update warm-up)")
    p.add_argument("--baseline-from", metavar="WORK",
                   help="another --work folder of this driver made with the same data and baseline settings: copy "
                        "its prepared data and finished Multilingual baselines instead of training them (e.g. to "
                        "fine-tune the same converged baseline with another --finetune-lr)")
    p.add_argument("--patience", type=int, default=0,
                   help="0: train the models from scratch for their fixed counts (--baseline-updates, "
                        "--individual-updates); N: until the valid loss has not improved for N validations "
                        "(fairseq's --patience), those counts being caps, and use the best checkpoint")
    p.add_argument("--validate-every", type=int, default=300, help="updates between validations (with --patience)")
    p.add_argument("--importance-subset", default="train",
                   help="split importance is measured on (default train, as the paper's Eq. 7-8)")
    p.add_argument("--importance-sentences", type=int, default=0,
                   help="sentences per direction for importance (0 = the whole split)")
    p.add_argument("--beam", type=int, default=4, help="beam size (the paper's: 4)")
    p.add_argument("--report", help="markdown file whose marked section is replaced by the results")
    add_progress_arguments(p, log_interval=1)


def add_table_arguments(p, which):
    add_scale_arguments(p, XIE2021_M2M if which == "table1" else XIE2021_O2M)
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="training seeds (every system per seed)")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS[which],
                   help=f"systems to run (default all: {', '.join(SYSTEMS[which])})")
    p.add_argument("--individual-updates", type=int, default=500, help="updates of each Individual model")
    p.add_argument("--adapter-dim", type=int, default=0,
                   help="+Adapter projection width (default: --dim x 128 / 512, the paper's 128 for its 512-dim "
                        "model)")
    p.add_argument("--ts-attention", choices=["all", "cross"], default="all",
                   help="+TS attention modules per target language (all: the paper's parameter count)")
    p.add_argument("--expansion-ffn", type=int, default=0,
                   help="+Expansion FFN width (default: FFN x 3000 / 2048, the paper's widening)")
    p.add_argument("--criterion", default="taylor", help=argparse.SUPPRESS)
    p.add_argument("--rho", type=float, default=0.9, help="share of general neurons (Eq. 9)")
    p.add_argument("--k", type=float, default=0.7, help="specific-neuron threshold (Eq. 9)")
    p.set_defaults(func=lambda args: table(args, which))


def check_driver_options(args):
    """Counts and ranges before any step runs (one line naming the option); 0 = "all" or "derive" where the help
    says so."""
    from fairseq_interp.common.options import check_counts, check_range

    check_range(getattr(args, "finetune_lr", None), "--finetune-lr", 0, strict_minimum=True)
    check_counts(args, {"train_size": 1, "valid_size": 1, "test_size": 1, "vocab_size": 8, "layers": 1, "dim": 2,
                        "max_tokens": 1, "baseline_updates": 1, "finetune_updates": 1, "importance_sentences": 0,
                        "patience": 0, "validate_every": 1,
                        "beam": 1, "individual_updates": 1, "adapter_dim": 0, "expansion_ffn": 0})
    for seed in getattr(args, "seeds", None) or []:
        check_range(seed, "--seeds", 0)
    device_flags(args)  # --device cuda without a GPU: refused before any step
    for name in ("rho", "k"):
        check_range(getattr(args, name, None), "--" + name, 0, 1, strict_minimum=True)
    for name in ("ks", "rhos"):
        for value in getattr(args, name, None) or []:
            check_range(value, "--" + name, 0, 1, strict_minimum=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shown = defaults_help_formatter()
    add_table_arguments(sub.add_parser("table1", help="Table 1: many-to-many, every system of the paper",
                                       formatter_class=shown), "table1")
    add_table_arguments(sub.add_parser("table2", help="Table 2: one-to-many, with +Expansion", formatter_class=shown),
                        "table2")
    sw = sub.add_parser("sweep", help="Figure 4 / Table 3: sweeps of k and ρ, optional erasure (Figure 5)",
                        formatter_class=shown)
    add_scale_arguments(sw)
    sw.add_argument("--criterion", choices=["taylor", "absolute"], default="taylor", help="importance criterion")
    sw.add_argument("--ks", type=float, nargs="+", default=[0.5, 0.7, 0.9], help="k values at --rho")
    sw.add_argument("--rhos", type=float, nargs="+", default=[0.8, 0.9, 0.95], help="ρ values at --k")
    sw.add_argument("--k", type=float, default=0.7, help="k of the ρ sweep and of the erasure model")
    sw.add_argument("--rho", type=float, default=0.9, help="ρ of the k sweep and of the erasure model")
    sw.add_argument("--no-controls", action="store_true", help="skip scoring the baseline and baseline+ft")
    sw.add_argument("--erasure", action="store_true",
                    help="run fairseq-interp neurons erase --random-control on the masked model at (--k, --rho)")
    sw.add_argument("--erasure-seed", type=int, default=1, help="--seed of the erasure")
    sw.set_defaults(func=sweep)
    args = parser.parse_args()
    check_driver_options(args)
    if getattr(args, "expansion_ffn", None) == 0:
        args.expansion_ffn = int(round(2 * args.dim * 3000 / 2048))
    if getattr(args, "adapter_dim", None) == 0:
        args.adapter_dim = max(1, int(round(args.dim * 128 / 512)))
    args.func(args)


if __name__ == "__main__":
    script_main("masked_finetuning", main)
