"""Importing fairseq without touching the root logger.

Importing fairseq runs ``logging.basicConfig(level=DEBUG)`` (in ``fairseq.models.wav2vec.wav2vec2_classification``)
and logs at import time (``Please install tensorboardX``), which would leave every library's debug messages on in
the importing program. Within :func:`root_logger_kept`, a root logger without handlers gets a temporary
``NullHandler`` (so ``basicConfig`` does nothing) and the level WARNING; both are restored afterwards. A root logger
that is already configured (fairseq's own commands configure it before importing a ``--user-dir``) is left alone.
"""

import contextlib
import logging


@contextlib.contextmanager
def root_logger_kept():
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    level, placeholder = root.level, logging.NullHandler()
    root.addHandler(placeholder)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(placeholder)
        root.setLevel(level)
