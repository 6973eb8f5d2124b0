"""``fairseq-interp probes``: attention α against the lexical probes β, β^uf, β^IBM, β^px and gradient saliency Δ
(Snell et al. 2021), as a Table-2-style agreement table, for translation models (``lstm_dot_attention``, any fairseq
encoder-decoder) and the binary classifier ``lstm_attention_classifier`` (§2.4); with ``--along-training`` the second
seed's interval checkpoints give the curve A(α, α'_τ) and ξ (Eq. 11); β^uf (and α^fr, ``--frozen-path``) from the
run's best-agreeing checkpoint. Thin: parse → load → :mod:`.probes` → write."""

import json
import os
import time

from ..common.checkpoints import interval_checkpoints, load_checkpoint, load_dataset
from ..common.cli import import_user_dir
from ..common.errors import InterpretError
from ..common.options import check_counts, check_range
from ..common.outputs import OVERWRITE_HELP, check_results_folder, folder_files


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
    p.add_argument("--uniform-select", choices=["best", "given"], default="best",
                   help="best (the authors' choice, appendix A.7): every agreement with β^uf is its maximum over the "
                        "uniform run's checkpoints, --uniform-path and the checkpoint_<epoch>_<N>.pt beside it; "
                        "given: --uniform-path only")
    p.add_argument("--frozen-path", help="classifier only: checkpoint of the frozen-β model (fairseq-train "
                                         "--freeze-except-attention) for Table 10's A(α, α^fr), the maximum over "
                                         "this checkpoint and the interval checkpoints beside it (appendix A.6)")
    p.add_argument("--subset", default="valid", help="split whose sentences are probed (default: valid)")
    p.add_argument("--train-subset", default="train", help="split IBM-1 and the proxy are trained on")
    p.add_argument("--num-sentences", type=int, default=200, help="probe the first N sentences (0 = all)")
    p.add_argument("--ibm1-iterations", type=int, default=5, help="EM iterations of IBM-1 (0 = no β^IBM)")
    p.add_argument("--ibm1-max-pairs", type=int, default=0, help="train IBM-1/proxy on the first N pairs (0 = all)")
    p.add_argument("--proxy-epochs", type=int, default=0, help="epochs of the bag-of-words proxy (0 = no β^px)")
    p.add_argument("--proxy", choices=["factorized", "table"], default="factorized",
                   help="factorized: softmax((1/L) Σ W e_x) as Eq. 5-6 write it (default); table: a full-rank logit "
                        "table in place of W e")
    p.add_argument("--proxy-dim", type=int, default=256, help="embedding size d of the factorized proxy (default 256, "
                                                                "as the authors' code)")
    p.add_argument("--proxy-lr", type=float, default=1e-3, help="Adam learning rate of the proxy (default 1e-3)")
    p.add_argument("--proxy-valid-subset", default="valid",
                   help="split whose loss picks the proxy's best epoch, as the authors' code does ('' = last epoch)")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient saliency Δ")
    p.add_argument("--saliency", choices=["hotflip", "l2"], default="hotflip",
                   help="Δ: hotflip = e(x_l)ᵀ ∂ log p(y_t)/∂e(x_l), the first-order effect of removing the word "
                        "(Ebrahimi et al. 2018, as §5.1 uses; default); l2 = ‖∂ log p(y_t)/∂e(x_l)‖₂")
    p.add_argument("--head-layer", type=int, default=-1,
                   help="Transformers: decoder layer whose encoder-attention heads get per-head probes (default: last)")
    p.add_argument("--no-head-probes", action="store_true", help="skip the per-head probes of Transformers")
    p.add_argument("--top", type=float, default=0.05, help="top fraction of Eq. 10 (default 0.05)")
    p.add_argument("--results-path", required=True, help="folder for probes.json and probes.md")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    p.add_argument("--seed", type=int, default=1, help="seed of the proxy training")
    p.set_defaults(func=run)
    return p


