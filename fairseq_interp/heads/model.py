"""``transformer_gated_heads``: fairseq's Transformer with a Hard Concrete gate on every attention head
(Voita et al. 2019, §4): MultiHead = Concat_i(g_i · head_i) W^O, trained with an L0 penalty
(criterion ``label_smoothed_cross_entropy_l0``).

* ``--gate-heads`` chooses the attention types that get gates: ``encoder_self``, ``decoder_self``, ``cross``.
* ``--encoder-self-heads`` / ``--decoder-self-heads`` / ``--cross-heads``: per-layer numbers of heads kept
  (written by ``fairseq-interp prune-export``; empty = all heads).
* ``--freeze-decoder``: only the encoder (and gates) are trained (Voita et al. §6.2).
* Fine-tuning a plain ``transformer`` checkpoint (``--finetune-from-model``) fills the missing gates fully open; with
  all gates open the model computes what the plain model computes.

The model is registered with a :class:`~fairseq.dataclass.FairseqDataclass`, :data:`GatedHeadsTransformerConfig`:
every option of fairseq's ``transformer`` under its command-line name (``encoder_layers``, ``share_all_embeddings``,
...; unset = chosen by the architecture, ``--arch`` or ``model._name``) and the gate options above. So
``fairseq-train``, ``fairseq-hydra-train`` and yaml configs (``configs/heads/``) build the same model: options
arrive as a Namespace from the command line and as a DictConfig from hydra, and :meth:`build_model` reads both the
same way (fairseq's ``TransformerConfig.from_namespace`` would silently drop the gate options of a DictConfig).
"""

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import (TransformerConfig, TransformerDecoderBase, TransformerEncoderBase,
                                        TransformerModel)
from fairseq.models.transformer import transformer_legacy as presets
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase
from fairseq.modules.checkpoint_activations import checkpoint_wrapper

from ..common import architectures
from ..common.attention import ATTENTION_KINDS, attention_modules
from ..common.errors import InterpretError
from ..common.registry import register_model, register_model_architecture
from .gated_attention import GatedMultiheadAttention
from .hard_concrete import INIT_LOG_ALPHA, LOG_ALPHA_SCALE, STRETCH, TEMPERATURE

#: attention kind -> the option holding its per-layer head counts
COUNT_OPTION = {"encoder_self": "encoder_self_heads", "decoder_self": "decoder_self_heads", "cross": "cross_heads"}


@dataclass
class GatedHeadsConfig(FairseqDataclass):
    gate_heads: str = field(default="encoder_self,decoder_self,cross", metadata={
        "help": "comma-separated attention types whose heads get Hard Concrete gates: encoder_self, decoder_self, "
                "cross (or 'none')"})
    gate_temperature: float = field(default=TEMPERATURE, metadata={"help": "Hard Concrete temperature β"})
    gate_stretch_low: float = field(default=STRETCH[0], metadata={"help": "Hard Concrete stretch limit l (< 0)"})
    gate_stretch_high: float = field(default=STRETCH[1], metadata={"help": "Hard Concrete stretch limit r (> 1)"})
    gate_init_log_alpha: float = field(default=INIT_LOG_ALPHA, metadata={
        "help": "initial log α of every gate, also used for gates missing from a loaded checkpoint (> 0: open)"})
    gate_lr_scale: float = field(default=LOG_ALPHA_SCALE, metadata={
        "help": "train φ with log α = c·φ: under Adam the gates move about c times faster than the other "
                "parameters (c = 1: plain log α); checkpoints store log α whatever c"})
    encoder_self_heads: str = field(default="", metadata={
        "help": "heads kept per encoder layer, comma-separated (set by prune-export; empty = all)"})
    decoder_self_heads: str = field(default="", metadata={
        "help": "heads kept per decoder self-attention, comma-separated (set by prune-export; empty = all)"})
    cross_heads: str = field(default="", metadata={
        "help": "heads kept per encoder-decoder attention, comma-separated (set by prune-export; empty = all)"})
    freeze_decoder: bool = field(default=False, metadata={
        "help": "train only the encoder and the gates (parameters shared with the encoder stay trainable)"})


#: options fairseq reads from the model config before any architecture function runs (``distributed_init``
#: compares ``base_layers`` with 0), so they need fairseq's own default rather than "unset"
READ_BEFORE_THE_MODEL = {"base_layers": 0}


