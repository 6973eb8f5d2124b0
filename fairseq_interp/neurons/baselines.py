"""The language-specific baselines of Xie et al. 2021 (§4.2, Tables 1-2), as fairseq architectures:

* ``transformer_lang_adapter`` (*+Adapter*, Bapna and Firat 2019): after every encoder and decoder layer, one
  residual adapter per language pair, ``x + W_up relu(W_down LN(x))`` with a ``--lang-adapter-dim`` (128 in the
  paper) projection; per adapter ``2·d·r + r + d`` weights and biases plus the LayerNorm's ``2·d``. That is
  132,736 parameters for ``d = 512, r = 128``; 12 layers × 8 pairs of them are the 12.74M that Table 1 adds to the
  Multilingual model (64.69M → 77.43M), 12 × 12 the 19.11M of Table 2 (90.42M → 109.54M). The up projection starts
  at zero (``--lang-adapter-init zero``, the default), so a fresh adapter is the identity and the model starts as
  the plain Transformer; the paper trains the model from scratch.
* ``transformer_target_attention`` (*+TS*, Blackwood et al. 2018, "target-specific attention"): one copy of every
  attention module per target language (``--target-attention all``: encoder self-attention, decoder
  self-attention and cross-attention, which is what Table 1's parameter count implies: 121.42M − 64.69M = 56.73M
  = 3 extra target languages × 18 attention modules of 1,050,624 parameters), or of the cross-attention only
  (``--target-attention cross``, the attention of Blackwood et al.'s recurrent model). A sample runs through the
  copies of its target language.

Both read each sample's language pair as ``transformer_neuron_masked`` does (``pair_ids``, see
:mod:`.multi_task`): train and generate them with ``--task translation_multi_lang_specific`` (the many-to-many
task with pair ids). The pairs are those of the task's ``--lang-pairs`` when the model is built, stored in the
checkpoint (a buffer), so generation may list the directions in another order.

*Individual* (one bilingual model per direction) is fairseq's ``transformer`` on one direction; *+Expansion* (a
wider FFN, then masked fine-tuning) is :func:`expand_ffn`.
"""

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models.transformer import TransformerModel
from fairseq.modules import MultiheadAttention

from ..common.errors import InterpretError
from ..common.model_config import add_own_args, model_args, register_architectures, transformer_model_config
from ..common.registry import register_model
from .pair_routing import PairRouting


@dataclass
class PairModulesConfig(FairseqDataclass):
    model_lang_pairs: str = field(default="", metadata={
        "help": "language pairs SRC-TGT of the per-pair modules, comma-separated (default: the task's --lang-pairs)"})


@dataclass
class LangAdapterOptions(PairModulesConfig):
    lang_adapter_dim: int = field(default=128, metadata={
        "help": "width of each adapter's projection (Bapna and Firat 2019; 128 in Xie et al. 2021)"})
    lang_adapter_init: ChoiceEnum(["zero", "xavier"]) = field(default="zero", metadata={
        "help": "initial up projection: zero (a new adapter is the identity) or xavier"})


@dataclass
class TargetAttentionOptions(PairModulesConfig):
    target_attention: ChoiceEnum(["all", "cross"]) = field(default="all", metadata={
        "help": "attention modules copied per target language: all (encoder self, decoder self and cross; the "
                "parameter count of Xie et al.'s +TS) or cross (encoder-decoder attention only)"})


#: the registered configs: the model's own options + every Transformer option (unset -> the architecture's value)
LangAdapterConfig = transformer_model_config("LangAdapterConfig", LangAdapterOptions, __name__)
TargetAttentionConfig = transformer_model_config("TargetAttentionConfig", TargetAttentionOptions, __name__)


