"""Tasks registered by the plugin; importing this package registers them with fairseq."""

from . import permutation_copy  # noqa: F401
from . import translation_lca  # noqa: F401
