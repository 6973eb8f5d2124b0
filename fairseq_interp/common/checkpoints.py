"""The one way the plugin reads checkpoints, sets up tasks and loads splits, with one-line errors instead of
tracebacks from deep inside fairseq.

* :func:`read_checkpoint`: fairseq's upgraded checkpoint state (``load_checkpoint_to_cpu``) under torch's safe
  loader; :func:`read_raw_checkpoint`: the dictionary exactly as saved (for tools that rewrite it);
* :func:`load_model`: a model for a task built from the command line, as ``fairseq-generate`` loads it;
* :func:`load_checkpoint`: task and model from the checkpoint's own saved task config (another data folder or
  language pair as overrides), for commands that take only ``--path`` and a data folder;
* :func:`checkpoint_updates`, :func:`interval_checkpoints`: what a training run has written;
  :func:`checkpoint_training`, :func:`checkpoint_stopping`: its seed, updates and stopping rule.
"""

import contextlib
import copy
import os
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


def _training_option(state, section, key):
    """An integer training option of a fairseq checkpoint state: hydra ``cfg.<section>.<key>``, else legacy
    ``args.<key>`` (``None`` where neither says)."""
    cfg = state.get("cfg")
    group = cfg.get(section) if cfg is not None and hasattr(cfg, "get") else None
    value = group.get(key) if group is not None and hasattr(group, "get") else getattr(state.get("args"), key, None)
    return None if value is None else int(value)


def checkpoint_training(state):
    """``{"seed", "updates"}`` of a fairseq checkpoint state: the training seed and the number of updates it was
    saved at (``None`` where the state does not say)."""
    history = state.get("optimizer_history") or []
    updates = history[-1].get("num_updates") if history and hasattr(history[-1], "get") else None
    return {"seed": _training_option(state, "common", "seed"), "updates": None if updates is None else int(updates)}


def checkpoint_stopping(state):
    """``{"patience", "max_update"}`` of a fairseq checkpoint state: the rule its training stopped by (fairseq's
    ``--patience``, validations without improvement, ≤ 0 or ``None`` for none; ``--max-update``, 0 for none)."""
    return {"patience": _training_option(state, "checkpoint", "patience"),
            "max_update": _training_option(state, "optimization", "max_update")}


def _torch_load(path):
    """``torch.load`` under the safe loader, with one-line errors for unreadable files and refused pickles."""
    import torch

    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "not found"
        raise InterpretError(f"checkpoint {path} is {what}: pass an existing checkpoint file with --path")
    try:
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu")
    except Exception as e:  # a refused pickle or a file torch cannot read
        raise _load_error(path, e) from None


def _load_error(path, error):
    from .safe_loading import load_failure_reason

    kind, detail = load_failure_reason(error)
    if kind == "refused":
        return InterpretError(
            f"checkpoint {path} holds a pickled object the safe loader refuses (global {detail}); fairseq checkpoints "
            "hold only tensors, containers, argparse.Namespace and omegaconf configs: load checkpoints written by "
            "fairseq-train, or re-save this one's weights as plain tensors, lists and dicts")
    return InterpretError(f"checkpoint {path} is not a readable torch checkpoint ({detail}): the file is truncated "
                          "or was not written by torch.save; pass a checkpoint written by fairseq-train")


def check_fairseq_state(state, path):
    """Refuse a torch file that is not a fairseq checkpoint (a dict with ``model`` parameters and ``cfg`` or
    ``args``)."""
    import torch

    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) \
            or not any(isinstance(v, torch.Tensor) for v in state["model"].values()):
        raise InterpretError(f"{path} is a torch file but not a fairseq checkpoint (no 'model' parameters): pass a "
                             "checkpoint written by fairseq-train")
    if state.get("cfg") is None and state.get("args") is None:
        raise InterpretError(f"{path} is a torch file but not a fairseq checkpoint (no 'cfg' or 'args' with the "
                             "training options): pass a checkpoint written by fairseq-train")


def check_finite(state_dict, path):
    """Refuse parameters holding NaN or infinity, naming the first one (in the checkpoint's order)."""
    import torch

    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                kind = "NaN" if bool(torch.isnan(value).any()) else "infinite values"
                raise InterpretError(
                    f"checkpoint {path} has non-finite weights: {name} holds {kind} ({bad} of {value.numel()} "
                    "values); training diverged or the file is damaged: use an earlier checkpoint")


