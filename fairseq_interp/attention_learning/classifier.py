"""The binary classifier of Snell et al. (2021, §2.4; Wiegreffe and Pinter 2019), ``--arch lstm_attention_classifier``.

h_l = BiLSTM(e(x_l)) (one layer, 256 per direction, appendix A.8); attention logits a_l = vᵀ ReLU(Q h_l) and
α_l = softmax_l(a_l) (Eq. 7); p_pos = σ(Σ_l α_l γ_l) with γ_l = Wᵀ h_l (Eq. 8). The polarity (lexical) probe is
β_l = σ((2y − 1) γ_l) (Eq. 9), so p_correct = σ(Σ_l α_l σ⁻¹(β_l)) (Eq. 12).

Q, v and W carry biases as in the authors' released code (github.com/Sea-Snell/AttentionDynamics,
``classification/classifier_model.py``); with them the default architecture (300-dim embeddings, BiLSTM 256,
attention hidden layer 256) has exactly the 1,274,882 parameters besides embeddings that appendix A.8 reports. The
bias of W is the same at every position: it shifts every γ_l alike and changes no ranking of β.

The model works with fairseq's own ``sentence_prediction`` task and criterion (``--num-classes 2``; data folder
with ``input0/`` and ``label/``, see ``scripts/prepare_sst2.py``) and with the ``keyword_classification`` task
(§6.1). The two-way output is the logits [0, γ] with γ = Σ_l α_l γ_l, so fairseq's cross entropy over them is the
paper's binary cross entropy (log softmax([0, γ])_1 = log σ(γ)) and the logged ``accuracy`` is the classification
accuracy. EOS and padding are not words: they get no attention (the paper's inputs have no EOS).

Options: ``--uniform-attention`` freezes α at 1/L (the model of β^uf, §3.2); ``--freeze-except-attention`` trains
Q and v only, every other parameter frozen at its random initialization (the frozen-β model of appendix A.6, whose
attention is α^fr). GloVe initialization (appendix A.8) needs files that are not available offline: embeddings are
initialized at random (the released code, too, replaces its GloVe-initialized embedding by a fresh random one
before training).
"""

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel

from ..common.errors import InterpretError
from ..common.registry import register_model, register_model_architecture, set_defaults

#: the label symbols a classification data folder must have, in this order: class index = label
LABELS = ("0", "1")


@dataclass
class LSTMAttentionClassifierConfig(FairseqDataclass):
    embed_dim: int = field(default=300, metadata={"help": "word embedding size (appendix A.8: 300)"})
    hidden_size: int = field(default=256, metadata={"help": "BiLSTM state size per direction (appendix A.8: 256)"})
    attention_hidden_dim: int = field(default=256, metadata={"help": "rows of Q in a_l = v^T ReLU(Q h_l) (Eq. 7)"})
    uniform_attention: bool = field(default=False, metadata={"help": "freeze attention at 1/L (the model of beta^uf)"})
    freeze_except_attention: bool = field(default=False, metadata={
        "help": "train only the attention layer (Q, v); embeddings, LSTM and W stay at their random initialization "
                "(the frozen-beta model of appendix A.6, attention alpha^fr)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on embeddings and LSTM states (paper: none)"})
    max_positions: int = field(default=1024, metadata={"help": "longest input"})


def word_mask(src_tokens, dictionary):
    """True where a token is a word: not padding, not EOS, not BOS."""
    return src_tokens.ne(dictionary.pad()) & src_tokens.ne(dictionary.eos()) & src_tokens.ne(dictionary.bos())


def check_label_dictionary(label_dictionary):
    """Class index = label: the label dictionary holds "0" then "1" after fairseq's specials."""
    if label_dictionary is None:
        raise InterpretError("lstm_attention_classifier needs a task with a label dictionary (sentence_prediction "
                             "--num-classes 2, keyword_classification)")
    symbols = tuple(label_dictionary.symbols[label_dictionary.nspecial:label_dictionary.nspecial + 2])
    if symbols != LABELS:
        raise InterpretError(f"the label dictionary starts with {symbols}, not ('0', '1'): class index must equal the "
                             "label; prepare the data with scripts/prepare_sst2.py (it fixes label/dict.txt)")


