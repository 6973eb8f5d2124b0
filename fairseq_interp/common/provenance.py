"""Provenance of results: what made them, written beside them, compared before results are continued or joined.

A provenance is a JSON object with these sections:

* ``format``, ``format_version``: what kind of file it describes;
* ``checkpoint``: ``path``, ``weights_sha256`` (a fingerprint of the model's parameters: names, dtypes, shapes and
  values, independent of the optimizer state and of how the file was pickled) and ``arch``;
* ``data``: ``path``, ``split``, ``source_lang``, ``target_lang``, the fingerprints of the source and target
  dictionaries (their symbols in order, as the task uses them) and ``split_sha256`` (the binarized files of the
  split for that language pair);
* ``options``: every option that changes the numbers (the command decides which);
* ``versions``: fairseq-interp, fairseq, torch, captum;
* ``run``: for people only, never compared: the command line, the time, Python and numpy versions, shard, ...

:func:`check_same` compares two provenances except ``run`` and the file locations (``checkpoint.path``,
``data.path``: a moved file with the same fingerprint is the same input) and raises an :class:`InterpretError`
naming the first difference.
"""

import hashlib
import json
import os
import sys
import time

from .errors import InterpretError

#: keys never compared: where things were (the fingerprints say what they were) and the informational section
NOT_COMPARED = ("run", "checkpoint.path", "data.path")

#: packages whose versions are compared (a change may change the numbers)
COMPARED_PACKAGES = ("fairseq_interp", "fairseq", "torch", "captum")


def package_versions():
    """``{package: version}`` of :data:`COMPARED_PACKAGES` (``None`` for a package that is not installed)."""
    from importlib import metadata

    found = {}
    for name in COMPARED_PACKAGES:
        if name == "fairseq_interp":
            from .. import __version__

            found[name] = __version__
        elif name in sys.modules:  # the version the running code reports
            found[name] = getattr(sys.modules[name], "__version__", None)
        else:  # without importing it
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = None
    return found


def compute_info():
    """Where floating-point results depend on the machine: torch's CPU kernel set (``AVX2``, ``AVX512``, ...) and its
    thread count (the same run repeats bit for bit only with both the same; docs/REPRODUCTION.md)."""
    import torch

    return {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def run_info(argv=None, **extra):
    """The informational ``run`` section: command line, time, Python and numpy versions, :func:`compute_info`, and
    ``extra``."""
    import numpy

    info = {"argv": list(sys.argv if argv is None else argv), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": sys.version.split()[0], "numpy": numpy.__version__, **compute_info()}
    info.update(extra)
    return info


def weights_fingerprint(state_dict):
    """sha256 of a model's parameters and buffers: name, dtype, shape and bytes of every tensor, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def dictionary_fingerprint(dictionary):
    """sha256 of a fairseq ``Dictionary``'s symbols in order (what maps token ids to pieces; counts excluded)."""
    return hashlib.sha256("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()


def files_fingerprint(paths, names=True):
    """sha256 over the contents of ``paths`` (sorted by name) and, with ``names``, their file names."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=os.path.basename):
        if names:
            digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def split_files(data, split, source_lang=None, target_lang=None):
    """The binarized files of ``split`` in the data folder ``data``: those of the language pair (either order)
    when it is known and present, else every ``{split}.*`` file."""
    folder = str(data).split(os.pathsep)[0]
    if not os.path.isdir(folder):
        return []
    names = sorted(n for n in os.listdir(folder) if n.startswith(f"{split}.") and n.endswith((".bin", ".idx")))
    if source_lang and target_lang:
        pair = [n for n in names if n.split(".")[1] in (f"{source_lang}-{target_lang}", f"{target_lang}-{source_lang}")]
        names = pair or names
    return [os.path.join(folder, n) for n in names]


def checkpoint_provenance(path, state):
    """The ``checkpoint`` section of a checkpoint file and its loaded state: path, weights, architecture, training
    seed and updates."""
    from .checkpoints import checkpoint_arch, checkpoint_training

    return {"path": os.path.abspath(path), "weights_sha256": weights_fingerprint(state["model"]),
            "arch": checkpoint_arch(state), **checkpoint_training(state)}


def data_provenance(task, data, split):
    """The ``data`` section: folder, split, language pair, dictionary and split fingerprints of a set-up task."""
    cfg = getattr(task, "cfg", None)
    get = (lambda k: cfg.get(k) if hasattr(cfg, "get") else getattr(cfg, k, None)) if cfg is not None else \
        (lambda k: None)
    src, tgt = get("source_lang"), get("target_lang")
    files = split_files(data, split, src, tgt) if data else []
    return {"path": os.path.abspath(str(data).split(os.pathsep)[0]) if data else None, "split": split,
            "source_lang": src, "target_lang": tgt,
            "source_dictionary_sha256": dictionary_fingerprint(task.source_dictionary),
            "target_dictionary_sha256": dictionary_fingerprint(task.target_dictionary),
            "split_sha256": files_fingerprint(files) if files else None}


def plain(value):
    """``value`` as plain JSON data (omegaconf containers and Namespaces resolved, other objects as strings)."""
    from argparse import Namespace

    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:
        pass
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)  # a str subclass (torch's TorchVersion) would not pass torch's safe loader
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def flatten(provenance, prefix=""):
    """``{dotted key: value}`` of a nested provenance."""
    flat = {}
    for key, value in provenance.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _compared(key):
    return not any(key == k or key.startswith(k + ".") for k in NOT_COMPARED)


def differences(old, new):
    """``[(dotted key, old value, new value)]`` of the compared keys that differ (missing keys count)."""
    a, b = flatten(plain(old)), flatten(plain(new))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if _compared(k) and a.get(k) != b.get(k)]


def _short(value):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:18] + "..." + text[-12:]


def check_same(old, new, what, fix):
    """Raise :class:`InterpretError` if provenances ``old`` (of ``what``) and ``new`` differ:
    ``"{what} was made with other settings: {key} is {old} there, {new} here (and N more): {fix}"``."""
    diff = differences(old, new)
    if not diff:
        return
    key, there, here = diff[0]
    more = f" (and {len(diff) - 1} more difference{'s' if len(diff) > 2 else ''})" if len(diff) > 1 else ""
    raise InterpretError(f"{what} was made with other settings: {key} is {_short(there)} there, {_short(here)} here"
                         f"{more}: {fix}")


def provenance_path(results_file):
    """The provenance file beside a results file: ``X.jsonl`` -> ``X.provenance.json``."""
    return os.path.splitext(results_file)[0] + ".provenance.json"


def write_provenance(path, provenance):
    """Write a provenance as indented JSON, atomically."""
    from .jsonl import write_atomic

    write_atomic(path, json.dumps(plain(provenance), indent=1, ensure_ascii=False) + "\n")


def read_provenance(path, expected_format=None):
    """The provenance in ``path``; a one-line error if it is not readable JSON of ``expected_format``."""
    from .jsonl import read_json_object

    if not os.path.exists(path):
        raise InterpretError(f"{path} not found: the results beside it have no provenance")
    provenance = read_json_object(path, "a readable provenance file", "remove the results beside it or rerun them")
    if expected_format and provenance.get("format") != expected_format:
        raise InterpretError(f"{path} is not a {expected_format or 'provenance'} file: pass results written by "
                             "fairseq-interp")
    return provenance