def _pair_names(args, task):
    names = getattr(args, "model_lang_pairs", "") or ""
    pairs = [p.strip() for p in names.split(",") if p.strip()] if names else list(getattr(task, "lang_pairs", None)
                                                                                 or [])
    if not pairs:
        src, tgt = getattr(task, "source_lang", None) or getattr(getattr(task, "args", None), "source_lang", None), \
            getattr(task, "target_lang", None) or getattr(getattr(task, "args", None), "target_lang", None)
        pairs = [f"{src}-{tgt}"] if src and tgt else []
    if not pairs:
        raise InterpretError("a model with per-pair modules needs its language pairs: pass --lang-pairs (task "
                             "translation_multi_lang_specific) or --model-lang-pairs")
    for pair in pairs:
        if pair.count("-") != 1:
            raise InterpretError(f"language pair {pair!r} is not SRC-TGT (e.g. en-de)")
    return pairs


class PairRoutedMixin(PairRouting):
    """:class:`~.pair_routing.PairRouting` with a checkpoint's pairs taking the place of those the model was built
    with."""

    def upgrade_state_dict_named(self, state_dict, name):
        """A checkpoint's pairs replace the ones the model was built with (generation sets up the task with one
        direction): the per-pair modules are resized to the checkpoint's pairs before its weights load."""
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name else ""
        stored = state_dict.get(prefix + self.PAIRS_BUFFER)
        if stored is None:
            raise InterpretError("the checkpoint has no language pairs for the per-pair modules: train the model "
                                 "with --task translation_multi_lang_specific")
        pairs = bytes(stored.tolist()).decode().split(",")
        if pairs != self.pairs:
            self.register_buffer(self.PAIRS_BUFFER, stored.clone())
            self._resize_pairs(pairs)


# -------------------------------------------------------------------------------------------------------- adapters

class PairAdapters(nn.Module):
    """One residual adapter per language pair at one layer output: ``x + W_up relu(W_down LN_p(x)) + b``."""

    def __init__(self, dim, bottleneck, pairs, init="zero"):
        super().__init__()
        self.dim, self.bottleneck = dim, bottleneck
        self.ln_weight = nn.Parameter(torch.ones(pairs, dim))
        self.ln_bias = nn.Parameter(torch.zeros(pairs, dim))
        self.down_weight = nn.Parameter(torch.empty(pairs, bottleneck, dim))
        self.down_bias = nn.Parameter(torch.zeros(pairs, bottleneck))
        self.up_weight = nn.Parameter(torch.zeros(pairs, dim, bottleneck))
        self.up_bias = nn.Parameter(torch.zeros(pairs, dim))
        for p in range(pairs):
            nn.init.xavier_uniform_(self.down_weight.data[p])
            if init == "xavier":
                nn.init.xavier_uniform_(self.up_weight.data[p])

    def resize(self, pairs):
        """Room for ``pairs`` pairs (a checkpoint's; the values come from its state dict)."""
        for name in ("ln_weight", "ln_bias", "down_weight", "down_bias", "up_weight", "up_bias"):
            old = getattr(self, name)
            if old.size(0) != pairs:
                setattr(self, name, nn.Parameter(old.new_zeros((pairs, *old.shape[1:]))))

    def forward(self, x, ids):
        """``x`` (T, B, C), ``ids`` (B,) pair index of each row."""
        h = F.layer_norm(x, (self.dim,)) * self.ln_weight[ids] + self.ln_bias[ids]
        down = torch.einsum("tbc,brc->tbr", h, self.down_weight[ids]) + self.down_bias[ids]
        up = torch.einsum("tbr,bcr->tbc", torch.relu(down), self.up_weight[ids]) + self.up_bias[ids]
        return x + up