def _load(path, data):
    task, task_cfg, model = load_checkpoint(path, data, require_encoder_decoder=False)
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
    from .probes import is_classifier

    task, task_cfg, model = _load(args.path, args.data)
    uniform = second = frozen = None
    if args.uniform_path:
        uniform = _load(args.uniform_path, args.data)[2]
        if not (hasattr(uniform, "lexical_probe") or is_classifier(uniform)) or \
                is_classifier(uniform) != is_classifier(model):
            raise InterpretError(f"--uniform-path {args.uniform_path} is a {type(uniform).__name__}: β^uf needs the "
                                 "probed model's architecture (lstm_dot_attention or lstm_attention_classifier) "
                                 "trained with --uniform-attention")
    if args.second_seed_path:
        other_task, _, second = _load(args.second_seed_path, args.data)
        _check_second_seed(args.second_seed_path, task, model, other_task, second)
    if args.frozen_path:
        if not is_classifier(model):
            raise InterpretError("--frozen-path is for lstm_attention_classifier models (appendix A.6)")
        other_task, _, frozen = _load(args.frozen_path, args.data)
        _check_second_seed(args.frozen_path, task, model, other_task, frozen)
    return task, task_cfg, model, uniform, second, frozen


def _probe_records(args, dataset, n, eos, models, ibm, proxy, head_layer):
    """(probed pairs, their probe records) of the first ``n`` sentences of ``dataset``: (source, target) pairs for
    translation, (source, label) for a classifier."""
    from . import probes

    model, uniform, second, frozen = models
    pairs, records = [], []
    for i in range(n):
        item = dataset[i]
        if probes.is_classifier(model):
            src, label = probes.classification_item(item)
            pairs.append((src, label))
            records.append(probes.classification_probes(
                model, src, label, uniform_model=uniform, proxy=proxy, gradients=not args.no_gradients,
                second_model=second, frozen_model=frozen, saliency=args.saliency))
            continue
        if item.get("target") is None or len(item["source"]) < 2 or len(item["target"]) < 2:
            continue
        pairs.append((item["source"], item["target"]))
        records.append(probes.sentence_probes(
            model, item["source"], item["target"], eos, uniform_model=uniform, ibm=ibm, proxy=proxy,
            gradients=not args.no_gradients, second_model=second, head_layer=head_layer, saliency=args.saliency))
    return pairs, records


