"""Criterions registered by the plugin; importing this package registers them with fairseq."""

from . import label_smoothed_cross_entropy_l0  # noqa: F401  (issue 4: L0 head pruning, Voita et al. 2019)
