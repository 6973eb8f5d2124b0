"""``transformer_neuron_masked``: fairseq's Transformer whose neurons are masked per sample by its language pair
(Xie et al. 2021, masked fine-tuning): a sample of pair ``m`` uses only the general neurons and those specific to ``m``;
every other neuron's output is zeroed in forward, so it gets no gradient from that sample.

* ``--neuron-masks masks.pt`` (``fairseq-interp neurons allocate``) is read when the model is built and checked
  against the model's fingerprint; the masks and pair names are buffers, i.e. stored in the checkpoint.
* ``forward(..., pair_ids=LongTensor(B))`` chooses each sample's mask (index into the mask file's pairs, see
  :meth:`pair_index`); without ``pair_ids`` nothing is masked and the model is the plain Transformer.
* Fine-tuning a plain ``transformer`` checkpoint (``--finetune-from-model``) works: the masks are not in it and
  are kept from the mask file (``upgrade_state_dict_named``). With ρ = 1 every mask is all ones and the outputs
  equal the baseline's.
* Neurons are those of :mod:`fairseq_interp.neurons.importance`; masks act through forward hooks, with fairseq's
  fused attention switched off so the projection hooks fire.

Tasks: ``translation_neuron_masked`` (one direction) and ``translation_multi_neuron_masked`` (many-to-many, the
collater adds each sample's ``pair_ids``). Generation uses one pair per batch (:func:`using_pair`).
"""

import contextlib
import logging
import os
import dataclasses
from argparse import Namespace
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models.transformer import TransformerConfig, TransformerModel
from fairseq.models.transformer.transformer_config import DecoderConfig, EncDecBaseConfig, QuantNoiseConfig

from ..common.attention import disable_fused_attention
from ..common.errors import InterpretError
from ..common.registry import register_model, register_model_architecture
from ..common.wrappers import unwrap

_PAIRS = "neuron_mask_pairs"
logger = logging.getLogger(__name__)


@dataclass
class NeuronMaskedConfig(FairseqDataclass):
    neuron_masks: str = field(default="", metadata={
        "help": "mask file of fairseq-interp neurons allocate (general + language-specific neurons per pair)"})


@dataclass
class _NestedNeuronMaskedConfig(TransformerConfig):
    """``TransformerConfig`` with ``neuron_masks``: what :meth:`NeuronMaskedTransformerModel.build_model` converts
    every config to (it reads and writes the flat names ``encoder_layers`` etc. the legacy Transformer code uses)."""

    neuron_masks: str = field(default="", metadata={"help": NeuronMaskedConfig.__dataclass_fields__[
        "neuron_masks"].metadata["help"]})


def flat_transformer_fields():
    """fairseq's ``TransformerConfig`` fields with the nested ``encoder``/``decoder``/``quant_noise`` ones flattened
    to the command-line names (``encoder_layers``, ``decoder_embed_dim``, ``quant_noise_pq``), same defaults and
    help. fairseq turns a registered model dataclass into command-line overrides field by field and cannot do so
    for nested config classes, so a registered Transformer config must be flat."""
    nested = {"encoder": EncDecBaseConfig, "decoder": DecoderConfig, "quant_noise": QuantNoiseConfig}
    out = []
    for f in dataclasses.fields(TransformerConfig):
        if f.name.startswith("_"):
            continue
        members = [(f"{f.name}_{g.name}", g) for g in dataclasses.fields(nested[f.name])
                   if not g.name.startswith("_")] if f.name in nested else [(f.name, f)]
        for name, g in members:
            default = g.default
            if isinstance(default, str) and default.startswith("${model.decoder."):
                default = default.replace("${model.decoder.", "${model.decoder_")
            spec = (field(default_factory=g.default_factory, metadata=dict(g.metadata))
                    if g.default is dataclasses.MISSING else field(default=default, metadata=dict(g.metadata)))
            out.append((name, g.type, spec))
    return out


NeuronMaskedTransformerConfig = dataclasses.make_dataclass(
    "NeuronMaskedTransformerConfig",
    flat_transformer_fields() + [("neuron_masks", str, field(default="", metadata=dict(
        NeuronMaskedConfig.__dataclass_fields__["neuron_masks"].metadata)))],
    bases=(FairseqDataclass,), namespace={"__module__": __name__, "__doc__": (
        "The registered config of ``transformer_neuron_masked``: fairseq's Transformer options under their "
        "command-line names (defaults of the base ``transformer`` architecture) plus ``neuron_masks``, so "
        "``fairseq-hydra-train`` and yaml files (``model._name: transformer_neuron_masked``, ``encoder_layers: "
        "3``, ...) build the same model as ``fairseq-train --arch transformer_neuron_masked``.")})


def as_flat_config(cfg):
    """Any model config (a Namespace, an omegaconf ``DictConfig`` of hydra, a :data:`NeuronMaskedTransformerConfig`)
    as a Namespace or a ``TransformerConfig`` instance, the two kinds the legacy Transformer code reads and
    writes through flat names."""
    if isinstance(cfg, (Namespace, TransformerConfig)):
        return cfg
    return _NestedNeuronMaskedConfig.from_namespace(cfg)


def _buffer(module_name):
    return "neuron_mask__" + module_name.replace(".", "__")


