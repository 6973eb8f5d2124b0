"""Recording loss change allocation during ``fairseq-train`` (Zhu et al. 2020, Lan et al. 2019).

:class:`LcaTaskMixin` goes before a fairseq task class in the bases (``class T(LcaTaskMixin, TranslationTask)``)
and needs the ``lca_*`` fields of :class:`LcaConfigMixin` in the task's config. It hooks
``FairseqTask.optimizer_step``, which fairseq's trainer calls once per update, after gradient accumulation
(``--update-freq``), all-reduce, normalization and clipping, with θ_t still in the model:

1. sample B' from ``--lca-split`` (a seeded function of the update number, so resumed runs sample the same
   batches) and compute L(θ_t; B'), g_t = ∇L(θ_t; B') in eval mode (no dropout; RNG and the training gradients
   in ``.grad`` are untouched, so training follows the same trajectory as without LCA);
2. copy θ_t, let the optimizer step, and add LCA_t = g_t · (θ_{t+1} − θ_t) per group to the interval sums;
3. every ``--lca-interval`` updates append the interval means (Eq. 3) to ``<lca-dir>/lca.jsonl``.

While training, rank 0 holds a lock on ``--lca-dir`` (taken at the first update, before anything is written into
the folder): a second training into the same folder stops there with one line. Building the task and criterion
alone (loading a checkpoint for analysis) takes no lock.

Extra memory: the copy of θ_t and g_t (2× the parameters). Each checkpoint save (``task.state_dict()``) appends
the unfinished interval to the record file and stores it under ``task_state["lca"]`` (plain lists: loads with
torch's safe loader); a run resumed from update N continues from the state saved at N (see
:mod:`fairseq_interp.lca.records`). In distributed training only rank 0 samples B', computes g_t on its own
copy of the model (the parameters are identical on all ranks) and writes; other ranks just step.

``--lca-exact`` uses the whole split instead of B'. ``--lca-integration midpoint|simpson`` replaces g_t by the
gradient at the middle of the step or by Simpson's weights (g_t + 4 g_mid + g_{t+1}) / 6 (Lan et al.), and
``--lca-residual`` (implied by simpson) also evaluates L(θ_{t+1}; B') and records ΔL and |ΔL − Σ LCA|.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq import utils
from fairseq.data import data_utils
from fairseq.logging import metrics
from fairseq.dataclass import ChoiceEnum
from omegaconf import II

from .allocation import EmbeddingRoleCapture, LcaAccumulator, LcaGroups, loss_and_grads, token_counts
from ..common.errors import InterpretError
from ..common.outputs import check_output_folder, output_lock
from ..common.wrappers import unwrap
from .records import FORMAT, LOCK_NAME, LcaRecordFile, record_path

logger = logging.getLogger(__name__)

LCA_INTEGRATION_CHOICES = ChoiceEnum(["first", "midpoint", "simpson"])
LCA_BUCKET_FREQUENCY_CHOICES = ChoiceEnum(["train", "dictionary"])


@dataclass
class LcaConfigMixin:
    """The ``--lca-*`` options; mix into a task's dataclass config."""

    lca_dir: Optional[str] = field(default=None, metadata={
        "help": "folder of the record file lca.jsonl (lca.<split>.jsonl per split with several splits; required)"})
    lca_split: str = field(default="train", metadata={
        "help": "split B' is sampled from (the gradient g_t = grad L(theta_t; B')): train (--train-subset), valid, "
                "test, or any split name of the data folder; several separated by commas (train,test: Zhu et al. "
                "record both) are recorded around the same steps, one record file each"})
    lca_max_tokens: Optional[int] = field(default=None, metadata={
        "help": "tokens in the sampled batch B' (counted as --max-tokens counts them), and per batch in "
                "--lca-exact; default: a quarter of --max-tokens"})
    lca_interval: int = field(default=15, metadata={
        "help": "updates averaged per record (Zhu et al. Eq. 3)"})
    lca_exact: bool = field(default=False, metadata={
        "help": "g_t over the whole --lca-split instead of a sampled batch (small data only)"})
    lca_integration: LCA_INTEGRATION_CHOICES = field(default="first", metadata={
        "help": "gradient along the step: first (g at theta_t), midpoint, simpson (Lan et al.)"})
    lca_residual: bool = field(default=False, metadata={
        "help": "also evaluate L(theta_t+1; B') and record Delta L and |Delta L - sum LCA| (implied by simpson)"})
    lca_bucket_frequency: LCA_BUCKET_FREQUENCY_CHOICES = field(default="train", metadata={
        "help": "word frequency of the 25 frequency buckets (Zhu et al. Figure 5): train = how often each symbol "
                "occurs on its side (source for the encoder embedding, target for the decoder's) of the training "
                "split; dictionary = the counts in fairseq's dictionary (with a joined dictionary: both sides)"})
    lca_seed: int = II("common.seed")
    lca_train_max_tokens: Optional[int] = II("dataset.max_tokens")
    lca_max_update: int = II("optimization.max_update")


