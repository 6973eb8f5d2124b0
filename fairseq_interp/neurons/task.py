"""``--task translation_neuron_masked``: fairseq's translation task for one direction of a
``transformer_neuron_masked`` model (Xie et al. 2021): every training, validation and generation step runs
with the neuron mask of the task's language pair (``--neuron-pair``, default ``SOURCE_LANG-TARGET_LANG``).

For many-to-many data with mixed-language batches use ``translation_multi_neuron_masked``.
"""

from dataclasses import dataclass, field

from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..common.registry import register_task
from .model import using_pair


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
        return using_pair(models, self.pair, "translation_neuron_masked")

    def attribution_context(self, models):
        """``fairseq-interpret``: attribution runs the model directly, so every forward of the run must be inside
        the pair's mask."""
        return self._masked(models)

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