@register_model("transformer_lang_adapter", dataclass=LangAdapterConfig)
class LangAdapterTransformerModel(PairRoutedMixin, TransformerModel):
    """fairseq ``transformer`` with a residual adapter per language pair after every layer (Bapna and Firat
    2019; *+Adapter* of Xie et al. 2021, Table 1)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        add_own_args(parser, LangAdapterOptions)

    @classmethod
    def build_model(cls, args, task):
        args = model_args(args, LangAdapterOptions)
        pairs = _pair_names(args, task)
        dim, init = int(args.lang_adapter_dim), str(args.lang_adapter_init)
        model = super().build_model(args, task)
        model._init_pairs(pairs)
        model.encoder_adapters = nn.ModuleList(
            PairAdapters(layer.embed_dim, dim, len(pairs), init) for layer in model.encoder.layers)
        model.decoder_adapters = nn.ModuleList(
            PairAdapters(layer.embed_dim, dim, len(pairs), init) for layer in model.decoder.layers)
        for layer, adapters in zip(model.encoder.layers, model.encoder_adapters):
            layer.register_forward_hook(model._adapter_hook(adapters))
        for layer, adapters in zip(model.decoder.layers, model.decoder_adapters):
            layer.register_forward_hook(model._adapter_hook(adapters))
        return model

    def _resize_pairs(self, pairs):
        for adapters in list(self.encoder_adapters) + list(self.decoder_adapters):
            adapters.resize(len(pairs))

    def _adapter_hook(self, adapters):
        router = self._router

        def hook(module, inputs, output):
            x = output[0] if isinstance(output, tuple) else output
            x = adapters(x, router.expanded(x.size(1)))
            return (x, *output[1:]) if isinstance(output, tuple) else x
        return hook


# ----------------------------------------------------------------------------------------- target-specific attention

def _targets(pairs):
    """Target languages in order of first appearance, and each pair's target index."""
    targets = list(dict.fromkeys(p.split("-")[1] for p in pairs))
    return targets, [targets.index(p.split("-")[1]) for p in pairs]


class TargetSpecificAttention(nn.Module):
    """One ``MultiheadAttention`` per target language; each sample runs through its target language's copy.

    A mixed batch is split by target language (training); a batch of one target language runs whole through its
    copy, which is the only case with incremental state (generation runs one direction at a time)."""

    def __init__(self, base, targets, router, target_of_pair):
        super().__init__()
        self.copies = nn.ModuleList([base])
        self._router = router
        self.resize(targets, target_of_pair)

    def resize(self, targets, target_of_pair):
        """``targets`` copies (new ones freshly initialized); ``target_of_pair``: pair index -> copy index."""
        while len(self.copies) < targets:
            twin = copy.deepcopy(self.copies[0])
            twin.reset_parameters()
            twin.init_incremental_state()  # its own cache key in incremental decoding
            self.copies.append(twin)
        while len(self.copies) > targets:
            del self.copies[len(self.copies) - 1]
        self._target_of_pair = list(target_of_pair)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["copies"][0], name)

    def reorder_incremental_state(self, incremental_state, new_order):
        """Nothing: each copy is a module of its own, reordered by the decoder's walk over its modules (forwarding
        to the first copy would reorder its cache twice per beam step)."""
        return incremental_state

    def forward(self, query, key, value, key_padding_mask=None, incremental_state=None, **kwargs):
        batch = query.size(1)
        targets = torch.tensor(self._target_of_pair, dtype=torch.long)[self._router.expanded(batch).cpu()]
        present = targets.unique().tolist()
        if len(present) == 1:
            return self.copies[present[0]](query, key, value, key_padding_mask=key_padding_mask,
                                           incremental_state=incremental_state, **kwargs)
        if incremental_state is not None:
            raise InterpretError("incremental decoding runs one target language at a time: pass --source-lang and "
                                 "--target-lang")
        out, weights = None, None
        for t in present:
            rows = (targets == t).nonzero().flatten().to(query.device)
            sub_kpm = key_padding_mask.index_select(0, rows) if key_padding_mask is not None else None
            o, w = self.copies[t](query.index_select(1, rows), None if key is None else key.index_select(1, rows),
                                  None if value is None else value.index_select(1, rows), key_padding_mask=sub_kpm,
                                  **kwargs)
            if out is None:
                out = o.new_zeros(o.size(0), batch, o.size(2))
            out[:, rows] = o
            if w is not None:
                dim = 0 if w.dim() == 3 else 1  # (B, T, S) averaged over heads, or (H, B, T, S)
                if weights is None:
                    shape = list(w.shape)
                    shape[dim] = batch
                    weights = w.new_zeros(shape)
                weights.index_copy_(dim, rows, w)
        return out, weights


