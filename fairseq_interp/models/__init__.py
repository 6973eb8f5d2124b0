"""Architectures registered by the plugin; importing this package registers them with fairseq."""

from . import transformer_sizes  # noqa: F401
from . import lstm_dot_attention  # noqa: F401
from . import transformer_gated_heads  # noqa: F401,E402  (issue 4: gated heads, Voita et al. 2019)
