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
from .pair_routing import PairRouting

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
class NeuronMaskedTransformerModel(PairRouting, TransformerModel):
    """fairseq ``transformer`` with per-sample, per-language-pair neuron masks (Xie et al. 2021)."""

    PAIRS_BUFFER = _PAIRS
    PAIR_PARTS = "neuron mask"

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

        modules = neuron_modules(self)
        if path and not os.path.isfile(path):
            # loading a masked checkpoint whose mask file is gone: the checkpoint's buffers replace the placeholder
            logger.warning(f"neuron mask file {path} not found: the masks must come from the checkpoint")
            path = ""
        masks = load_masks(path, model_fingerprint(self)) if path else None
        self._mask_file, self._mask_source = path, (source_checkpoint(masks) if masks else None)
        pairs = masks["pairs"] if masks else ["*"]  # placeholder until a checkpoint's buffers arrive
        per_pair = [pair_masks(masks, p) for p in pairs] if masks else None
        self._init_pairs(pairs)
        for name, (module, _) in modules.items():
            value = (torch.stack([m[name] for m in per_pair]).float() if per_pair
                     else torch.ones(1, module.out_features))
            self.register_buffer(_buffer(name), value)
            module.register_forward_hook(self._mask_hook(name))
        disable_fused_attention(self)  # the fused path would bypass the projection hooks

    def _mask_hook(self, name):
        router = self._router

        def hook(module, inputs, output):
            if router.ids is None:
                return None
            # one mask row per batch row (T, B, n); beam search repeats sample b as rows b*beam .. b*beam+beam-1
            mask = getattr(self, _buffer(name))[router.expanded(output.size(1))]
            return output * mask.to(output.dtype).unsqueeze(0)
        return hook

    def neuron_mask(self, module_name):
        """The stored mask buffer of one allocated module: float (pairs, neurons), 1 = the pair uses the neuron."""
        return getattr(self, _buffer(module_name))

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
