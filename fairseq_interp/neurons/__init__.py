"""Neuron allocation for multilingual translation (Xie et al. 2021): per-language-pair neuron importance, general
vs language-specific neurons, the neuron-masked Transformer and its tasks, erasure at inference.

Importing the package registers ``transformer_neuron_masked``, the baselines ``transformer_lang_adapter`` and
``transformer_target_attention`` and the tasks ``translation_neuron_masked``, ``translation_multi_neuron_masked``
and ``translation_multi_lang_specific``.
"""

from . import model  # noqa: F401  (registers the architectures)
from . import task  # noqa: F401  (registers translation_neuron_masked)
from . import multi_task  # noqa: F401  (registers translation_multi_neuron_masked, translation_multi_lang_specific)
from . import baselines  # noqa: F401  (registers transformer_lang_adapter, transformer_target_attention)