def _run_candidates(args, path, task, model, pairs, eos, which, label):
    """{update: [matrices]} of a run's checkpoints (``path`` and the interval checkpoints beside it): β for the
    uniform run, α for the frozen-β run."""
    from . import probes
    from ..common.checkpoints import checkpoint_updates

    found = interval_checkpoints(os.path.dirname(os.path.abspath(path)))
    found.setdefault(checkpoint_updates(path), path)
    candidates = {}
    for update, ckpt in sorted(found.items()):
        other_task, _, other = _load(ckpt, args.data)
        _check_second_seed(ckpt, task, model, other_task, other)
        candidates[update] = probes.run_matrices(other, pairs, eos, which)
    print(f"| {label}: {len(candidates)} checkpoints (updates {', '.join(map(str, candidates))})", flush=True)
    return candidates


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
    check_counts(args, {"ibm1_max_pairs": 0, "proxy_epochs": 0, "proxy_dim": 1})
    check_range(args.proxy_lr, "--proxy-lr", 0, strict_minimum=True)
    models = [args.path, args.uniform_path, args.second_seed_path, args.frozen_path]
    check_results_folder(args.results_path, ["probes.json", "probes.md"], "--results-path", args.overwrite,
                         inputs=[m for m in models if m] + folder_files(args.data))
    start = time.time()
    task, task_cfg, model, uniform, second, frozen = _load_models(args)
    classify = probes.is_classifier(model)
    checkpoints = _second_run_checkpoints(args) if args.along_training else None
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    eos, pad = tgt_dict.eos(), tgt_dict.pad()
    ibm_iterations = 0 if classify else args.ibm1_iterations
    if classify and args.ibm1_iterations > 0:
        print("| β^IBM is a translation probe: skipped for a classifier", flush=True)
    ibm = proxy = None
    if ibm_iterations > 0 or args.proxy_epochs > 0:
        def pairs_of(split):
            data = load_dataset(task, split, task_cfg)
            return (probes.classification_pairs(data, args.ibm1_max_pairs) if classify
                    else probes.training_pairs(data, eos, pad, args.ibm1_max_pairs))

        train_pairs = pairs_of(args.train_subset)
        if ibm_iterations > 0:
            ibm = probes.train_ibm1(train_pairs, ibm_iterations)
        if args.proxy_epochs > 0:
            import torch

            torch.manual_seed(args.seed)
            proxy = probes.BagOfWordsProxy(len(src_dict), 2 if classify else len(tgt_dict), dim=args.proxy_dim,
                                           factorized=args.proxy == "factorized")
            valid_pairs = pairs_of(args.proxy_valid_subset) if args.proxy_valid_subset else None
            losses = proxy.fit(train_pairs, epochs=args.proxy_epochs, lr=args.proxy_lr, seed=args.seed,
                               valid_pairs=valid_pairs)
            print(f"| proxy ({args.proxy}): training loss per epoch {', '.join(f'{x:.3f}' for x in losses)}; "
                  f"kept epoch {proxy.best_epoch}", flush=True)
    layers = getattr(getattr(model, "decoder", None), "layers", None)
    head_layer = None
    has_attention_layers = hasattr(layers, "__getitem__") and hasattr(layers, "__len__") and len(layers) > 0 \
        and hasattr(layers[0], "encoder_attn")
    if not args.no_head_probes and has_attention_layers:
        head_layer = args.head_layer
        if not -len(layers) <= head_layer < len(layers):
            raise InterpretError(f"--head-layer {head_layer} does not exist: pass a value between {-len(layers)} "
                                 f"and {len(layers) - 1}")
    dataset = load_dataset(task, args.subset, task_cfg)
    n = len(dataset) if not args.num_sentences else min(args.num_sentences, len(dataset))
    pairs, records = _probe_records(args, dataset, n, eos, (model, uniform, second, frozen), ibm, proxy, head_layer)
    if not records:
        raise InterpretError(f"no sentence of {args.subset} could be probed: pass a split with sentences")
    curve = _second_run_curve(args, checkpoints, task, model, pairs, records, eos) if checkpoints else None
    uniform_runs = frozen_runs = None
    alphas = [r["alpha"] for r in records]
    if uniform is not None and args.uniform_select == "best":
        uniform_runs = _run_candidates(args, args.uniform_path, task, uniform, pairs, eos, "beta", "β^uf")
        best = probes.best_over_run(alphas, uniform_runs, args.top)[1]
        for record, beta_uf in zip(records, uniform_runs[best]):
            record["beta_uf"] = beta_uf
    if frozen is not None:
        frozen_runs = _run_candidates(args, args.frozen_path, task, frozen, pairs, eos, "alpha", "α^fr")
        best = probes.best_over_run(alphas, frozen_runs, args.top)[1]
        for record, alpha_fr in zip(records, frozen_runs[best]):
            record["alpha_fr"] = alpha_fr
    rows = probes.agreement_table(records, args.top, curve)
    table = probes.format_table(rows)
    result = {"checkpoint": args.path, "subset": args.subset, "sentences": len(records), "top": args.top,
              "kind": "classification" if classify else "translation", "ibm1_iterations": ibm_iterations,
              "proxy_epochs": args.proxy_epochs, "proxy": args.proxy if args.proxy_epochs else None,
              "saliency": None if args.no_gradients else args.saliency, "uniform_select": args.uniform_select,
              "rows": rows}
    if proxy is not None:
        result["proxy_epoch_kept"] = proxy.best_epoch
    if args.second_seed_path:
        result["second_seed_checkpoint"] = args.second_seed_path
    if curve:
        result["second_seed_curve"] = curve
        table += "\n" + probes.format_curve(curve)
    if uniform is not None:
        result["paper_row"] = probes.paper_row(records, args.top, curve, uniform_runs, frozen_runs)
        table += "\n" + probes.format_paper_row(result["paper_row"])
    result["seconds"] = round(time.time() - start, 1)
    os.makedirs(args.results_path, exist_ok=True)
    write_atomic(os.path.join(args.results_path, "probes.md"), table)
    write_atomic(os.path.join(args.results_path, "probes.json"), json.dumps(result, indent=1) + "\n")
    print(table, end="")
    print(f"| {len(records)} sentences of {args.subset}, {result['seconds']} s; written to {args.results_path}")