def _is_rank0():
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_rank() != 0)


def validate_lca_config(cfg):
    """Option checks with one-line messages naming the fix."""
    if not cfg.lca_dir:
        raise InterpretError("--lca-dir is required with an LCA task: pass a folder for lca.jsonl")
    check_output_folder(cfg.lca_dir, "--lca-dir")
    splits = lca_splits(cfg)
    if not splits or len(set(splits)) != len(splits):
        raise InterpretError(f"--lca-split {cfg.lca_split!r}: give one or more distinct split names separated by "
                             f"commas (e.g. train,test)")
    if cfg.lca_interval < 1:
        raise InterpretError(f"--lca-interval must be >= 1 (got {cfg.lca_interval})")
    if cfg.lca_max_tokens is None and not getattr(cfg, "lca_train_max_tokens", None):
        raise InterpretError("--lca-max-tokens is required when training without --max-tokens: pass a token count")
    if cfg.lca_max_tokens is not None and cfg.lca_max_tokens < 1:
        raise InterpretError(f"--lca-max-tokens must be >= 1 (got {cfg.lca_max_tokens})")


def lock_lca_dir(lca_dir):
    """Create ``--lca-dir`` and take its lock (:func:`~fairseq_interp.common.outputs.output_lock`): a second
    training into the same folder is refused at once with one line. Returns the held lock (released when the
    process ends, also after ``kill -9``)."""
    import contextlib

    os.makedirs(lca_dir, exist_ok=True)
    held = contextlib.ExitStack()
    held.enter_context(output_lock(lca_dir, LOCK_NAME, "fairseq-train", option="--lca-dir"))
    return held


