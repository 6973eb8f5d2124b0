"""Attention heads (Voita et al. 2019): head relevance by LRP, confidence and roles, the gated-head Transformer
with Hard Concrete gates and its L0 criterion, and the export of a physically pruned model.

Importing the package registers ``transformer_gated_heads`` (and its sizes) and ``label_smoothed_cross_entropy_l0``.
"""

from . import model  # noqa: F401  (registers the architectures)
from . import criterion  # noqa: F401  (registers the criterion)
