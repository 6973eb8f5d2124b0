"""``--task translation_lca``: fairseq's translation task recording loss change allocation while training.

See :mod:`fairseq_interp.lca.recorder` for what is recorded and :mod:`fairseq_interp.lca.records` for
the file format. Everything else (data, options, generation) is fairseq's ``translation``.
"""

from dataclasses import dataclass

from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..common.registry import register_task
from .recorder import LcaConfigMixin, LcaTaskMixin


@dataclass
class TranslationLcaConfig(TranslationConfig, LcaConfigMixin):
    """TranslationConfig plus the ``--lca-*`` options."""


@register_task("translation_lca", dataclass=TranslationLcaConfig)
class TranslationLcaTask(LcaTaskMixin, TranslationTask):
    """Translation with LCA recorded at every update (Zhu et al. 2020)."""