def lca_max_tokens(cfg):
    """--lca-max-tokens, or a quarter of --max-tokens (keeps the extra forward/backward at about a quarter of a
    training step's; see docs/BENCHMARKS.md)."""
    return cfg.lca_max_tokens if cfg.lca_max_tokens is not None else max(1, cfg.lca_train_max_tokens // 4)


def lca_splits(cfg):
    """The splits of ``--lca-split`` (comma-separated), in order."""
    return [x.strip() for x in str(cfg.lca_split).split(",") if x.strip()]


def metric_prefix(split):
    """Prefix of the metrics logged per record interval of ``split`` (a TensorBoard section)."""
    return f"lca_{split}/"


def log_interval_metrics(record, split):
    """Log an interval record's group totals (``lca_<split>/<group>``: Σ over the group's parameters of the
    interval's mean LCA per update) and ``lca_<split>/total`` through fairseq's ``metrics``, weighted by the
    interval's updates.

    Called inside the trainer's update, so the values join the active aggregators (``train_inner``, ``train``)
    and reach every progress-bar backend (``--log-format``, ``--tensorboard-logdir``, ``--wandb-project``) at
    the next ``--log-interval`` flush; several intervals in one flush are averaged per update. With
    ``--log-interval`` equal to ``--lca-interval`` each logged value is one record interval."""
    weight = record["n_updates"]
    prefix = metric_prefix(split)
    for name, value in record["groups"].items():
        metrics.log_scalar(prefix + name, value["sum"], weight=weight, priority=500)
    metrics.log_scalar(prefix + "total", record["lca_total"], weight=weight, priority=501)


def training_counts(task, src_dict, tgt_dict):
    """{"src"|"tgt": occurrences of each symbol on that side of the training split} (Figure 5's frequency)."""
    split = task.cfg.train_subset
    try:
        dataset = task.dataset(split)
    except KeyError:
        task.load_dataset(split, combine=False, epoch=1)
        dataset = task.dataset(split)
    sides = {"src": (getattr(dataset, "src", None), src_dict), "tgt": (getattr(dataset, "tgt", None), tgt_dict)}
    counts = {}
    for side, (tokens, dictionary) in sides.items():
        if dictionary is None:
            continue
        if tokens is None:
            raise InterpretError(f"--lca-bucket-frequency train: the {split} split of this task has no "
                                 f"{side} side to count words on: pass --lca-bucket-frequency dictionary")
        counts[side] = token_counts(tokens, len(dictionary))
    return counts


class LcaSession:
    """Everything LCA needs in one training run: the groups (once), one :class:`LcaRecorder` per ``--lca-split``
    and the update hook that runs the optimizer step once, between their gradients and their allocations."""

    def __init__(self, task, model, criterion, update_num):
        cfg = task.cfg
        self.model = unwrap(model)
        src_dict, tgt_dict = getattr(task, "source_dictionary", None), getattr(task, "target_dictionary", None)
        counts = (training_counts(task, src_dict, tgt_dict) if str(cfg.lca_bucket_frequency) == "train"
                  else None)
        self.groups = LcaGroups(self.model, src_dict, tgt_dict, counts=counts)
        self.capture = EmbeddingRoleCapture(self.model, self.groups)
        splits = lca_splits(cfg)
        self.recorders = {split: LcaRecorder(task, self.model, criterion, update_num, split, self.groups,
                                             self.capture, record_path(cfg.lca_dir, split, len(splits)))
                          for split in splits}

    def step(self, do_step, update_num):
        """Run the optimizer step ``do_step()`` for update ``update_num + 1`` with LCA of every split around it."""
        update = update_num + 1
        before = {split: r.before(update) for split, r in self.recorders.items()}
        old = [p.detach().clone() for p in self.groups.params]
        do_step()
        for split, r in self.recorders.items():
            r.after(before[split], old, update)

    def snapshot(self):
        """{split: the unfinished interval} at a checkpoint save (also appended to each record file)."""
        return {split: r.snapshot() for split, r in self.recorders.items()}


class LcaRecorder:
    """LCA on one split: its batches, interval sums and record file (module docstring). The groups and the
    embedding-role capture are shared by the splits of a :class:`LcaSession`."""

    def __init__(self, task, model, criterion, update_num, split, groups, capture, path):
        cfg = task.cfg
        self.cfg, self.task, self.criterion = cfg, task, criterion
        self.model, self.groups, self.capture = model, groups, capture
        self.name = split
        self.split = cfg.train_subset if split == "train" else split
        self.max_tokens = lca_max_tokens(cfg)
        self.batches, self.dataset = self._batches()
        self.acc = LcaAccumulator(self.groups)
        self.acc.reset(start=update_num + 1)
        self.last_update = update_num
        header = {"type": "header", "format": FORMAT, "first_update": update_num + 1,
                  "options": {"split": self.split, "max_tokens": self.max_tokens, "interval": cfg.lca_interval,
                              "exact": bool(cfg.lca_exact), "integration": str(cfg.lca_integration),
                              "residual": self.residual, "seed": cfg.lca_seed,
                              "bucket_frequency": str(cfg.lca_bucket_frequency),
                              "batches": len(self.batches), "sentences": int(sum(len(b) for b in self.batches))},
                  **self.groups.header()}
        self.file = LcaRecordFile(path, header, update_num)
        if self.file.restored_state is not None:
            self.acc.load_state(self.file.restored_state)
            logger.info(f"LCA: resumed {self.file.path} at update {update_num}")
        else:
            logger.info(f"LCA: recording {self.split} to {self.file.path} from update {update_num + 1} "
                        f"({len(self.groups.group_names)} groups)")

    @property
    def residual(self):
        return bool(self.cfg.lca_residual) or str(self.cfg.lca_integration) == "simpson"

    def _batches(self):
        task, cfg = self.task, self.cfg
        try:
            dataset = task.dataset(self.split)
        except KeyError:
            try:
                task.load_dataset(self.split, combine=False, epoch=1)
            except FileNotFoundError:
                raise InterpretError(f"--lca-split {self.split}: the data folder has no split {self.split!r}: "
                                     f"binarize it (fairseq-preprocess --{self.split}pref ...) or pick another "
                                     f"--lca-split") from None
            dataset = task.dataset(self.split)
        with data_utils.numpy_seed(cfg.lca_seed):
            order = dataset.ordered_indices()
        order, _ = dataset.filter_indices_by_size(order, task.max_positions())
        fits = np.array([dataset.num_tokens(i) <= self.max_tokens for i in order], dtype=bool)
        order = np.asarray(order)[fits]
        if len(order) == 0:
            raise InterpretError(f"no sentence of split {self.split} fits --lca-max-tokens {self.max_tokens}: "
                                 f"raise --lca-max-tokens")
        if not fits.all():
            logger.warning(f"LCA: {int((~fits).sum())} sentences of {self.split} exceed --lca-max-tokens, skipped")
        batches = dataset.batch_by_size(order, max_tokens=self.max_tokens)
        return [np.asarray(b) for b in batches], dataset

    def _samples(self, update):
        """B' for update ``update`` (seeded by --seed and the update number), or all batches in exact mode."""
        if self.cfg.lca_exact:
            chosen = self.batches
        else:
            rng = np.random.default_rng([int(self.cfg.lca_seed), int(update)])
            chosen = [self.batches[int(rng.integers(len(self.batches)))]]
        device = self.groups.params[0].device
        samples = []
        for batch in chosen:
            sample = self.dataset.collater([self.dataset[int(i)] for i in batch])
            samples.append(utils.apply_to_sample(lambda t: t.to(device), sample))
        return samples, (chosen[0].tolist() if len(chosen) == 1 and self.cfg.lca_interval == 1 else None)

    def _grads(self, samples):
        """L and ∇L over ``samples`` (token-weighted over batches in exact mode)."""
        if len(samples) == 1:
            loss, grads, roles, _ = loss_and_grads(self.model, self.criterion, samples[0], self.groups,
                                                   self.capture)
            return loss, grads, roles
        total_loss, total_size, grads, roles = 0.0, 0.0, None, None
        for sample in samples:
            loss, g, r, size = loss_and_grads(self.model, self.criterion, sample, self.groups, self.capture)
            total_loss += loss * size
            total_size += size
            if grads is None:
                grads = [x * size for x in g]
                roles = {k: {role: x * size for role, x in v.items()} for k, v in r.items()}
            else:
                for a, b in zip(grads, g):
                    a.add_(b, alpha=size)
                for k, v in r.items():
                    for role, x in v.items():
                        roles[k][role].add_(x, alpha=size)
        grads = [x / total_size for x in grads]
        roles = {k: {role: x / total_size for role, x in v.items()} for k, v in roles.items()}
        return total_loss / total_size, grads, roles

    def _loss(self, samples):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                total, size = 0.0, 0.0
                for sample in samples:
                    loss, sample_size, _ = self.criterion(self.model, sample)
                    total += float(loss)
                    size += float(sample_size) or 1.0
        finally:
            self.model.train(was_training)
        return total / size

    def _set_params(self, values):
        with torch.no_grad():
            for p, v in zip(self.groups.params, values):
                p.copy_(v)

    def before(self, update):
        """B' of update ``update``, L(θ_t; B') and g_t = ∇L(θ_t; B'), taken before the optimizer step."""
        samples, batch_ids = self._samples(update)
        loss, grads, roles = self._grads(samples)
        return samples, batch_ids, loss, grads, roles

    def after(self, before, old, update):
        """Allocate the step θ_t = ``old`` → θ_{t+1} (now in the model) with the gradients of :meth:`before`."""
        samples, batch_ids, loss, grads, roles = before
        integration = str(self.cfg.lca_integration)
        loss_after = None
        if integration != "first":
            new = [p.detach().clone() for p in self.groups.params]
            self._set_params([(a + b) / 2 for a, b in zip(old, new)])
            try:
                _, g_mid, r_mid = self._grads(samples)
            finally:
                self._set_params(new)
            if integration == "midpoint":
                grads, roles = g_mid, r_mid
            else:
                loss_after, g_end, r_end = self._grads(samples)
                grads = [(a + 4 * b + c) / 6 for a, b, c in zip(grads, g_mid, g_end)]
                roles = {k: {role: (v[role] + 4 * r_mid[k][role] + r_end[k][role]) / 6 for role in v}
                         for k, v in roles.items()}
        if self.residual and loss_after is None:
            loss_after = self._loss(samples)
        self.acc.add(grads, roles, old, loss, loss_after)
        self.last_update = update
        if batch_ids is not None:
            self._batch_ids = batch_ids
        if update % self.cfg.lca_interval == 0:
            self._write(update, partial=False)
            self.acc.reset(start=update + 1)
        elif self.cfg.lca_max_update and update == self.cfg.lca_max_update and self.acc.n:
            self._write(update, partial=True)  # the interval stays open: a resumed run completes it

    def _write(self, update, partial):
        record = self.acc.record(update, partial=partial)
        if self.cfg.lca_interval == 1 and getattr(self, "_batch_ids", None) is not None:
            record["batch_ids"] = self._batch_ids
        self.file.append(record)
        log_interval_metrics(record, self.name)

    def snapshot(self):
        """The unfinished interval at a checkpoint save: appended to the record file and returned for the
        checkpoint's task state."""
        state = {"type": "state", "update": self.last_update, "accumulator": self.acc.state()}
        self.file.append(state)
        return state


class LcaTaskMixin:
    """Adds LCA recording to a fairseq task (module docstring). Put it first in the bases."""

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        validate_lca_config(cfg)
        self._lca_criterion = None
        self._lca_recorder = None

    def build_criterion(self, cfg, *args, **kwargs):
        criterion = super().build_criterion(cfg, *args, **kwargs)
        self._lca_criterion = criterion
        return criterion

    def optimizer_step(self, optimizer, model, update_num):
        parent = super()
        if not _is_rank0():
            return parent.optimizer_step(optimizer, model, update_num)
        if self._lca_recorder is None:
            if self._lca_criterion is None:
                raise InterpretError("LCA needs the training criterion: build it with task.build_criterion")
            if getattr(self, "_lca_lock", None) is None:  # held until the process ends (also after kill -9)
                self._lca_lock = lock_lca_dir(self.cfg.lca_dir)
            self._lca_recorder = LcaSession(self, model, self._lca_criterion, update_num)
        self._lca_recorder.step(lambda: parent.optimizer_step(optimizer, model, update_num), update_num)

    def state_dict(self):
        state = dict(super().state_dict())
        if self._lca_recorder is not None and _is_rank0():
            state["lca"] = self._lca_recorder.snapshot()
        return state
