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
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.models.transformer import TransformerModel

from ..common.attention import disable_fused_attention
from ..common.errors import InterpretError
from ..common.model_config import add_own_args, model_args, register_architectures, transformer_model_config
from ..common.registry import register_model
from ..common.wrappers import unwrap

_PAIRS = "neuron_mask_pairs"
logger = logging.getLogger(__name__)


@dataclass
class NeuronMaskedConfig(FairseqDataclass):
    neuron_masks: str = field(default="", metadata={
        "help": "mask file of fairseq-interp neurons allocate (general + language-specific neurons per pair)"})


#: the registered config: ``neuron_masks`` + every Transformer option (unset -> the architecture's value), so
#: ``fairseq-train``, ``fairseq-hydra-train`` and yaml (``model._name: transformer_neuron_masked`` with sizes, or
#: an architecture such as ``transformer_neuron_masked_test_tiny``) build the same model
NeuronMaskedTransformerConfig = transformer_model_config("NeuronMaskedTransformerConfig", NeuronMaskedConfig,
                                                         __name__)


def _buffer(module_name):
    return "neuron_mask__" + module_name.replace(".", "__")


@register_model("transformer_neuron_masked", dataclass=NeuronMaskedTransformerConfig)
class NeuronMaskedTransformerModel(TransformerModel):
    """fairseq ``transformer`` with per-sample, per-language-pair neuron masks (Xie et al. 2021)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        add_own_args(parser, NeuronMaskedConfig)

    @classmethod
    def build_model(cls, args, task):
        args = model_args(args, NeuronMaskedConfig)
        model = super().build_model(args, task)
        model.install_masks(getattr(args, "neuron_masks", "") or "")
        return model

    def install_masks(self, path):
        """Read the mask file (if any), register the mask buffers and the hooks."""
        from .allocation import load_masks, pair_masks, source_checkpoint
        from .importance import model_fingerprint, neuron_modules

        self._pair_ids = None
        modules = neuron_modules(self)
        if path and not os.path.isfile(path):
            # loading a masked checkpoint whose mask file is gone: the checkpoint's buffers replace the placeholder
            logger.warning(f"neuron mask file {path} not found: the masks must come from the checkpoint")
            path = ""
        masks = load_masks(path, model_fingerprint(self)) if path else None
        self._mask_file, self._mask_source = path, (source_checkpoint(masks) if masks else None)
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
        """Keep this model's masks for a baseline checkpoint; take a masked checkpoint's (re-sizing buffers).

        A baseline checkpoint must be the one the masks were allocated for (the weights fingerprint their
        importance file recorded), when the mask file says which it was."""
        prefix = name + "." if name else ""
        if prefix + _PAIRS not in state_dict:
            self._check_mask_source(state_dict)
        super().upgrade_state_dict_named(state_dict, name)
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


    def _check_mask_source(self, state_dict):
        from ..common.provenance import weights_fingerprint

        source = getattr(self, "_mask_source", None)
        if not source or not source.get("weights_sha256"):
            return
        if weights_fingerprint(state_dict) != source["weights_sha256"]:
            raise InterpretError(
                f"mask file {self._mask_file} was allocated from the importance of another checkpoint "
                f"({source.get('path')}): fine-tune from that checkpoint, or recompute importance and masks for this "
                "one (fairseq-interp neurons importance / allocate)")


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


#: ``transformer_neuron_masked_{size}``: the sizes of fairseq's presets and the plugin's (``_multi30k``,
#: ``_test_tiny``)
register_architectures("transformer_neuron_masked", NeuronMaskedConfig)
