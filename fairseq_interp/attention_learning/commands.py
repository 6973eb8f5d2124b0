"""``fairseq-interp probes``: attention α against the lexical probes β, β^uf, β^IBM, β^px and gradient saliency Δ
(Snell et al. 2021), as a Table-2-style agreement table; with ``--along-training`` the second seed's interval
checkpoints give the curve A(α, α'_τ) and ξ (Eq. 11). Thin: parse → load → :mod:`.probes` → write."""

import json
import os
import time

from ..common.checkpoints import interval_checkpoints, load_checkpoint, load_dataset
from ..common.cli import import_user_dir
from ..common.errors import InterpretError


def add_subcommands(sub):
    p = sub.add_parser("probes", help="agreement of attention with lexical probes (Snell et al. 2021)")
    p.add_argument("data", nargs="?", help="fairseq-preprocess output folder (translation tasks); omit for tasks "
                                           "without data such as permutation_copy")
    p.add_argument("--path", required=True, help="checkpoint of the model whose attention α is probed")
    p.add_argument("--uniform-path", help="checkpoint trained with --uniform-attention on the same data (β^uf)")
    p.add_argument("--second-seed-path", help="checkpoint of the same model (same options and data) trained with "
                                              "another seed: the row of its attention α'; with --along-training "
                                              "its folder's interval checkpoints give ξ (Eq. 11)")
    p.add_argument("--along-training", action="store_true",
                   help="ξ (Eq. 11): probe the second seed's interval checkpoints checkpoint_<epoch>_<N>.pt in the "
                        "folder of --second-seed-path (fairseq-train --save-interval-updates N "
                        "--keep-interval-updates -1) in update order; ξ(u) = the token accuracy of the first whose "
                        "attention agrees with α more than u does")
    p.add_argument("--subset", default="valid", help="split whose sentences are probed (default: valid)")
    p.add_argument("--train-subset", default="train", help="split IBM-1 and the proxy are trained on")
    p.add_argument("--num-sentences", type=int, default=200, help="probe the first N sentences (0 = all)")
    p.add_argument("--ibm1-iterations", type=int, default=5, help="EM iterations of IBM-1 (0 = no β^IBM)")
    p.add_argument("--ibm1-max-pairs", type=int, default=0, help="train IBM-1/proxy on the first N pairs (0 = all)")
    p.add_argument("--proxy-epochs", type=int, default=0, help="epochs of the bag-of-words proxy (0 = no β^px)")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient saliency Δ")
    p.add_argument("--head-layer", type=int, default=-1,
                   help="Transformers: decoder layer whose encoder-attention heads get per-head probes (default: last)")
    p.add_argument("--no-head-probes", action="store_true", help="skip the per-head probes of Transformers")
    p.add_argument("--top", type=float, default=0.05, help="top fraction of Eq. 10 (default 0.05)")
    p.add_argument("--results-path", required=True, help="folder for probes.json and probes.md")
    p.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    p.add_argument("--seed", type=int, default=1, help="seed of the proxy training")
    p.set_defaults(func=run)
    return p


def _load(path, data):
    task, task_cfg, model = load_checkpoint(path, data)
    return task, task_cfg, model.eval()


def _check_second_seed(path, task, model, other_task, other):
    """ξ compares two training runs of one model: same vocabularies, same architecture, only the seed differs."""
    for side in ("source", "target"):
        ours, theirs = getattr(task, f"{side}_dictionary"), getattr(other_task, f"{side}_dictionary")
        if ours is not None and (theirs is None or ours.symbols != theirs.symbols):
            raise InterpretError(f"--second-seed-path {path} has another {side} vocabulary than --path: train both "
                                 "seeds on the same data")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    other_shapes = {k: tuple(v.shape) for k, v in other.state_dict().items()}
    if type(model) is not type(other) or shapes != other_shapes:
        first = next((k for k in sorted(set(shapes) | set(other_shapes)) if shapes.get(k) != other_shapes.get(k)),
                     type(other).__name__)
        raise InterpretError(f"--second-seed-path {path} is another architecture than --path (first difference: "
                             f"{first}): train the second seed with the same options")


def _load_models(args):
    """(task, task_cfg, model, uniform model or None, second-seed model or None), checked."""
    task, task_cfg, model = _load(args.path, args.data)
    uniform = second = None
    if args.uniform_path:
        uniform = _load(args.uniform_path, args.data)[2]
        if not hasattr(uniform, "lexical_probe"):
            raise InterpretError(f"--uniform-path {args.uniform_path} is a {type(uniform).__name__}: β^uf needs an "
                                 "lstm_dot_attention model trained with --uniform-attention")
    if args.second_seed_path:
        other_task, _, second = _load(args.second_seed_path, args.data)
        _check_second_seed(args.second_seed_path, task, model, other_task, second)
    return task, task_cfg, model, uniform, second