def read_checkpoint(path, overrides=None, check_weights=True):
    """fairseq's ``load_checkpoint_to_cpu`` (``overrides`` applied to the saved options) under the safe loader,
    with one-line errors for an unreadable file, a refused pickle, a torch file that is not a fairseq checkpoint
    and (``check_weights``) non-finite parameters."""
    from fairseq import checkpoint_utils

    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "not found"
        raise InterpretError(f"checkpoint {path} is {what}: pass an existing checkpoint file with --path")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path, overrides)
    except InterpretError:
        raise
    except Exception:
        # an unreadable file, a refused pickle, or fairseq's upgrade of a torch file that is not its checkpoint
        # (KeyError 'best_loss', ...): say which; a failure on a real fairseq checkpoint is a bug and stays visible
        check_fairseq_state(_torch_load(path), path)
        raise
    check_fairseq_state(state, path)
    if check_weights:
        check_finite(state["model"], path)
    return state


def read_raw_checkpoint(path):
    """The checkpoint dictionary exactly as saved (``torch.load``, safe loader), without fairseq's upgrades."""
    state = _torch_load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise InterpretError(f"{path} is not a fairseq checkpoint (no 'model' entry): pass a fairseq-train output")
    return state


#: the option (same name in every command) that lets a run use data the checkpoint check refuses
ALLOW_DATA_MISMATCH = "--allow-data-mismatch"
ALLOW_DATA_MISMATCH_HELP = ("use the data even though its language pair or dictionaries differ from the checkpoint's "
                            "training data (the check is described in docs/safety.md)")


def _config_value(cfg, name):
    if cfg is None:
        return None
    return getattr(cfg, name, None) if isinstance(cfg, Namespace) or not hasattr(cfg, "get") else cfg.get(name)


def _saved_task(state):
    cfg = state.get("cfg")
    task = cfg.get("task") if cfg is not None and hasattr(cfg, "get") else None
    return task if task is not None else state.get("args")


def _pair_names(folder):
    """The language-pair names (``a-b``) of a fairseq-preprocess folder's ``train.a-b.*`` files."""
    return sorted({name.split(".")[1] for name in os.listdir(folder)
                   if name.startswith("train.") and len(name.split(".")) >= 4 and name.split(".")[1].count("-") == 1})


def training_pair(state):
    """``(source, target, how)`` of the direction a checkpoint was trained on: the saved task options, else the
    one language pair of the training data folder named in the checkpoint (fairseq infers the direction from those
    file names when no ``--source-lang`` is given), else ``(None, None, reason)``."""
    saved = _saved_task(state)
    src, tgt = _config_value(saved, "source_lang"), _config_value(saved, "target_lang")
    if src and tgt:
        return src, tgt, "saved task options"
    folder = training_data_folder(state)
    if folder is None:
        return None, None, "its training data folder is not here"
    pairs = _pair_names(folder)
    if len(pairs) != 1:
        return None, None, f"its training data folder {folder} holds {len(pairs)} language pairs"
    a, b = pairs[0].split("-")
    return a, b, f"the one language pair of {folder}"


def training_data_folder(state):
    """The first data folder of the checkpoint's saved task options, if it exists here (relative paths are taken
    from the current folder, as fairseq-train saw them)."""
    data = _config_value(_saved_task(state), "data")
    if not data:
        return None
    folder = str(data).split(os.pathsep)[0]
    return os.path.abspath(folder) if os.path.isdir(folder) else None


def _task_langs(task):
    cfg = getattr(task, "cfg", None) or getattr(task, "args", None)
    return _config_value(cfg, "source_lang"), _config_value(cfg, "target_lang")


def _first_difference(a, b):
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k, x, y
    return min(len(a), len(b)), None, None


