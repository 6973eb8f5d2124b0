"""``--task translation_neuron_masked``: fairseq's translation task for one direction of a
``transformer_neuron_masked`` model (Xie et al. 2021): every training, validation and generation step runs
with the neuron mask of the task's language pair (``--neuron-pair``, default ``SOURCE_LANG-TARGET_LANG``).

Mixed-language batches are supported by the model (``forward(..., pair_ids=(B,))``); a multilingual task that
fills ``pair_ids`` per sample is not built yet.
"""

import contextlib
from dataclasses import dataclass, field

from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..errors import InterpretError
from ..models.wrappers import unwrap
from ..registry import register_task


@dataclass
class TranslationNeuronMaskedConfig(TranslationConfig):
    neuron_pair: str = field(default="", metadata={
        "help": "language pair whose neuron mask is used, as named in the mask file (default: SRC-TGT)"})


@register_task("translation_neuron_masked", dataclass=TranslationNeuronMaskedConfig)
class TranslationNeuronMaskedTask(TranslationTask):
    """Translation with the neuron mask of one language pair."""

    @property
    def pair(self):
        return self.cfg.neuron_pair or f"{self.cfg.source_lang}-{self.cfg.target_lang}"

    def _masked(self, models):
        stack = contextlib.ExitStack()
        for model in models:
            model = unwrap(model)
            if not hasattr(model, "using_pairs"):
                raise InterpretError(f"--task translation_neuron_masked needs --arch transformer_neuron_masked, got "
                                     f"{type(model).__name__}")
            stack.enter_context(model.using_pairs(model.pair_index(self.pair)))
        return stack

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        with self._masked([model]):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        with self._masked([model]):
            return super().valid_step(sample, model, criterion)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        with self._masked(models):
            return super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                          constraints=constraints)
