"""``transformer_gated_heads``: fairseq's Transformer with a Hard Concrete gate on every attention head
(Voita et al. 2019, §4): MultiHead = Concat_i(g_i · head_i) W^O, trained with an L0 penalty
(criterion ``label_smoothed_cross_entropy_l0``).

* ``--gate-heads`` chooses the attention types that get gates: ``encoder_self``, ``decoder_self``, ``cross``.
* ``--encoder-self-heads`` / ``--decoder-self-heads`` / ``--cross-heads``: per-layer numbers of heads kept
  (written by ``fairseq-interp prune-export``; empty = all heads).
* ``--freeze-decoder``: only the encoder (and gates) are trained (Voita et al. §6.2).
* Fine-tuning a plain ``transformer`` checkpoint (``--finetune-from-model``) fills the missing gates fully open; with
  all gates open the model computes what the plain model computes.

The model is registered with :data:`GatedHeadsTransformerConfig` (:mod:`~fairseq_interp.common.model_config`:
the gate options plus every option of fairseq's ``transformer``, unset until the architecture fills it), so
``fairseq-train``, ``fairseq-hydra-train`` and yaml configs (``configs/heads/``) build the same model, with
``model._name`` an architecture (``transformer_gated_heads_test_tiny``) or the model name and its sizes.
"""

from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import (TransformerConfig, TransformerDecoderBase, TransformerEncoderBase,
                                        TransformerModel)
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase
from fairseq.modules.checkpoint_activations import checkpoint_wrapper

from ..common.attention import ATTENTION_KINDS, attention_modules
from ..common.errors import InterpretError
from ..common.model_config import add_own_args, model_args, register_architectures, transformer_model_config
from ..common.registry import register_model
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


#: the registered model config: the gate options + every Transformer option (unset -> the architecture's value)
GatedHeadsTransformerConfig = transformer_model_config("GatedHeadsTransformerConfig", GatedHeadsConfig, __name__)


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
        add_own_args(parser, GatedHeadsConfig)

    @classmethod
    def build_model(cls, args, task):
        args = model_args(args, GatedHeadsConfig)
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


# ``transformer_gated_heads`` itself is the base architecture (applied in ``build_model``); its sizes mirror
# fairseq's transformer presets and the plugin's own sizes (``_iwslt_de_en``, ..., ``_multi30k``, ``_test_tiny``)
register_architectures("transformer_gated_heads", GatedHeadsConfig)
