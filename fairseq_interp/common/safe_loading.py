"""Safe checkpoint loading for fairseq under torch >= 2.6.

torch.load defaults to ``weights_only=True``, whose unpickler refuses every global that is not allow-listed;
fairseq checkpoints pickle a few non-tensor objects, so stock fairseq cannot load them. This module
allow-lists exactly those (and nothing that can run code), keeping safe loading on:

* ``argparse.Namespace``: the legacy ``args`` of fairseq <= 0.10 checkpoints, and ``cfg.model`` of models
  registered without a dataclass (e.g. ``lstm``);
* omegaconf containers and their metadata (``DictConfig``, ``ListConfig``, nodes), pickled by checkpoints whose
  ``cfg`` was saved as a config object, plus the plain type objects their metadata refers to;
* numpy scalars and arrays (meters and ``best`` values saved as numpy numbers);
* ``fairseq.distributed.utils._TensorPlaceholder`` (a dataclass holding one int): in distributed training rank 0
  loads ``--restore-file``/``--finetune-from-model`` and broadcasts the state to the other ranks with tensors
  replaced by these placeholders, and the receiving ranks unpickle it with ``torch.load``.
"""

import argparse
import os
import typing

import torch

_INSTALLED = False


def _numpy_globals():
    import numpy as np

    found = [np.ndarray, np.dtype]
    # numpy >= 2 pickles from numpy._core, numpy 1.x from numpy.core: register both names
    core = getattr(np, "_core", None) or np.core
    for func in ("scalar", "_reconstruct"):
        obj = getattr(core.multiarray, func)
        found.append(obj)
        found.append((obj, f"numpy.core.multiarray.{func}"))
        found.append((obj, f"numpy._core.multiarray.{func}"))
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_"):
        found.append(type(np.dtype(getattr(np, name))))
    return found


def _omegaconf_globals():
    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    node_types = [getattr(nodes, n) for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode",
                                                 "BooleanNode", "EnumNode", "BytesNode", "PathNode")
                  if hasattr(nodes, n)]
    return [DictConfig, ListConfig, ContainerMetadata, Metadata, typing.Any, *node_types]


def _fairseq_globals():
    from fairseq.distributed.utils import _TensorPlaceholder

    return [_TensorPlaceholder]


def safe_globals():
    """The classes and functions fairseq checkpoints pickle (see module docstring)."""
    import collections

    plain_types = [dict, list, tuple, set, int, float, str, bool, collections.defaultdict, collections.OrderedDict]
    return [argparse.Namespace, *plain_types, *_omegaconf_globals(), *_numpy_globals(), *_fairseq_globals()]


def install():
    """Allow-list fairseq's checkpoint classes for ``torch.load(weights_only=True)``; idempotent."""
    global _INSTALLED
    if _INSTALLED or not hasattr(torch.serialization, "add_safe_globals"):
        return
    torch.serialization.add_safe_globals(safe_globals())
    _INSTALLED = True


def load_failure_reason(error):
    """What a failed ``torch.load`` says, in one line and without torch's advice to load with
    ``weights_only=False`` (which would run whatever code the file holds): ``("refused", "os.system")`` when the
    safe loader refused a global, else ``("unreadable", short reason)``."""
    import re

    text = str(error)
    match = re.search(r"(?:Unsupported global|unsupported GLOBAL|Trying to load unsupported GLOBAL)[:\s]*"
                      r"(?:GLOBAL\s+)?([\w.]+)", text, re.IGNORECASE)
    if match:
        return "refused", match.group(1)
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = match.group(1).strip() if match else next((line.strip() for line in text.splitlines() if line.strip()),
                                                        "")
    if not reason or "weights_only" in reason:
        reason = type(error).__name__
    return "unreadable", reason


def load_plain_file(path, what, written_by):
    """``torch.load(weights_only=True)`` of a file the plugin writes (tensors and containers only: an importance
    or mask file, ...). A missing, unreadable or refused file is an :class:`~.errors.InterpretError` naming
    ``what`` it should be and the command that writes it (``written_by``)."""
    from .errors import InterpretError

    if not os.path.isfile(path):
        state = "is a folder" if os.path.isdir(path) else "not found"
        raise InterpretError(f"{what} {path} {state}: write it with {written_by}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a refused pickle or a file torch cannot read
        kind, detail = load_failure_reason(e)
        reason = f"it holds a pickled object the safe loader refuses (global {detail})" if kind == "refused" \
            else f"not a readable torch file ({detail})"
        raise InterpretError(f"{what} {path}: {reason}: pass a file written by {written_by}") from None
