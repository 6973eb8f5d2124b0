"""The keyword toy task of Snell et al. (2021, §6.1, Figure 7), ``--task keyword_classification``, generated on the fly.

Each input is ``--seq-len`` (40) words drawn uniformly at random from ``--vocab-size`` (40) word types ``1 .. V``;
it is positive iff the keyword ``--keyword`` (1) occurs. The keyword occurs exactly once in a positive sequence:
sequences with the keyword more than once are rejected, and rejection sampling balances the classes (each
example's class is drawn with probability 1/2, then sequences are drawn until one of that class comes), so a
positive is a uniform sequence conditioned on exactly one keyword and a negative one conditioned on none.

Samples have the layout of fairseq's ``sentence_prediction`` task (``net_input.src_tokens``, ``target`` = label), so
``--arch lstm_attention_classifier`` with ``--criterion sentence_prediction`` trains on it and logs ``accuracy``.

:func:`keyword_log_odds` gives the four quantities of Figure 7 on the positive sequences: γ_{l*} (the keyword's
position), γ_{l*+1}, γ̄ = (1/L) Σ_l γ_l and γ_L, with γ_l = Wᵀ h_l the log-odds of β^uf_l (Eq. 22).
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from fairseq.data import Dictionary, FairseqDataset, data_utils
from fairseq.dataclass import FairseqDataclass

from ..common.errors import InterpretError
from ..common.registry import register_task
from .classifier import LABELS
from .generated_data import GeneratedDataTask


@dataclass
class KeywordClassificationConfig(FairseqDataclass):
    seq_len: int = field(default=40, metadata={"help": "words per sequence (§6.1: 40)"})
    vocab_size: int = field(default=40, metadata={"help": "word types 1..V (§6.1: 40)"})
    keyword: int = field(default=1, metadata={"help": "the keyword, one of 1..V (§6.1: 1)"})
    train_size: int = field(default=10000, metadata={"help": "training sequences"})
    valid_size: int = field(default=1000, metadata={"help": "validation (and test) sequences"})
    data_seed: int = field(default=1, metadata={"help": "seed of the generated data (each split its own stream)"})
    num_classes: int = field(default=2, metadata={"help": "classes (binary: 2)"})


def generate(n, seq_len, vocab_size, keyword, seed):
    """(sequences (n, seq_len) of words 1..V, labels (n,)) by rejection sampling; class balance within one example."""
    if not 1 <= keyword <= vocab_size:
        raise InterpretError(f"--keyword {keyword} is not a word type 1..{vocab_size}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    rows = np.empty((n, seq_len), dtype=np.int64)
    for i, label in enumerate(labels):
        while True:
            row = rng.integers(1, vocab_size + 1, size=seq_len)
            if (row == keyword).sum() == label:  # 0 for a negative, exactly 1 for a positive
                rows[i] = row
                break
    return rows, labels


def make_dictionaries(vocab_size):
    words = Dictionary()
    for k in range(1, vocab_size + 1):
        words.add_symbol(str(k))
    labels = Dictionary()
    for label in LABELS:
        labels.add_symbol(label)
    return words, labels


class ClassificationListDataset(FairseqDataset):
    """(word ids, label) pairs batched as fairseq's ``sentence_prediction`` batches them (right padding)."""

    def __init__(self, tokens, labels, pad, shuffle, seed=1):
        self.tokens = [torch.as_tensor(t, dtype=torch.long) for t in tokens]
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.sizes = np.array([len(t) for t in self.tokens])
        self.pad, self.shuffle, self.seed, self.epoch = pad, shuffle, seed, 1

    def __getitem__(self, index):
        return {"id": index, "source": self.tokens[index], "target": self.labels[index]}

    def __len__(self):
        return len(self.tokens)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def collater(self, samples):
        if not samples:
            return {}
        src = data_utils.collate_tokens([s["source"] for s in samples], self.pad, left_pad=False)
        return {"id": torch.tensor([s["id"] for s in samples]),
                "net_input": {"src_tokens": src, "src_lengths": torch.tensor([len(s["source"]) for s in samples])},
                "target": torch.stack([s["target"] for s in samples]),
                "nsentences": len(samples), "ntokens": sum(len(s["source"]) for s in samples)}

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        if self.shuffle:
            with data_utils.numpy_seed(self.seed, self.epoch):
                return np.random.permutation(len(self))
        return np.arange(len(self))


@register_task("keyword_classification", dataclass=KeywordClassificationConfig)
class KeywordClassificationTask(GeneratedDataTask):
    """Snell et al. (2021) §6.1 toy task; data generated from ``--data-seed`` at load time."""

    def __init__(self, cfg, dictionary, label_dictionary):
        super().__init__(cfg, dictionary)
        self._label_dictionary = label_dictionary

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if cfg.seq_len < 1 or cfg.vocab_size < 2:
            raise InterpretError("--seq-len must be >= 1 and --vocab-size >= 2")
        if not 1 <= cfg.keyword <= cfg.vocab_size:
            raise InterpretError(f"--keyword {cfg.keyword} is not a word type 1..{cfg.vocab_size}")
        cls.check_sizes(cfg)
        if cfg.num_classes != 2:
            raise InterpretError("keyword_classification is binary: --num-classes 2")
        return cls(cfg, *make_dictionaries(cfg.vocab_size))

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        cfg = self.cfg
        n, seed = self.split_stream(split, "keyword_classification")
        rows, labels = generate(n, cfg.seq_len, cfg.vocab_size, cfg.keyword, seed=seed)
        ids = rows - 1 + self.dictionary.nspecial  # word k has id nspecial + k - 1
        self.datasets[split] = ClassificationListDataset(ids, labels, self.dictionary.pad(),
                                                         shuffle=split.startswith("train"), seed=cfg.data_seed)
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if hasattr(model, "register_classification_head"):
            model.register_classification_head("sentence_classification_head", num_classes=2)
        return model

    @property
    def label_dictionary(self):
        return self._label_dictionary

    def max_positions(self):
        return self.cfg.seq_len


def keyword_log_odds(model, src_tokens, labels, keyword_id):
    """Figure 7 (Eq. 22–25) over the positive sequences of a batch: the means of γ_{l*}, γ_{l*+1} (sequences whose
    keyword is not last), γ̄ and γ_L, with γ_l = Wᵀ h_l of ``model`` (an ``lstm_attention_classifier``)."""
    positive = labels.eq(1)
    if not positive.any():
        raise InterpretError("no positive sequence to measure: pass sequences with the keyword")
    src = src_tokens[positive]
    with torch.no_grad():
        states, mask = model.encode(src)
        gamma = model.polarity(states).double()
    if not mask.all():
        raise InterpretError("keyword_log_odds needs unpadded sequences of one length")
    at = src.eq(keyword_id).double().argmax(1)
    rows = torch.arange(len(src))
    length = src.size(1)
    inside = at < length - 1
    return {"gamma_keyword": float(gamma[rows, at].mean()),
            "gamma_after_keyword": float(gamma[rows[inside], at[inside] + 1].mean()) if inside.any() else None,
            "gamma_mean": float(gamma.mean(1).mean()),
            "gamma_last": float(gamma[:, -1].mean()),
            "positives": int(positive.sum())}