@register_model("transformer_target_attention", dataclass=TargetAttentionConfig)
class TargetAttentionTransformerModel(PairRoutedMixin, TransformerModel):
    """fairseq ``transformer`` with target-specific attention (Blackwood et al. 2018; *+TS* of Xie et al. 2021)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        add_own_args(parser, TargetAttentionOptions)

    @classmethod
    def build_model(cls, args, task):
        args = model_args(args, TargetAttentionOptions)
        pairs = _pair_names(args, task)
        which = str(args.target_attention)
        model = super().build_model(args, task)
        model._init_pairs(pairs)
        targets, target_of_pair = _targets(pairs)
        model.target_langs = targets
        names = ["encoder_attn"] if which == "cross" else ["self_attn", "encoder_attn"]
        for side in (["decoder"] if which == "cross" else ["encoder", "decoder"]):
            for layer in getattr(model, side).layers:
                for name in names:
                    base = getattr(layer, name, None)
                    if isinstance(base, MultiheadAttention):
                        setattr(layer, name, TargetSpecificAttention(base, len(targets), model._router,
                                                                     target_of_pair))
        return model

    def _resize_pairs(self, pairs):
        targets, target_of_pair = _targets(pairs)
        self.target_langs = targets
        for module in self.modules():
            if isinstance(module, TargetSpecificAttention):
                module.resize(len(targets), target_of_pair)


def count_parameters(model):
    """Number of trainable parameters (Table 1's 'Para')."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------- expansion

def expand_ffn(state_dict, ffn_dim, seed=1):
    """*+Expansion* (Xie et al. 2021, §4.2, Table 2): a trained Transformer's FFN widened to ``ffn_dim`` hidden
    units in every layer. New units get fc1 rows drawn like fairseq's initialization (Xavier uniform over the
    widened matrix's fan) and zero fc1 bias, and **zero fc2 columns**, so the expanded model computes exactly what
    the trained one computed until training moves them. Returns a new state dict; the trained units keep their
    indices ``0 .. old-1``."""
    generator = torch.Generator().manual_seed(int(seed))
    out = dict(state_dict)
    layers = sorted({k.rsplit(".fc1.weight", 1)[0] for k in state_dict if k.endswith(".fc1.weight")})
    if not layers:
        raise InterpretError("no FFN (fc1/fc2) in the state dict: expansion needs a Transformer")
    for layer in layers:
        w1, b1, w2 = (state_dict[f"{layer}.fc1.weight"], state_dict[f"{layer}.fc1.bias"],
                      state_dict[f"{layer}.fc2.weight"])
        old, dim = w1.shape
        if ffn_dim < old:
            raise InterpretError(f"--ffn-dim {ffn_dim} is smaller than the model's FFN ({old}): expansion only widens")
        extra = ffn_dim - old
        bound = math.sqrt(6.0 / (dim + ffn_dim))
        new_rows = (torch.rand(extra, dim, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        out[f"{layer}.fc1.weight"] = torch.cat([w1, new_rows.to(w1.dtype)], 0)
        out[f"{layer}.fc1.bias"] = torch.cat([b1, b1.new_zeros(extra)])
        out[f"{layer}.fc2.weight"] = torch.cat([w2, w2.new_zeros(w2.size(0), extra)], 1)
    return out


#: ``transformer_lang_adapter_{size}``, ``transformer_target_attention_{size}``: fairseq's presets and the plugin's
register_architectures("transformer_lang_adapter", LangAdapterOptions)
register_architectures("transformer_target_attention", TargetAttentionOptions)