def _transformer_fields():
    """Dataclass fields for every option ``fairseq``'s legacy ``transformer`` adds to the command line (its
    ``TransformerConfig`` flattened: ``encoder.layers`` → ``encoder_layers``), with fairseq's help and no default:
    the architecture function fills what is unset, as it does for ``fairseq-train``."""
    parser = argparse.ArgumentParser(add_help=False)
    TransformerModel.add_args(parser)
    fields = []
    for action in parser._actions:
        if isinstance(action, argparse._StoreTrueAction):
            kind = Optional[bool]
        elif action.type in (int, float, str):
            kind = Optional[action.type]
        else:  # lists parsed by fairseq's helpers (layers to keep, adaptive softmax cut-offs)
            kind = Any
        default = READ_BEFORE_THE_MODEL.get(action.dest)
        help_text = (action.help or "").replace("%%", "%") + (
            " (default: set by the architecture)" if default is None else f" (default: {default})")
        fields.append((action.dest, kind, field(default=default, metadata={"help": help_text})))
    return fields


#: the registered model config: the transformer's options (unset → the architecture's value) + the gate options
GatedHeadsTransformerConfig = dataclasses.make_dataclass(
    "GatedHeadsTransformerConfig", _transformer_fields(), bases=(GatedHeadsConfig,))
TRANSFORMER_OPTIONS = tuple(f.name for f in dataclasses.fields(GatedHeadsTransformerConfig)
                            if f.name not in GatedHeadsConfig.__dataclass_fields__)


def _namespace(cfg):
    """A model config (Namespace, DictConfig or dict) as a flat Namespace without unset (None) transformer options,
    so the architecture functions' ``getattr(args, name, default)`` see them as unset and ``TransformerConfig``
    keeps every extra option (the gates)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        items = OmegaConf.to_container(cfg, resolve=True)
    elif isinstance(cfg, dict):
        items = dict(cfg)
    else:
        items = dict(vars(cfg))
    return argparse.Namespace(**{k: v for k, v in items.items() if not (k in TRANSFORMER_OPTIONS and v is None)})


def _unset_none(args):
    """Remove the transformer options that are None (unset) from a Namespace or DictConfig in place."""
    from omegaconf import OmegaConf, open_dict

    names = [k for k in TRANSFORMER_OPTIONS if k in (args if OmegaConf.is_config(args) else vars(args))
             and getattr(args, k, None) is None]
    if OmegaConf.is_config(args):
        with open_dict(args):
            for k in names:
                del args[k]
    else:
        for k in names:
            delattr(args, k)


def _option(cfg, name):
    """An option of a model config (Namespace, DictConfig or dict); missing or None -> the GatedHeadsConfig default."""
    value = cfg.get(name) if isinstance(cfg, dict) else getattr(cfg, name, None)
    return GatedHeadsConfig.__dataclass_fields__[name].default if value is None else value


def gate_options(cfg):
    """The Hard Concrete shape of a model config: ``temperature`` and ``stretch``, as keyword arguments of
    :func:`~.hard_concrete.is_open` and :class:`~.hard_concrete.HardConcreteGate`."""
    return dict(temperature=float(_option(cfg, "gate_temperature")),
                stretch=(float(_option(cfg, "gate_stretch_low")), float(_option(cfg, "gate_stretch_high"))))


def gated_kinds(cfg):
    """The attention kinds of ``--gate-heads`` (none when the config has no such option)."""
    value = cfg.get("gate_heads") if isinstance(cfg, dict) else getattr(cfg, "gate_heads", None)
    value = str(value or "").strip()
    if value in ("", "none"):
        return set()
    kinds = {t.strip() for t in value.split(",") if t.strip()}
    unknown = kinds - set(ATTENTION_KINDS)
    if unknown:
        raise InterpretError(f"unknown attention type {sorted(unknown)[0]!r} in --gate-heads: use a comma-separated "
                             f"subset of {', '.join(ATTENTION_KINDS)} or 'none'")
    return kinds


def head_counts(cfg, kind, layers, heads):
    """Heads kept per layer of one attention kind (``--encoder-self-heads`` etc.), or None for all heads."""
    value = str(_option(cfg, COUNT_OPTION[kind]) or "").strip()
    if not value:
        return None
    try:
        counts = [int(v) for v in value.split(",")]
    except ValueError:
        raise InterpretError(f"--{COUNT_OPTION[kind].replace('_', '-')} {value!r} is not a comma-separated list "
                             "of integers") from None
    if len(counts) != layers or any(c < 0 or c > heads for c in counts):
        raise InterpretError(f"--{COUNT_OPTION[kind].replace('_', '-')} {value!r} must give one count in "
                             f"[0, {heads}] for each of the {layers} layers")
    return counts


def _attention(kind, layer_idx, cfg, embed_dim, num_heads, plain, **mha_kwargs):
    """The attention module of one layer: fairseq's own (``plain()``) unless gated or pruned."""
    layers = cfg.encoder.layers if kind == "encoder_self" else cfg.decoder.layers
    counts = head_counts(cfg, kind, layers, num_heads)
    kept = None if counts is None else counts[layer_idx]
    gated = kind in gated_kinds(cfg)
    if not gated and (kept is None or kept == num_heads):
        return plain()
    gate_kwargs = dict(**gate_options(cfg), init_log_alpha=float(_option(cfg, "gate_init_log_alpha")),
                       log_alpha_scale=float(_option(cfg, "gate_lr_scale")))
    return GatedMultiheadAttention(embed_dim, num_heads, gated=gated, kept_heads=kept, gate_kwargs=gate_kwargs,
                                   **mha_kwargs)


