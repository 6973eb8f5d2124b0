"""Tasks registered by the plugin; importing this package registers them with fairseq."""

from . import permutation_copy  # noqa: F401
from . import translation_lca  # noqa: F401
from . import translation_neuron_masked  # noqa: F401  (issue 5: neuron allocation, Xie et al. 2021)
from . import translation_multi_neuron_masked  # noqa: F401  (issue 5: many-to-many masked fine-tuning)
