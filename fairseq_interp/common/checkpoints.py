"""The one way the plugin reads checkpoints, sets up tasks and loads splits, with one-line errors instead of
tracebacks from deep inside fairseq.

* :func:`read_checkpoint`: fairseq's upgraded checkpoint state (``load_checkpoint_to_cpu``) under torch's safe
  loader; :func:`read_raw_checkpoint`: the dictionary exactly as saved (for tools that rewrite it);
* :func:`load_model`: a model for a task built from the command line, as ``fairseq-generate`` loads it;
* :func:`load_checkpoint`: task and model from the checkpoint's own saved task config (another data folder or
  language pair as overrides), for commands that take only ``--path`` and a data folder;
* :func:`checkpoint_updates`, :func:`interval_checkpoints`: what a training run has written.
"""

import copy
import contextlib
import os
import pickle
import re
from argparse import Namespace

from .errors import InterpretError

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_paths(checkpoints, data):
    for path in checkpoints:
        if not os.path.isfile(path):
            raise InterpretError(f"checkpoint {path} not found: pass an existing file with --path")
    if not data or not os.path.isdir(data):
        raise InterpretError(f"data directory {data!r} not found: pass the fairseq-preprocess output folder")


def checkpoint_arch(state):
    """The architecture name a fairseq checkpoint state was trained with (hydra ``cfg`` or legacy ``args``)."""
    cfg = state.get("cfg")
    model_cfg = cfg.get("model") if cfg is not None and hasattr(cfg, "get") else None
    if model_cfg is not None:
        name = model_cfg.get("_name") if hasattr(model_cfg, "get") else None
        return name or getattr(model_cfg, "arch", None) or getattr(model_cfg, "_name", None)
    return getattr(state.get("args"), "arch", None)


def read_checkpoint(path, overrides=None):
    """fairseq's ``load_checkpoint_to_cpu`` (``overrides`` applied to the saved options) under the safe loader,
    with a clear error for refused pickles."""
    from fairseq import checkpoint_utils

    try:
        return checkpoint_utils.load_checkpoint_to_cpu(path, overrides)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling failed"
        raise InterpretError(
            f"checkpoint {path} holds objects the safe loader refuses ({first}); re-save it with plain tensors, "
            "lists and dicts") from None
    except (EOFError, RuntimeError) as e:
        raise InterpretError(f"checkpoint {path} is not a readable fairseq checkpoint ({e})") from None


