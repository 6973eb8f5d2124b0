"""The LSTM seq2seq model with dot attention of Snell et al. (2021, §2.1), with K heads (§6, Eq. 20–21).

Encoder: h_l = LSTM(e(x_l)). Decoder: s_t = LSTM(e(y_{t-1})) started from the encoder's final state (no input
feeding, so s_t does not depend on attention). Head k scores a^(k)_{t,l} = softmax_l(s_tᵀ W^(k) h_l); the context
is c_t = Σ_k Σ_l a^(k)_{t,l} h_l (Eq. 21); p(y_t) = softmax(N([c_t, s_t])) with N a one-hidden-layer network with
ReLU (appendix A.8; ``--output-activation tanh`` is the variant this plugin used before, kept for its results:
checkpoints saved without the activation's record load as tanh).

The paper's translation encoder (appendix A.8) is a 2-layer bidirectional LSTM of 256: ``--encoder-layers 2
--encoder-bidirectional`` (architecture ``lstm_dot_attention_paper``); h_l is then the concatenation of both
directions (2 × hidden), W^(k) maps it to the decoder's size, and the decoder starts from the encoder's final states
averaged over the two directions, layer by layer (``--decoder-layers`` 1: the top layer's), as the authors'
released code does (``translation/seq2seq_model.py``, ``convert_hidden``).

``--uniform-attention`` freezes the attention at 1/L over the source (the model of β^uf, §3.2);
``--head-init-seeds`` initializes each W^(k) from its own seed (the good/bad-initialization experiment, §6).
The decoder returns the head-averaged attention (B, T, L) in ``extra["attn"]`` like fairseq's ``lstm``, so
``fairseq-generate --print-alignment`` and the attribution adapter work; per-head attention is in
``extra["attn_heads"]`` (K, B, T, L).
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import FairseqEncoder, FairseqEncoderDecoderModel, FairseqIncrementalDecoder

from ..common.errors import InterpretError
from ..common.registry import register_model, register_model_architecture, set_defaults


@dataclass
class LSTMDotAttentionConfig(FairseqDataclass):
    embed_dim: int = field(default=64, metadata={"help": "token embedding size (encoder and decoder)"})
    hidden_size: int = field(default=64, metadata={"help": "LSTM state size of encoder and decoder"})
    output_hidden_dim: int = field(default=64, metadata={"help": "hidden layer size of the output network N"})
    attention_heads: int = field(default=1, metadata={"help": "number of heads K, contexts summed (Eq. 20-21)"})
    uniform_attention: bool = field(default=False, metadata={"help": "freeze attention at uniform 1/L (beta^uf)"})
    head_init_seeds: str = field(default="", metadata={
        "help": "comma-separated seeds, one per head: W^(k) initialized from its own seed (default: --seed)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on embeddings and LSTM outputs"})
    output_activation: ChoiceEnum(["relu", "tanh"]) = field(default="relu", metadata={
        "help": "non-linearity of the output network N (appendix A.8: ReLU)"})
    encoder_layers: int = field(default=1, metadata={"help": "encoder LSTM layers (appendix A.8 translation: 2)"})
    encoder_bidirectional: bool = field(default=False, metadata={
        "help": "bidirectional encoder (appendix A.8 translation); h_l concatenates both directions"})
    decoder_layers: int = field(default=1, metadata={"help": "decoder LSTM layers: 1 or --encoder-layers"})
    max_source_positions: int = field(default=1024, metadata={"help": "longest source"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest target"})


def parse_head_seeds(text, heads):
    if not text:
        return None
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise InterpretError(f"--head-init-seeds {text!r} is not a list of integers: write e.g. 3,17,42")
    if len(seeds) != heads:
        raise InterpretError(f"--head-init-seeds gives {len(seeds)} seeds for {heads} heads: give one per head")
    return seeds


class DotAttentionEncoder(FairseqEncoder):
    """h_l = LSTM(e(x_l)); padding on either side is skipped (packed), outputs stay at their input positions."""

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.embed_dim, padding_idx=self.padding_idx)
        self.layers, self.directions = cfg.encoder_layers, 2 if cfg.encoder_bidirectional else 1
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_size, num_layers=self.layers, batch_first=True,
                            bidirectional=cfg.encoder_bidirectional, dropout=cfg.dropout if self.layers > 1 else 0.0)
        self.output_dim = cfg.hidden_size * self.directions
        self.dropout = nn.Dropout(cfg.dropout)
        self.max_source_positions = cfg.max_source_positions

    def forward(self, src_tokens, src_lengths=None, **kwargs):
        mask = src_tokens.ne(self.padding_idx)
        x = self.dropout(self.embed_tokens(src_tokens))
        order = torch.argsort((~mask).long(), dim=1, stable=True)  # real tokens first, in order
        x_packed = x.gather(1, order.unsqueeze(-1).expand_as(x))
        lengths = mask.sum(1).clamp(min=1).cpu()
        out, (h, c) = self.lstm(pack_padded_sequence(x_packed, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src_tokens.size(1))
        states = torch.zeros_like(out).scatter(1, order.unsqueeze(-1).expand_as(out), out)
        # final states per layer, averaged over the directions: (layers, B, H)
        h, c = (x.view(self.layers, self.directions, *x.shape[1:]).mean(1) for x in (h, c))
        return {
            "encoder_out": [self.dropout(states)],  # (B, L, H × directions)
            "encoder_padding_mask": [~mask],  # (B, L)
            "encoder_final": [h, c],  # (layers, B, H) each
        }

    def reorder_encoder_out(self, encoder_out, new_order):
        return {key: [v.index_select(1 if key == "encoder_final" else 0, new_order) for v in values]
                for key, values in encoder_out.items()}

    def max_positions(self):
        return self.max_source_positions


class DotAttentionDecoder(FairseqIncrementalDecoder):
    """s_t = LSTM(e(y_{t-1})), K dot-attention heads a^(k) = softmax(s_tᵀ W^(k) h), output N([c_t, s_t])."""

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        hidden = cfg.hidden_size
        self.heads = cfg.attention_heads
        if self.heads < 1:
            raise InterpretError("--attention-heads must be >= 1")
        self.uniform = cfg.uniform_attention
        self.embed_tokens = nn.Embedding(len(dictionary), cfg.embed_dim, padding_idx=dictionary.pad())
        self.layers = cfg.decoder_layers
        if self.layers not in (1, cfg.encoder_layers):
            raise InterpretError(f"--decoder-layers {self.layers}: use 1 or --encoder-layers ({cfg.encoder_layers}); "
                                 "the decoder starts from the encoder's final state of each layer")
        self.lstm = nn.LSTM(cfg.embed_dim, hidden, num_layers=self.layers, batch_first=True,
                            dropout=cfg.dropout if self.layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        source = hidden * (2 if cfg.encoder_bidirectional else 1)  # size of h_l
        if not self.uniform:
            self.attention_weight = nn.Parameter(torch.empty(self.heads, hidden, source))  # W^(k)
            bound = 1.0 / math.sqrt(hidden)
            seeds = parse_head_seeds(cfg.head_init_seeds, self.heads)
            with torch.no_grad():
                for k in range(self.heads):
                    gen = torch.Generator().manual_seed(seeds[k]) if seeds else None
                    self.attention_weight[k].copy_(torch.empty(hidden, source).uniform_(-bound, bound,
                                                                                          generator=gen))
        self.output_hidden = nn.Linear(source + hidden, cfg.output_hidden_dim)  # N: one hidden layer
        # which non-linearity N uses, saved with the weights (1: ReLU, 0: tanh); older checkpoints lack it: tanh
        self.register_buffer("output_relu", torch.tensor(int(cfg.output_activation == "relu")))
        self.output_projection = nn.Linear(cfg.output_hidden_dim, len(dictionary))
        self.max_target_positions = cfg.max_target_positions

    # -- pieces, reused by the probes ------------------------------------------------------------
    def attention(self, states, encoder_states, padding_mask):
        """a^(k)_{t,l}: (K, B, T, L) from decoder states (B, T, H) and encoder states (B, L, H)."""
        B, T, _ = states.shape
        L = encoder_states.size(1)
        if self.uniform:
            weights = (~padding_mask).float().unsqueeze(1).expand(B, T, L)
            return (weights / weights.sum(-1, keepdim=True)).unsqueeze(0).expand(self.heads, B, T, L)
        scores = torch.einsum("bth,khg,blg->kbtl", states, self.attention_weight, encoder_states)
        scores = scores.masked_fill(padding_mask.view(1, B, 1, L), float("-inf"))
        return torch.softmax(scores.float(), dim=-1).type_as(scores)

    def output_layer(self, features, **kwargs):
        """Identity: ``extract_features`` already returns the logits N([c_t, s_t])."""
        return features

    def output_network(self, context, states):
        """N([c, s]): logits over the target vocabulary."""
        activation = torch.relu if int(self.output_relu) else torch.tanh
        return self.output_projection(activation(self.output_hidden(torch.cat([context, states], dim=-1))))

    def decoder_states(self, prev_output_tokens, encoder_out, incremental_state=None):
        """s_t for every position of ``prev_output_tokens`` (only the last one when decoding incrementally)."""
        cached = self.get_incremental_state(incremental_state, "lstm_state") if incremental_state is not None \
            else None
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        state = (cached["h"], cached["c"]) if cached is not None else \
            tuple(x[-self.layers:].contiguous() for x in encoder_out["encoder_final"])
        x = self.dropout(self.embed_tokens(prev_output_tokens))
        states, (h, c) = self.lstm(x, state)
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, "lstm_state", {"h": h, "c": c})
        return self.dropout(states)

    # -- fairseq interface -----------------------------------------------------------------------
    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **kwargs):
        encoder_states = encoder_out["encoder_out"][0]
        padding_mask = encoder_out["encoder_padding_mask"][0]
        states = self.decoder_states(prev_output_tokens, encoder_out, incremental_state)
        attn = self.attention(states, encoder_states, padding_mask)  # (K, B, T, L)
        context = torch.einsum("kbtl,blh->bth", attn, encoder_states)  # Eq. 21: contexts summed over heads
        logits = self.output_network(context, states)
        return logits, {"attn": attn.mean(0), "attn_heads": attn, "decoder_states": states}

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None, features_only=False,
                **kwargs):
        return self.extract_features(prev_output_tokens, encoder_out, incremental_state)

    def reorder_incremental_state(self, incremental_state, new_order):
        cached = self.get_incremental_state(incremental_state, "lstm_state")
        if cached is not None:
            self.set_incremental_state(incremental_state, "lstm_state",
                                       {k: v.index_select(1, new_order) for k, v in cached.items()})

    def max_positions(self):
        return self.max_target_positions


@register_model("lstm_dot_attention", dataclass=LSTMDotAttentionConfig)
class LSTMDotAttentionModel(FairseqEncoderDecoderModel):
    """Snell et al. (2021) §2.1 seq2seq model; see the module docstring."""

    @classmethod
    def build_model(cls, cfg, task):
        if task.source_dictionary is None or task.target_dictionary is None:
            raise InterpretError("lstm_dot_attention needs a task with source and target dictionaries "
                                 "(translation, permutation_copy)")
        parse_head_seeds(cfg.head_init_seeds, cfg.attention_heads)
        return cls(DotAttentionEncoder(cfg, task.source_dictionary), DotAttentionDecoder(cfg, task.target_dictionary))

    def upgrade_state_dict_named(self, state_dict, name):
        """Checkpoints saved before the output activation was an option used tanh."""
        key = f"{name}.decoder.output_relu" if name else "decoder.output_relu"
        if key not in state_dict:
            state_dict[key] = torch.tensor(0)
        super().upgrade_state_dict_named(state_dict, name)
        return state_dict

    def lexical_probe(self, src_tokens, src_lengths, prev_output_tokens):
        """log N([h_l, s_t]) (the lexical probe β of §3.1 before picking y_t): (B, T, L, V) log-probabilities.

        With K heads the context of full attention on l is K·h_l (Eq. 21), so the probe uses that.
        """
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        states = self.decoder.decoder_states(prev_output_tokens, encoder_out)
        h = encoder_out["encoder_out"][0] * self.decoder.heads
        B, T, H = states.shape
        L, S = h.size(1), h.size(2)  # S: size of h_l (2 H with a bidirectional encoder)
        logits = self.decoder.output_network(h.unsqueeze(1).expand(B, T, L, S), states.unsqueeze(2).expand(B, T, L, H))
        return torch.log_softmax(logits.float(), dim=-1)


@register_model_architecture("lstm_dot_attention", "lstm_dot_attention")
def lstm_dot_attention(args):
    set_defaults(args, embed_dim=64, hidden_size=64, output_hidden_dim=64, attention_heads=1,
                 uniform_attention=False, head_init_seeds="", dropout=0.0, output_activation="relu", encoder_layers=1,
                 encoder_bidirectional=False, decoder_layers=1, max_source_positions=1024, max_target_positions=1024)


@register_model_architecture("lstm_dot_attention", "lstm_dot_attention_multi30k")
def lstm_dot_attention_multi30k(args):
    """For Multi30k: 256-dim embeddings and states, N with 256 hidden units, dropout 0.2."""
    set_defaults(args, embed_dim=256, hidden_size=256, output_hidden_dim=256, dropout=0.2)
    lstm_dot_attention(args)


@register_model_architecture("lstm_dot_attention", "lstm_dot_attention_paper")
def lstm_dot_attention_paper(args):
    """Appendix A.8 (translation): 2-layer bidirectional encoder and 2-layer decoder of 256, embeddings 256, N with
    256 ReLU units, dropout 0.5."""
    set_defaults(args, embed_dim=256, hidden_size=256, output_hidden_dim=256, dropout=0.5, encoder_layers=2,
                 encoder_bidirectional=True, decoder_layers=2, output_activation="relu")
    lstm_dot_attention(args)
