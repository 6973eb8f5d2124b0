"""How attention is learned (Snell et al. 2021): the permutation-copy task, the LSTM dot-attention model (uniform
and multi-head variants), the binary classifier of §2.4 with the keyword toy task of §6.1, lexical probes, the
bag-of-words proxy, gradient saliency and the agreement metrics.

Importing the package registers the tasks ``permutation_copy`` and ``keyword_classification`` and the
architectures ``lstm_dot_attention`` and ``lstm_attention_classifier``.
"""

from . import permutation_copy  # noqa: F401  (registers the task)
from . import lstm_dot_attention  # noqa: F401  (registers the architectures)
from . import classifier  # noqa: F401  (registers lstm_attention_classifier)
from . import keyword  # noqa: F401  (registers keyword_classification)