@register_model("lstm_attention_classifier", dataclass=LSTMAttentionClassifierConfig)
class LSTMAttentionClassifier(BaseFairseqModel):
    """Snell et al. (2021) Eq. 7–8; see the module docstring."""

    def __init__(self, cfg, dictionary):
        super().__init__()
        self.cfg = cfg
        self.dictionary = dictionary
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.embed_dim, padding_idx=dictionary.pad())
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_size, batch_first=True, bidirectional=True)
        self.attention_hidden = nn.Linear(2 * cfg.hidden_size, cfg.attention_hidden_dim)  # Q
        self.attention_vector = nn.Linear(cfg.attention_hidden_dim, 1)  # v
        self.output = nn.Linear(2 * cfg.hidden_size, 1)  # W
        self.dropout = nn.Dropout(cfg.dropout)
        self.uniform = cfg.uniform_attention
        self.classification_heads = {}
        if cfg.freeze_except_attention:
            for module in (self.embed_tokens, self.lstm, self.output):
                module.requires_grad_(False)

    @classmethod
    def build_model(cls, cfg, task):
        if cfg.uniform_attention and cfg.freeze_except_attention:
            raise InterpretError("--uniform-attention and --freeze-except-attention together train nothing: "
                                 "choose one")
        check_label_dictionary(getattr(task, "label_dictionary", None))
        return cls(cfg, task.source_dictionary)

    def register_classification_head(self, name, num_classes=None, **kwargs):
        """For fairseq's ``sentence_prediction`` task and criterion: the output is the two-way [0, γ] (Eq. 8)."""
        if num_classes != 2:
            raise InterpretError(f"lstm_attention_classifier is a binary classifier (Eq. 8): pass --num-classes 2, "
                                 f"not {num_classes}")
        self.classification_heads[name] = num_classes

    # -- pieces, reused by the probes ------------------------------------------------------------
    def encode(self, src_tokens, token_embeddings=None):
        """(h (B, L, 2H), word mask (B, L)): BiLSTM states over the words only, kept at their input positions."""
        mask = word_mask(src_tokens, self.dictionary)
        x = self.embed_tokens(src_tokens) if token_embeddings is None else token_embeddings
        x = self.dropout(x)
        order = torch.argsort((~mask).long(), dim=1, stable=True)  # words first, in order
        x_words = x.gather(1, order.unsqueeze(-1).expand_as(x))
        lengths = mask.sum(1).clamp(min=1).cpu()
        out, _ = self.lstm(pack_padded_sequence(x_words, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src_tokens.size(1))
        states = torch.zeros_like(out).scatter(1, order.unsqueeze(-1).expand_as(out), out)
        states = states * mask.unsqueeze(-1).type_as(states)
        return self.dropout(states), mask

    def attention(self, states, mask):
        """α (B, L) of Eq. 7 (uniform 1/L with ``--uniform-attention``); 0 on non-words."""
        if self.uniform:
            weights = mask.type_as(states)
            return weights / weights.sum(-1, keepdim=True).clamp(min=1)
        scores = self.attention_vector(torch.relu(self.attention_hidden(states))).squeeze(-1)
        scores = scores.float().masked_fill(~mask, torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1).type_as(states) * mask.type_as(states)

    def polarity(self, states):
        """γ_l = Wᵀ h_l (B, L): the log-odds of the positive class if all attention were on l (Eq. 9, 22)."""
        return self.output(states).squeeze(-1)

    # -- fairseq interface -----------------------------------------------------------------------
    def forward(self, src_tokens, src_lengths=None, features_only=False, classification_head_name=None,
                token_embeddings=None, forced_attention=None, **kwargs):
        """Logits [0, Σ_l α_l γ_l] (B, 2) and ``{"attn": α, "gamma": γ, "word_mask": mask}``; ``forced_attention``
        (B, L) replaces α (Eq. 12 with any attention)."""
        states, mask = self.encode(src_tokens, token_embeddings)
        alpha = self.attention(states, mask) if forced_attention is None else forced_attention
        gamma = self.polarity(states)
        logit = (alpha * gamma.masked_fill(~mask, 0.0)).sum(-1)
        logits = torch.stack([torch.zeros_like(logit), logit], dim=-1)
        return logits, {"attn": alpha, "gamma": gamma, "word_mask": mask}

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        logits = net_output[0].float()
        return torch.log_softmax(logits, dim=-1) if log_probs else torch.softmax(logits, dim=-1)

    def max_positions(self):
        return self.cfg.max_positions


def parameters_besides_embeddings(model):
    """Number of parameters outside the word embeddings (appendix A.8 reports 1,274,882 for the paper's sizes)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embed_tokens."))


@register_model_architecture("lstm_attention_classifier", "lstm_attention_classifier")
def lstm_attention_classifier(args):
    """Appendix A.8: 300-dim embeddings, one-layer BiLSTM of 256 per direction, attention hidden layer 256."""
    set_defaults(args, embed_dim=300, hidden_size=256, attention_hidden_dim=256, uniform_attention=False,
                 freeze_except_attention=False, dropout=0.0)


@register_model_architecture("lstm_attention_classifier", "lstm_attention_classifier_tiny")
def lstm_attention_classifier_tiny(args):
    """For tests: 16-dim embeddings, states and attention layer."""
    set_defaults(args, embed_dim=16, hidden_size=16, attention_hidden_dim=16)
    lstm_attention_classifier(args)
