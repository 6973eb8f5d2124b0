"""How attention is learned (Snell et al. 2021): the permutation-copy task, the LSTM dot-attention model (uniform
and multi-head variants), lexical probes, the bag-of-words proxy, gradient saliency and the agreement metrics.

Importing the package registers the task ``permutation_copy`` and the architectures ``lstm_dot_attention``.
"""

from . import permutation_copy  # noqa: F401  (registers the task)
from . import lstm_dot_attention  # noqa: F401  (registers the architectures)