def read_raw_checkpoint(path):
    """The checkpoint dictionary exactly as saved (``torch.load``, safe loader), without fairseq's upgrades."""
    import torch

    if not os.path.isfile(path):
        raise InterpretError(f"checkpoint {path} not found: pass an existing file with --path")
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as e:  # unreadable file or refused pickle
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InterpretError(f"checkpoint {path} is not a readable fairseq checkpoint ({first})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InterpretError(f"{path} is not a fairseq checkpoint (no 'model' entry): pass a fairseq-train output")
    return state


def checkpoint_updates(path):
    """Number of updates a checkpoint was saved at (0 when the file does not exist yet)."""
    if not os.path.exists(path):
        return 0
    return int(read_raw_checkpoint(path)["optimizer_history"][-1]["num_updates"])


def load_model(path, task, overrides, require_encoder_decoder=True, state=None):
    """Load one checkpoint as fairseq-generate does, refusing unregistered or unsuitable architectures first.

    ``overrides`` (``--model-overrides``) replace saved options. Returns ``(model, saved_cfg)``.
    """
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY, FairseqEncoderDecoderModel

    if state is None:
        state = read_checkpoint(path, overrides)
    arch = checkpoint_arch(state)
    model_cls = ARCH_MODEL_REGISTRY.get(arch) or MODEL_REGISTRY.get(arch)
    if arch is not None and model_cls is None:
        raise InterpretError(
            f"checkpoint {path} uses architecture {arch!r}, which no loaded module registers: load it with "
            f"--user-dir {PLUGIN_DIR} (or the --user-dir it was trained with)")
    if require_encoder_decoder and model_cls is not None and not issubclass(model_cls, FairseqEncoderDecoderModel):
        raise InterpretError(
            f"cannot attribute architecture {arch!r} ({model_cls.__name__}): word attribution needs an "
            "encoder-decoder translation model (fairseq transformer or lstm families)")
    try:
        models, saved_cfg = checkpoint_utils.load_model_ensemble([path], arg_overrides=overrides, task=task,
                                                                 state=state)
    except IndexError as e:  # fairseq's registry message is itself broken when the model type is unknown
        if "Replacement index" not in str(e):
            raise
        raise InterpretError(
            f"checkpoint {path} uses a model type no loaded module registers: load it with --user-dir "
            f"{PLUGIN_DIR} (or the --user-dir it was trained with)") from None
    except RuntimeError as e:
        if "size mismatch" in str(e) or "Missing key" in str(e) or "Unexpected key" in str(e):
            raise InterpretError(
                f"checkpoint {path} does not match the data's dictionaries or the model options "
                f"({str(e).splitlines()[0]}); use the data directory the model was trained on") from None
        raise
    return models[0], saved_cfg


def saved_task_config(state, path):
    """A copy of the task config a checkpoint was trained with (a Namespace for legacy tasks)."""
    cfg = state.get("cfg")
    if cfg is None or cfg.get("task") is None:
        raise InterpretError(f"checkpoint {path} has no task config: use a checkpoint written by fairseq-train")
    return copy.deepcopy(cfg.task)


def _task_option(task_cfg, name):
    return getattr(task_cfg, name, None) if isinstance(task_cfg, Namespace) else task_cfg.get(name)


def load_checkpoint(path, data=None, task_overrides=None, state=None, require_encoder_decoder=True):
    """``(task, task_cfg, model)`` of ``path`` set up from its own saved task config.

    ``data`` replaces the saved data folder (tasks without data, such as ``permutation_copy``, ignore it);
    ``task_overrides`` set further task options (e.g. ``source_lang``). The model is in training mode, as fairseq
    builds it. ``state`` is the checkpoint if already read. ``require_encoder_decoder=False`` also loads models that
    are not encoder-decoders (classifiers).
    """
    from omegaconf import open_dict

    if not os.path.isfile(path):
        raise InterpretError(f"checkpoint {path} not found: pass an existing file")
    state = state if state is not None else read_checkpoint(path)
    task_cfg = saved_task_config(state, path)
    has_data = (hasattr(task_cfg, "data") if isinstance(task_cfg, Namespace) else "data" in task_cfg)
    with open_dict(task_cfg) if not isinstance(task_cfg, Namespace) else contextlib.nullcontext():
        if has_data and data:
            task_cfg.data = data
        for key, value in (task_overrides or {}).items():
            setattr(task_cfg, key, value)
    if has_data:
        saved = _task_option(task_cfg, "data")
        if not saved or not os.path.isdir(str(saved).split(os.pathsep)[0]):
            raise InterpretError(f"data directory {saved!r} not found: pass the fairseq-preprocess folder the model "
                                 "was trained on as DATA")
    task = setup_task(task_cfg)
    model, _ = load_model(path, task, {"data": data} if data and has_data else {},
                          require_encoder_decoder=require_encoder_decoder, state=state)
    return task, task_cfg, model


def interval_checkpoints(folder):
    """{update N: path} of the ``checkpoint_<epoch>_<N>.pt`` files fairseq-train writes with
    ``--save-interval-updates`` (keep them all with ``--keep-interval-updates -1``)."""
    if not os.path.isdir(folder):
        raise InterpretError(f"checkpoint folder {folder} not found: pass a checkpoint inside a fairseq-train "
                             "--save-dir")
    found = {}
    for name in os.listdir(folder):
        match = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", name)
        if match:
            found[int(match.group(1))] = os.path.join(folder, name)
    return dict(sorted(found.items()))


def setup_task(task_cfg):
    from fairseq import tasks

    try:
        return tasks.setup_task(task_cfg)
    except FileNotFoundError as e:
        raise InterpretError(f"cannot set up the task: {e}; pass the fairseq-preprocess output folder") from None
    except Exception as e:  # fairseq raises bare Exceptions for missing language pairs
        if "language" in str(e).lower() or "dict" in str(e).lower():
            raise InterpretError(f"cannot set up the task: {e}; pass --source-lang/--target-lang") from None
        raise


def load_dataset(task, split, task_cfg):
    try:
        task.load_dataset(split, task_cfg=task_cfg)
    except FileNotFoundError as e:
        raise InterpretError(f"{e}: pass --gen-subset with a split fairseq-preprocess wrote (train, valid, test)") \
            from None
    return task.dataset(split)