def _wrap(layer, cfg):
    """Activation checkpointing / FSDP wrapping, as fairseq's ``build_*_layer`` do."""
    if cfg.checkpoint_activations:
        layer = checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations)
    return fsdp_wrap(layer, min_num_params=cfg.min_params_to_wrap if not cfg.checkpoint_activations else 0)


class GatedTransformerEncoderLayer(TransformerEncoderLayerBase):
    def __init__(self, cfg, layer_idx, return_fc=False):
        self.layer_idx = layer_idx
        super().__init__(cfg, return_fc=return_fc)

    def build_self_attention(self, embed_dim, cfg):
        return _attention(
            "encoder_self", self.layer_idx, cfg, embed_dim, cfg.encoder.attention_heads,
            lambda: super(GatedTransformerEncoderLayer, self).build_self_attention(embed_dim, cfg),
            dropout=cfg.attention_dropout, self_attention=True, q_noise=self.quant_noise,
            qn_block_size=self.quant_noise_block_size)


class GatedTransformerDecoderLayer(TransformerDecoderLayerBase):
    def __init__(self, cfg, layer_idx, no_encoder_attn=False, add_bias_kv=False, add_zero_attn=False):
        self.layer_idx = layer_idx
        super().__init__(cfg, no_encoder_attn=no_encoder_attn, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn)

    def build_self_attention(self, embed_dim, cfg, add_bias_kv=False, add_zero_attn=False):
        return _attention(
            "decoder_self", self.layer_idx, cfg, embed_dim, cfg.decoder.attention_heads,
            lambda: super(GatedTransformerDecoderLayer, self).build_self_attention(
                embed_dim, cfg, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn),
            dropout=cfg.attention_dropout, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn,
            self_attention=not cfg.cross_self_attention, q_noise=self.quant_noise,
            qn_block_size=self.quant_noise_block_size)

    def build_encoder_attention(self, embed_dim, cfg):
        return _attention(
            "cross", self.layer_idx, cfg, embed_dim, cfg.decoder.attention_heads,
            lambda: super(GatedTransformerDecoderLayer, self).build_encoder_attention(embed_dim, cfg),
            kdim=cfg.encoder.embed_dim, vdim=cfg.encoder.embed_dim, dropout=cfg.attention_dropout,
            encoder_decoder_attention=True, q_noise=self.quant_noise, qn_block_size=self.quant_noise_block_size)


class GatedTransformerEncoder(TransformerEncoderBase):
    def build_encoder_layer(self, cfg):
        self._layers_built = getattr(self, "_layers_built", 0) + 1
        return _wrap(GatedTransformerEncoderLayer(cfg, self._layers_built - 1, return_fc=self.return_fc), cfg)


class GatedTransformerDecoder(TransformerDecoderBase):
    def build_decoder_layer(self, cfg, no_encoder_attn=False):
        self._layers_built = getattr(self, "_layers_built", 0) + 1
        return _wrap(GatedTransformerDecoderLayer(cfg, self._layers_built - 1, no_encoder_attn), cfg)


