"""The permutation-copy task of Snell et al. (2021, §4 and §6.2), generated on the fly (no preprocessing).

Every input is ``--seq-len`` distinct tokens in random order, drawn from a vocabulary of ``--vocab-size`` tokens
``t0 t1 ...``:

* ``fixed_set``: always the same set (the first ``seq-len`` tokens), permuted; output = input. Every input token
  co-occurs with every output token, so co-occurrence carries no word-translation knowledge (KTIW).
* ``sampled_set``: a random ``seq-len``-token subset of the vocabulary, permuted; output = input (the control).
* ``mixture``: a permutation of set A (tokens 0..n-1) or of the disjoint set B (n..2n-1), each with
  probability 1/2; output = input.
* ``permute``: a ``sampled_set`` input, output = input reordered by a fixed random permutation π
  (``--permutation-seed``): y_t = x_{π(t)}.

Validation logs ``token_accuracy`` (argmax prediction = reference, teacher-forced, EOS excluded) and
``attention_accuracy`` (argmax of the attention at target t = the source position of y_t), in percent.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from fairseq import utils
from fairseq.data import Dictionary, LanguagePairDataset
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from ..common.attention import attention_from_extra
from ..common.errors import InterpretError
from ..common.registry import register_task
from .generated_data import GeneratedDataTask

PERM_MODES = ChoiceEnum(["fixed_set", "sampled_set", "mixture", "permute"])


@dataclass
class PermutationCopyConfig(FairseqDataclass):
    perm_mode: PERM_MODES = field(default="fixed_set", metadata={"help": "input distribution (module docstring)"})
    seq_len: int = field(default=40, metadata={"help": "tokens per input sequence (EOS added)"})
    vocab_size: int = field(default=60, metadata={"help": "number of content tokens in the vocabulary"})
    train_size: int = field(default=10000, metadata={"help": "training sequences"})
    valid_size: int = field(default=500, metadata={"help": "validation (and test) sequences"})
    data_seed: int = field(default=1, metadata={"help": "seed of the generated data (each split its own stream)"})
    permutation_seed: int = field(default=1, metadata={"help": "seed of the fixed permutation pi (permute mode)"})


def make_dictionary(vocab_size):
    """fairseq's specials, then t0 .. t{V-1}: token t_k has id nspecial + k."""
    dictionary = Dictionary()
    for k in range(vocab_size):
        dictionary.add_symbol(f"t{k}")
    return dictionary


def generate(mode, n, seq_len, vocab_size, seed, permutation_seed=1):
    """(inputs, outputs): two (n, seq_len) arrays of content-token numbers 0..vocab_size-1."""
    rng = np.random.default_rng(seed)
    if mode == "fixed_set":
        src = np.argsort(rng.random((n, seq_len)), axis=1)
    elif mode in ("sampled_set", "permute"):
        src = np.argsort(rng.random((n, vocab_size)), axis=1)[:, :seq_len]
    elif mode == "mixture":
        src = np.argsort(rng.random((n, seq_len)), axis=1) + seq_len * rng.integers(0, 2, size=(n, 1))
    else:
        raise InterpretError(f"unknown --perm-mode {mode}: use fixed_set, sampled_set, mixture or permute")
    tgt = src
    if mode == "permute":
        pi = np.random.default_rng(permutation_seed).permutation(seq_len)
        tgt = src[:, pi]
    return src, tgt


@register_task("permutation_copy", dataclass=PermutationCopyConfig)
class PermutationCopyTask(GeneratedDataTask):
    """Snell et al. (2021) toy task; data generated from ``--data-seed`` at load time."""

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        need = 2 * cfg.seq_len if cfg.perm_mode == "mixture" else cfg.seq_len
        if cfg.seq_len < 1 or cfg.vocab_size < need:
            raise InterpretError(f"--perm-mode {cfg.perm_mode} with --seq-len {cfg.seq_len} needs --vocab-size >= "
                                 f"{need} (got {cfg.vocab_size}): raise --vocab-size or lower --seq-len")
        cls.check_sizes(cfg)
        return cls(cfg, make_dictionary(cfg.vocab_size))

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        cfg = self.cfg
        n, seed = self.split_stream(split, "permutation_copy")
        src, tgt = generate(cfg.perm_mode, n, cfg.seq_len, cfg.vocab_size, seed=seed,
                            permutation_seed=cfg.permutation_seed)
        offset, eos = self.dictionary.nspecial, self.dictionary.eos()
        to_tensors = lambda rows: [torch.tensor(list(r + offset) + [eos], dtype=torch.long) for r in rows]  # noqa
        sizes = np.full(n, cfg.seq_len + 1)
        self.datasets[split] = LanguagePairDataset(
            to_tensors(src), sizes, self.dictionary, to_tensors(tgt), sizes, self.dictionary,
            left_pad_source=False, left_pad_target=False, shuffle=split.startswith("train"))

    def max_positions(self):
        return (self.cfg.seq_len + 1, self.cfg.seq_len + 1)

    # -- validation metrics ----------------------------------------------------------------------
    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        with torch.no_grad():
            logits, extra = model(**sample["net_input"])
            counts = accuracy_counts(logits, extra, sample, self.dictionary.pad(), self.dictionary.eos())
        logging_output.update(counts)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        for name in ("token", "attention"):
            total = sum(log.get(f"_{name}_total", 0) for log in logging_outputs)
            if total == 0:
                continue
            metrics.log_scalar(f"_{name}_correct", sum(log.get(f"_{name}_correct", 0) for log in logging_outputs))
            metrics.log_scalar(f"_{name}_total", total)
            metrics.log_derived(f"{name}_accuracy", _ratio(name))


def _ratio(name):
    def derive(meters):
        # under DDP the reduced sums are tensors
        return round(100.0 * utils.item(meters[f"_{name}_correct"].sum) / utils.item(meters[f"_{name}_total"].sum), 2)

    return derive


def accuracy_counts(logits, extra, sample, pad, eos):
    """Teacher-forced token hits and attention hits (argmax attention on the source position of y_t)."""
    target = sample["target"]
    valid = target.ne(pad) & target.ne(eos)
    counts = {"_token_correct": int((logits.argmax(-1).eq(target) & valid).sum()),
              "_token_total": int(valid.sum())}
    attn = attention_from_extra(extra)
    if attn is not None:
        src = sample["net_input"]["src_tokens"]
        match = target.unsqueeze(-1).eq(src.unsqueeze(1))  # (B, T, L): where y_t occurs in the source
        has = match.any(-1) & valid
        hit = attn.argmax(-1).eq(match.float().argmax(-1)) & has
        counts.update({"_attention_correct": int(hit.sum()), "_attention_total": int(has.sum())})
    return counts
