"""Architectures registered by the plugin; importing this package registers them with fairseq."""

from . import transformer_sizes  # noqa: F401