@register_model("transformer_neuron_masked", dataclass=NeuronMaskedTransformerConfig)
class NeuronMaskedTransformerModel(TransformerModel):
    """fairseq ``transformer`` with per-sample, per-language-pair neuron masks (Xie et al. 2021)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        gen_parser_from_dataclass(parser, NeuronMaskedConfig())

    @classmethod
    def build_model(cls, args, task):
        args = as_flat_config(args)
        model = super().build_model(args, task)
        model.install_masks(getattr(args, "neuron_masks", "") or "")
        return model

    def install_masks(self, path):
        """Read the mask file (if any), register the mask buffers and the hooks."""
        from .allocation import load_masks, pair_masks
        from .importance import model_fingerprint, neuron_modules

        self._pair_ids = None
        modules = neuron_modules(self)
        if path and not os.path.isfile(path):
            # loading a masked checkpoint whose mask file is gone: the checkpoint's buffers replace the placeholder
            logger.warning(f"neuron mask file {path} not found: the masks must come from the checkpoint")
            path = ""
        masks = load_masks(path, model_fingerprint(self)) if path else None
        pairs = masks["pairs"] if masks else ["*"]  # placeholder until a checkpoint's buffers arrive
        per_pair = [pair_masks(masks, p) for p in pairs] if masks else None
        self.register_buffer(_PAIRS, torch.tensor(list(",".join(pairs).encode()), dtype=torch.uint8))
        for name, (module, _) in modules.items():
            value = (torch.stack([m[name] for m in per_pair]).float() if per_pair
                     else torch.ones(1, module.out_features))
            self.register_buffer(_buffer(name), value)
            module.register_forward_hook(self._mask_hook(name))
        disable_fused_attention(self)  # the fused path would bypass the projection hooks

    def _mask_hook(self, name):
        def hook(module, inputs, output):
            if self._pair_ids is None:
                return None
            mask = getattr(self, _buffer(name))[self._pair_ids]  # (n,) for one pair, else (B, n)
            if mask.dim() == 2 and mask.size(0) != output.size(1):
                if output.size(1) % mask.size(0):
                    raise InterpretError(f"{name}: {mask.size(0)} pair ids for a batch of {output.size(1)}")
                # beam search: fairseq expands sample b to rows b*beam .. b*beam+beam-1
                mask = mask.repeat_interleave(output.size(1) // mask.size(0), dim=0)
            return output * mask.to(output.dtype).unsqueeze(0) if mask.dim() == 2 else output * mask.to(output.dtype)
        return hook

    def neuron_mask(self, module_name):
        """The stored mask buffer of one allocated module: float (pairs, neurons), 1 = the pair uses the neuron."""
        return getattr(self, _buffer(module_name))

    @property
    def pairs(self):
        return bytes(getattr(self, _PAIRS).tolist()).decode().split(",")

    def pair_index(self, pair):
        if pair not in self.pairs:
            raise InterpretError(f"language pair {pair!r} has no neuron mask in this model (pairs: "
                                 f"{', '.join(self.pairs)})")
        return self.pairs.index(pair)

    @contextlib.contextmanager
    def using_pairs(self, pair_ids):
        """Mask every forward inside the block: ``pair_ids`` is one index (0-dim) or one per sample (B,)."""
        pair_ids = torch.as_tensor(pair_ids, dtype=torch.long)
        if pair_ids.dim() > 1 or (pair_ids.numel() and int(pair_ids.max()) >= len(self.pairs)) or \
                (pair_ids.numel() and int(pair_ids.min()) < 0):
            raise InterpretError(f"pair ids must index the model's {len(self.pairs)} pairs, one per sample or one "
                                 f"for the batch, got {pair_ids.tolist()}")
        previous, self._pair_ids = self._pair_ids, pair_ids
        try:
            yield
        finally:
            self._pair_ids = previous

    def forward(self, src_tokens, src_lengths, prev_output_tokens, pair_ids=None, **kwargs):
        if pair_ids is None:
            return super().forward(src_tokens, src_lengths, prev_output_tokens, **kwargs)
        if pair_ids.dim() == 1 and pair_ids.numel() != src_tokens.size(0):
            raise InterpretError(f"pair_ids must give one pair per sample ({src_tokens.size(0)}), got shape "
                                 f"{tuple(pair_ids.shape)}")
        with self.using_pairs(pair_ids):
            return super().forward(src_tokens, src_lengths, prev_output_tokens, **kwargs)

    def upgrade_state_dict_named(self, state_dict, name):
        """Keep this model's masks for a baseline checkpoint; take a masked checkpoint's (re-sizing buffers)."""
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name else ""
        for key, value in list(self.named_buffers()):
            if not (key == _PAIRS or key.startswith("neuron_mask__")):
                continue
            if prefix + key not in state_dict:
                if self.pairs == ["*"]:
                    raise InterpretError("the checkpoint has no neuron masks and none were read: pass --neuron-masks "
                                         "with the file of fairseq-interp neurons allocate")
                state_dict[prefix + key] = value.clone()
            elif state_dict[prefix + key].shape != value.shape:
                self.register_buffer(key, torch.empty_like(state_dict[prefix + key]))


def using_pair(models, pair, task):
    """Context: every model of ``models`` (fairseq-generate's ensemble) runs with the mask of ``pair``."""
    stack = contextlib.ExitStack()
    for model in models:
        model = unwrap(model)
        if not hasattr(model, "using_pairs"):
            raise InterpretError(f"--task {task} needs a model with per-pair masks or modules (--arch "
                                 f"transformer_neuron_masked, transformer_lang_adapter, transformer_target_attention), "
                                 f"got {type(model).__name__}")
        stack.enter_context(model.using_pairs(model.pair_index(pair)))
    return stack


@register_model_architecture("transformer_neuron_masked", "transformer_neuron_masked_test_tiny")
def neuron_masked_test_tiny(args):
    from ..common.architectures import transformer_test_tiny

    transformer_test_tiny(args)