def _probe_records(args, dataset, n, eos, models, ibm, proxy, head_layer):
    """(probed (source, target) pairs, their probe records) of the first ``n`` sentences of ``dataset``."""
    from . import probes

    model, uniform, second = models
    pairs, records = [], []
    for i in range(n):
        item = dataset[i]
        if item.get("target") is None or len(item["source"]) < 2 or len(item["target"]) < 2:
            continue
        pairs.append((item["source"], item["target"]))
        records.append(probes.sentence_probes(
            model, item["source"], item["target"], eos, uniform_model=uniform, ibm=ibm, proxy=proxy,
            gradients=not args.no_gradients, second_model=second, head_layer=head_layer))
    return pairs, records


def _second_run_checkpoints(args):
    """{update N: path} of the interval checkpoints in the folder of --second-seed-path."""
    if not args.second_seed_path:
        raise InterpretError("--along-training follows the second seed's training: pass --second-seed-path")
    folder = os.path.dirname(os.path.abspath(args.second_seed_path))
    found = interval_checkpoints(folder)
    if not found:
        raise InterpretError(f"no checkpoint_<epoch>_<N>.pt in {folder}: train the second seed with "
                             "--save-interval-updates N --keep-interval-updates -1")
    return found


def _second_run_curve(args, checkpoints, task, model, pairs, records, eos):
    """[{update, checkpoint, agreement A(α, α'_τ), accuracy}] over the second seed's interval checkpoints."""
    from . import probes

    alphas = [r["alpha"] for r in records]
    curve = []
    for update, path in checkpoints.items():
        other_task, _, other = _load(path, args.data)
        _check_second_seed(path, task, model, other_task, other)
        point = probes.second_run_point(other, pairs, alphas, eos, args.top)
        curve.append({"update": update, "checkpoint": path, **point})
        print(f"| update {update}: A(α, α') {point['agreement']:.3f}, accuracy {point['accuracy']:.1f}%", flush=True)
    return curve


def run(args):
    from . import probes
    from ..common.jsonl import write_atomic

    import_user_dir(args.user_dir)
    if not 0 < args.top <= 1:
        raise InterpretError(f"--top {args.top} outside (0, 1]: pass e.g. 0.05")
    if os.path.exists(os.path.join(args.results_path, "probes.json")):
        raise InterpretError(f"{args.results_path}/probes.json exists: choose another --results-path")
    start = time.time()
    task, task_cfg, model, uniform, second = _load_models(args)
    checkpoints = _second_run_checkpoints(args) if args.along_training else None
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    eos, pad = tgt_dict.eos(), tgt_dict.pad()
    ibm = proxy = None
    if args.ibm1_iterations > 0 or args.proxy_epochs > 0:
        train = load_dataset(task, args.train_subset, task_cfg)
        train_pairs = probes.training_pairs(train, eos, pad, args.ibm1_max_pairs)
        if args.ibm1_iterations > 0:
            ibm = probes.train_ibm1(train_pairs, args.ibm1_iterations)
        if args.proxy_epochs > 0:
            import torch

            torch.manual_seed(args.seed)
            proxy = probes.BagOfWordsProxy(len(src_dict), len(tgt_dict))
            proxy.fit(train_pairs, epochs=args.proxy_epochs, seed=args.seed)
    layers = getattr(model.decoder, "layers", None)
    head_layer = None
    if not args.no_head_probes and layers is not None and len(layers) and hasattr(layers[0], "encoder_attn"):
        head_layer = args.head_layer
        if not -len(layers) <= head_layer < len(layers):
            raise InterpretError(f"--head-layer {head_layer} does not exist: pass a value between {-len(layers)} "
                                 f"and {len(layers) - 1}")
    dataset = load_dataset(task, args.subset, task_cfg)
    n = len(dataset) if not args.num_sentences else min(args.num_sentences, len(dataset))
    pairs, records = _probe_records(args, dataset, n, eos, (model, uniform, second), ibm, proxy, head_layer)
    curve = _second_run_curve(args, checkpoints, task, model, pairs, records, eos) if checkpoints else None
    rows = probes.agreement_table(records, args.top, curve)
    table = probes.format_table(rows)
    result = {"checkpoint": args.path, "subset": args.subset, "sentences": len(records), "top": args.top,
              "ibm1_iterations": args.ibm1_iterations, "proxy_epochs": args.proxy_epochs, "rows": rows}
    if args.second_seed_path:
        result["second_seed_checkpoint"] = args.second_seed_path
    if curve:
        result["second_seed_curve"] = curve
        table += "\n" + probes.format_curve(curve)
    if uniform is not None:
        result["paper_row"] = probes.paper_row(records, args.top, curve)
        table += "\n" + probes.format_paper_row(result["paper_row"])
    result["seconds"] = round(time.time() - start, 1)
    os.makedirs(args.results_path, exist_ok=True)
    write_atomic(os.path.join(args.results_path, "probes.md"), table)
    write_atomic(os.path.join(args.results_path, "probes.json"), json.dumps(result, indent=1) + "\n")
    print(table, end="")
    print(f"| {len(records)} sentences of {args.subset}, {result['seconds']} s; written to {args.results_path}")