def check_checkpoint_data(state, path, task, allow_mismatch=False, pair_fix="--source-lang {src} --target-lang {tgt}"):
    """Check before anything runs that the task's data fits the checkpoint; return what was compared.

    fairseq checkpoints store no dictionary, so this compares what can be compared:

    1. the embedding rows of the encoder and decoder with the sizes of the task's source and target dictionaries
       (always; a mismatch cannot be overridden: the model would not load);
    2. the language pair with the checkpoint's (its saved ``source_lang``/``target_lang``, else the one pair of its
       training data folder);
    3. the task's dictionaries, symbol by symbol, with ``dict.{lang}.txt`` of the training data folder named in the
       checkpoint, when that folder exists here.

    2 and 3 raise unless ``allow_mismatch`` (``pair_fix``: the options that choose the pair, formatted with the
    checkpoint's ``src`` and ``tgt``); when they cannot be made (training folder absent, several pairs, a
    many-to-many model) the returned ``not_compared`` says why.
    """
    import logging

    logger = logging.getLogger("fairseq_interp.checkpoints")
    fix = f"or pass {ALLOW_DATA_MISMATCH} if the mismatch is deliberate"
    params = state["model"]
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    for side, key, dictionary in (("source", "encoder.embed_tokens.weight", src_dict),
                                  ("target", "decoder.embed_tokens.weight", tgt_dict)):
        rows = params[key].shape[0] if key in params and hasattr(params[key], "shape") else None
        if rows is not None and dictionary is not None and rows != len(dictionary):
            raise InterpretError(
                f"checkpoint {path} has {rows} {side} embeddings but the data's {side} dictionary has "
                f"{len(dictionary)} symbols: pass the data folder the model was trained on (or data binarized "
                "with its dictionaries: fairseq-preprocess --srcdict/--tgtdict)")
    compared, not_compared = ["embedding sizes"], []
    saved = _saved_task(state)
    run_src, run_tgt = _task_langs(task)
    if _config_value(saved, "lang_pairs"):
        not_compared.append("language pair (a many-to-many checkpoint)")
        train_src, train_tgt = run_src, run_tgt
    else:
        train_src, train_tgt, how = training_pair(state)
        if train_src is None:
            not_compared.append(f"language pair ({how})")
        elif run_src and run_tgt and (run_src, run_tgt) != (train_src, train_tgt) and not allow_mismatch:
            raise InterpretError(
                f"checkpoint {path} translates {train_src}->{train_tgt} ({how}) but this run reads "
                f"{run_src}->{run_tgt}: pass {pair_fix.format(src=train_src, tgt=train_tgt)}, {fix}")
        else:
            compared.append("language pair")
    folder = training_data_folder(state)
    if folder is None:
        not_compared.append("dictionary contents (the checkpoint's training data folder "
                            f"{_config_value(saved, 'data')!r} is not here)")
    else:
        from fairseq.data import Dictionary

        for side, lang, dictionary in (("source", train_src, src_dict), ("target", train_tgt, tgt_dict)):
            dict_file = os.path.join(folder, f"dict.{lang}.txt") if lang else None
            if dict_file is None or not os.path.isfile(dict_file) or dictionary is None:
                not_compared.append(f"{side} dictionary contents (no {dict_file or 'dictionary file'})")
                continue
            trained = Dictionary.load(dict_file).symbols
            here = dictionary.symbols[:len(trained)]  # multilingual tasks append language tokens
            if here != trained and not allow_mismatch:
                k, was, now = _first_difference(trained, here)
                raise InterpretError(
                    f"the data's {side} dictionary differs from the one checkpoint {path} was trained with "
                    f"({dict_file}): symbol {k} is {was!r} there, {now!r} here: pass data binarized with the training "
                    f"dictionaries (fairseq-preprocess --srcdict/--tgtdict {dict_file}), {fix}")
            compared.append(f"{side} dictionary contents")
    if not_compared:
        logger.warning(f"checkpoint vs data: compared {', '.join(compared)}; could not compare "
                       f"{'; '.join(not_compared)}")
    return {"compared": compared, "not_compared": not_compared, "allowed_mismatch": bool(allow_mismatch)}


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


