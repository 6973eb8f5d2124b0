"""``fairseq-interp neurons importance|allocate``: per-pair neuron importance and general/specific masks
(Xie et al. 2021). Thin: parse → load → ``analysis.neurons`` / ``analysis.neuron_allocation`` → write."""

import contextlib
import copy
import json
import os
from argparse import Namespace

from ..errors import InterpretError
from . import loading


def add_parser(sub):
    p = sub.add_parser("neurons", help="multilingual neuron importance and allocation (Xie et al. 2021)")
    nsub = p.add_subparsers(dest="neurons_command", metavar="STEP")
    imp = nsub.add_parser("importance", help="Θ_TE and Θ_AV of every neuron for each language pair")
    imp.add_argument("data", help="fairseq-preprocess output folder holding every pair's SUBSET (one direction, "
                                  "or a translation_multi_simple_epoch data-bin)")
    imp.add_argument("--path", required=True, help="checkpoint of the (multilingual) Transformer")
    imp.add_argument("--pairs", nargs="+", required=True,
                     help="language pairs SRC-TGT, e.g. en-fr de-en (a multilingual model: among its --lang-pairs)")
    imp.add_argument("--subset", default="valid", help="split importance is measured on (default: valid)")
    imp.add_argument("--num-sentences", type=int, default=0, help="first N sentences of each pair (0 = all)")
    imp.add_argument("--batch-size", type=int, default=32, help="sentences per forward/backward")
    imp.add_argument("--out", required=True, help="importance file to write (.pt)")
    imp.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    imp.set_defaults(func=run_importance)
    alloc = nsub.add_parser("allocate", help="general and language-specific neurons (Eq. 9), LScore/MScore")
    alloc.add_argument("importance", help="file written by fairseq-interp neurons importance")
    alloc.add_argument("--rho", type=float, default=0.9, help="share of general neurons per module (default 0.9)")
    alloc.add_argument("--k", type=float, default=0.7, help="a pair gets a neuron if its importance >= k x the max "
                                                            "over pairs (default 0.7)")
    alloc.add_argument("--criterion", choices=["taylor", "absolute"], default="taylor",
                       help="Taylor expansion (Θ_TE) or absolute value (Θ_AV) importance")
    alloc.add_argument("--out", required=True, help="mask file to write (.pt)")
    alloc.add_argument("--plot", help="PNG of LScore per layer and MScore per module")
    alloc.set_defaults(func=run_allocate)
    p.set_defaults(func=lambda args: p.print_help())
    return p


def _pair(name):
    src, sep, tgt = name.partition("-")
    if not sep or not src or not tgt:
        raise InterpretError(f"language pair {name!r} is not SRC-TGT (e.g. en-fr)")
    return src, tgt


def _trained_pairs(task_cfg):
    """The directions of a multilingual task config (``--lang-pairs``), or None for a one-direction task."""
    pairs = getattr(task_cfg, "lang_pairs", None) if isinstance(task_cfg, Namespace) else task_cfg.get("lang_pairs")
    if isinstance(pairs, str):
        pairs = pairs.split(",")
    return [p.strip() for p in pairs] if pairs else None


def _load_for_pair(path, data, src, tgt):
    """Model and task of ``path`` reading direction ``src-tgt`` of ``data`` (one-direction or multilingual task)."""
    from omegaconf import open_dict

    state = loading.read_checkpoint(path)
    cfg = state.get("cfg")
    if cfg is None or cfg.get("task") is None:
        raise InterpretError(f"checkpoint {path} has no task config: use a checkpoint written by fairseq-train")
    task_cfg = copy.deepcopy(cfg.task)  # a Namespace for legacy tasks such as translation_multi_simple_epoch
    trained = _trained_pairs(task_cfg)
    if trained is not None and f"{src}-{tgt}" not in trained:
        raise InterpretError(f"language pair {src}-{tgt} is not one the model was trained on (available: "
                             f"{', '.join(trained)})")
    with open_dict(task_cfg) if not isinstance(task_cfg, Namespace) else contextlib.nullcontext():
        task_cfg.data = data
        task_cfg.source_lang, task_cfg.target_lang = src, tgt
    try:
        task = loading.setup_task(task_cfg)
    except InterpretError as e:
        raise InterpretError(f"language pair {src}-{tgt}: {e}") from None
    model, _ = loading.load_model(path, task, {"data": data})
    return task, task_cfg, model


def run_importance(args):
    from ..analysis.neurons import ImportanceAccumulator, model_fingerprint, save_importance

    if not os.path.isfile(args.path):
        raise InterpretError(f"checkpoint {args.path} not found: pass an existing file")
    if not os.path.isdir(args.data):
        raise InterpretError(f"data directory {args.data!r} not found: pass the fairseq-preprocess output folder")
    if args.batch_size < 1:
        raise InterpretError(f"--batch-size must be >= 1, got {args.batch_size}")
    fingerprint, per_pair, tokens = None, {}, {}
    for name in args.pairs:
        src, tgt = _pair(name)
        task, task_cfg, model = _load_for_pair(args.path, args.data, src, tgt)
        try:
            dataset = loading.load_dataset(task, args.subset, task_cfg)
        except (InterpretError, FileNotFoundError):
            raise InterpretError(f"language pair {name} has no {args.subset!r} split in {args.data}") from None
        fingerprint = fingerprint or model_fingerprint(model)
        acc = ImportanceAccumulator(model)
        n = len(dataset) if args.num_sentences <= 0 else min(args.num_sentences, len(dataset))
        pad = task.target_dictionary.pad()
        for start in range(0, n, args.batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(n, start + args.batch_size))])
            if hasattr(task, "with_model_pair_ids"):  # a masked many-to-many checkpoint: the pair's own mask
                batch = task.with_model_pair_ids(batch, model)
            acc.add_batch(batch, pad)
        per_pair[name], tokens[name] = acc.result(), dict(acc.tokens)
        print(f"| {name}: {n} sentences, {acc.tokens['src']} source and {acc.tokens['tgt']} target tokens")
    save_importance(args.out, fingerprint, per_pair, tokens)
    print(f"| importance of {sum(fingerprint['modules'].values())} neurons in {len(fingerprint['modules'])} modules "
          f"for {len(per_pair)} pairs -> {args.out}")


def run_allocate(args):
    from ..analysis.neuron_allocation import allocate, plot_scores, save_masks, scores
    from ..analysis.neurons import load_importance

    masks = allocate(load_importance(args.importance), args.rho, args.k, args.criterion)
    save_masks(args.out, masks)
    table = scores(masks)
    general = sum(int(g.sum()) for g in masks["general"].values())
    total = sum(g.numel() for g in masks["general"].values())
    print(f"| {general}/{total} general neurons (rho {args.rho}, k {args.k}, {args.criterion}) -> {args.out}")
    for key in ("lscore", "mscore"):
        print(json.dumps({key: {n: round(v, 4) for n, v in table[key].items()}}))
    if args.plot:
        plot_scores(table, args.plot)
        print(f"| plot: {args.plot}")