@register_model("transformer_gated_heads", dataclass=GatedHeadsTransformerConfig)
class GatedHeadsTransformerModel(TransformerModel):
    """fairseq ``transformer`` with Hard Concrete head gates; ``l0_penalty()`` is the criterion's L_C."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        gen_parser_from_dataclass(parser, GatedHeadsConfig())

    @classmethod
    def build_model(cls, args, task):
        args = _namespace(args)
        base_gated_heads(args)
        gated_kinds(args)
        model = super().build_model(args, task)
        if getattr(args, "freeze_decoder", False):
            model.freeze_decoder_()
        return model

    @classmethod
    def build_encoder(cls, cfg, src_dict, embed_tokens):
        return GatedTransformerEncoder(TransformerConfig.from_namespace(cfg), src_dict, embed_tokens)

    @classmethod
    def build_decoder(cls, cfg, tgt_dict, embed_tokens):
        cfg = TransformerConfig.from_namespace(cfg)
        return GatedTransformerDecoder(cfg, tgt_dict, embed_tokens, no_encoder_attn=cfg.no_cross_attention)

    def head_gates(self):
        """``{kind: [HardConcreteGate or None per layer]}``."""
        return {kind: [getattr(m, "head_gate", None) for m in mods] for kind, mods in attention_modules(self).items()}

    def l0_penalty(self):
        """L_C = Σ over all gates of (1 − P(g = 0)) (Voita et al., eq. 7)."""
        terms = [g.l0() for gates in self.head_gates().values() for g in gates if g is not None]
        if not terms:
            return self.encoder.embed_tokens.weight.new_zeros(())
        return torch.stack(terms).sum()

    def gate_summary(self):
        """Per attention type: expected open heads Σ(1 − P(g=0)), hard-open (eval) heads, fractional, total."""
        summary = {}
        with torch.no_grad():
            for kind, gates in self.head_gates().items():
                gates = [g for g in gates if g is not None]
                if not gates:
                    continue
                summary[kind] = {
                    "expected_open": float(sum(g.l0() for g in gates)),
                    "hard_open": int(sum(int(g.deterministic().sum()) for g in gates)),
                    "fractional": int(sum(int(g.fractional().sum()) for g in gates)),
                    "total": int(sum(g.n_gates for g in gates)),
                }
        return summary

    def freeze_decoder_(self):
        """Freeze decoder parameters except gates and parameters shared with the encoder (tied embeddings)."""
        encoder_params = {id(p) for p in self.encoder.parameters()}
        for name, p in self.decoder.named_parameters():
            if id(p) not in encoder_params and not name.endswith("head_gate.log_alpha_param"):
                p.requires_grad_(False)

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)  # fills missing gates (HardConcreteGate)
        prefix = f"{name}." if name else ""
        own = self.state_dict()
        for key, value in own.items():
            loaded = state_dict.get(prefix + key)
            if loaded is not None and tuple(loaded.shape) != tuple(value.shape):
                raise InterpretError(
                    f"checkpoint parameter {prefix + key} has shape {tuple(loaded.shape)} but the model expects "
                    f"{tuple(value.shape)}: fine-tune with the gated architecture of the same size as the checkpoint "
                    "(e.g. transformer_X -> transformer_gated_heads_X) and the same embedding options")


def _gate_defaults(args):
    _unset_none(args)
    for fld_name, fld in GatedHeadsConfig.__dataclass_fields__.items():
        if not hasattr(args, fld_name) or getattr(args, fld_name) is None:
            setattr(args, fld_name, fld.default)


@register_model_architecture("transformer_gated_heads", "transformer_gated_heads")
def base_gated_heads(args):
    _gate_defaults(args)
    presets.base_architecture(args)


def _variant(name, preset):
    @register_model_architecture("transformer_gated_heads", f"transformer_gated_heads_{name}")
    def arch(args):
        _gate_defaults(args)
        preset(args)

    arch.__name__ = f"transformer_gated_heads_{name}"
    return arch


# Sizes mirroring fairseq's transformer presets and the plugin's own sizes.
for _name, _preset in (("iwslt_de_en", presets.transformer_iwslt_de_en),
                       ("wmt_en_de", presets.transformer_wmt_en_de),
                       ("vaswani_wmt_en_de_big", presets.transformer_vaswani_wmt_en_de_big),
                       ("vaswani_wmt_en_fr_big", presets.transformer_vaswani_wmt_en_fr_big),
                       ("wmt_en_de_big", presets.transformer_wmt_en_de_big),
                       ("wmt_en_de_big_t2t", presets.transformer_wmt_en_de_big_t2t),
                       ("multi30k", architectures.transformer_multi30k),
                       ("test_tiny", architectures.transformer_test_tiny)):
    globals()[f"transformer_gated_heads_{_name}"] = _variant(_name, _preset)