def load_checkpoint(path, data=None, task_overrides=None, state=None, require_encoder_decoder=True,
                    allow_data_mismatch=False, pair_fix="the pair {src}-{tgt}"):
    """``(task, task_cfg, model)`` of ``path`` set up from its own saved task config.

    ``data`` replaces the saved data folder (tasks without data, such as ``permutation_copy``, ignore it);
    ``task_overrides`` set further task options (e.g. ``source_lang``). The model is in training mode, as fairseq
    builds it. ``state`` is the checkpoint if already read. ``require_encoder_decoder=False`` also loads models that
    are not encoder-decoders (classifiers). Translation tasks (a task config with ``source_lang``) are checked
    against the checkpoint first (:func:`check_checkpoint_data`: language pair and dictionaries).
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
    is_translation = (hasattr(task_cfg, "source_lang") if isinstance(task_cfg, Namespace)
                      else "source_lang" in task_cfg)
    if is_translation:
        check_checkpoint_data(state, path, task, allow_data_mismatch, pair_fix)
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


def _dictionary_languages(folder):
    return sorted(name[5:-4] for name in os.listdir(folder) if name.startswith("dict.") and name.endswith(".txt")
                  and name != "dict.txt") if os.path.isdir(folder) else []


def setup_task(task_cfg):
    """fairseq's ``tasks.setup_task`` with one-line errors: a missing data folder, a language without a dictionary
    in it (naming the languages it has), and a ``--source-lang``/``--target-lang`` that fairseq would silently
    replace by the pair it infers from the folder (it does so when only one of them is given)."""
    from fairseq import tasks

    asked = (_config_value(task_cfg, "source_lang"), _config_value(task_cfg, "target_lang"))
    data = _config_value(task_cfg, "data")
    folder = str(data).split(os.pathsep)[0] if data else None
    try:
        task = tasks.setup_task(task_cfg)
    except FileNotFoundError as e:
        missing = os.path.basename(str(e.filename or ""))
        if folder and os.path.isdir(folder) and missing.startswith("dict.") and missing.endswith(".txt"):
            have = _dictionary_languages(folder)
            raise InterpretError(
                f"the data folder {folder} has no dictionary for language {missing[5:-4]!r} (it has "
                f"{', '.join(have) or 'none'}): pass --source-lang/--target-lang among those, or the data folder of "
                "that language pair") from None
        raise InterpretError(f"cannot set up the task: {e}; pass the fairseq-preprocess output folder") from None
    except Exception as e:  # fairseq raises bare Exceptions for missing language pairs
        if "language" in str(e).lower() or "dict" in str(e).lower():
            raise InterpretError(f"cannot set up the task: {e}; pass --source-lang/--target-lang") from None
        raise
    got = _task_langs(task)
    for option, want, have in (("--source-lang", asked[0], got[0]), ("--target-lang", asked[1], got[1])):
        if (asked[0] is None) != (asked[1] is None) and want and have and want != have:
            raise InterpretError(f"{option} {want} was replaced by {have}, the pair fairseq infers from {folder}, "
                                 "because only one of --source-lang/--target-lang was given: pass both")
    return task


def check_binarized_split(data, split):
    """Refuse a split whose fairseq mmap files (``{split}.*.idx`` and ``.bin``) are truncated or damaged, before
    fairseq reads them (it would fail with ``struct.error`` or ``buffer is smaller than requested size`` deep in a
    run). Files in another format than fairseq's mmap index are left to fairseq."""
    import struct

    import numpy as np

    folder = str(data).split(os.pathsep)[0] if data else None
    if not folder or not os.path.isdir(folder):
        return
    for name in sorted(os.listdir(folder)):
        if not (name.startswith(f"{split}.") and name.endswith(".idx")):
            continue
        idx, bin_path = os.path.join(folder, name), os.path.join(folder, name[:-4] + ".bin")
        fix = f"the binarized split {split} in {folder} is damaged ({name}"
        with open(idx, "rb") as f:
            head = f.read(26)
            if not head.startswith(b"MMIDIDX\x00\x00"):
                continue
            if len(head) < 26:
                raise InterpretError(f"{fix}: truncated header): rerun fairseq-preprocess")
            (version,), (code,), (count,) = (struct.unpack("<Q", head[9:17]), struct.unpack("<B", head[17:18]),
                                             struct.unpack("<Q", head[18:26]))
            from fairseq.data.indexed_dataset import _code_to_dtype

            if version != 1 or code not in _code_to_dtype:
                raise InterpretError(f"{fix}: unknown index version or type): rerun fairseq-preprocess")
            sizes = np.frombuffer(f.read(4 * count), dtype=np.int32)
            pointers = np.frombuffer(f.read(8 * count), dtype=np.int64)
        if len(sizes) != count or len(pointers) != count:
            raise InterpretError(f"{fix}: the index is truncated): rerun fairseq-preprocess")
        if not os.path.isfile(bin_path):
            raise InterpretError(f"{fix}: {os.path.basename(bin_path)} is missing): rerun fairseq-preprocess")
        needed = int(pointers[-1]) + int(sizes[-1]) * np.dtype(_code_to_dtype[code]).itemsize if count else 0
        if os.path.getsize(bin_path) < needed:
            raise InterpretError(f"{fix}: {os.path.basename(bin_path)} has {os.path.getsize(bin_path)} bytes of the "
                                 f"{needed} its index describes): rerun fairseq-preprocess")


def load_dataset(task, split, task_cfg):
    """``task.load_dataset(split)`` after checking the split's binarized files (:func:`check_binarized_split`)."""
    task_options = getattr(task, "cfg", None) or getattr(task, "args", None)  # the folder the task reads
    check_binarized_split(_config_value(task_options, "data") or _config_value(task_cfg, "data"), split)
    try:
        task.load_dataset(split, task_cfg=task_cfg)
    except FileNotFoundError as e:
        raise InterpretError(f"{e}: pass --gen-subset with a split fairseq-preprocess wrote (train, valid, test)") \
            from None
    return task.dataset(split)
