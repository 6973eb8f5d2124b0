"""``fairseq-interp probes``: attention α against the lexical probes β, β^uf, β^IBM, β^px and gradient saliency Δ
(Snell et al. 2021), as a Table-2-style agreement table, for translation models (``lstm_dot_attention``, any fairseq
encoder-decoder) and the binary classifier ``lstm_attention_classifier`` (§2.4); with ``--along-training`` the second
seed's interval checkpoints give the curve A(α, α'_τ) and ξ (Eq. 11); β^uf (and α^fr, ``--frozen-path``) from the
run's best-agreeing checkpoint. Thin: parse → check → load → :mod:`.probes` → write (with :mod:`.probe_results`).

The probed split is read with fairseq's batch iterator (:func:`~fairseq_interp.common.batches.split_batches`:
``--max-tokens``, ``--batch-size``, ``--skip-invalid-size-inputs-valid-test``, ids < ``--num-sentences``); each
sentence is then probed on its own (Δ needs one backward pass per target word), in id order, so the numbers do not
depend on the batching.
"""

import logging
import os
import time

from ..common.batches import progress, split_batches
from ..common.checkpoints import ALLOW_DATA_MISMATCH_HELP, checkpoint_stopping, interval_checkpoints, \
    load_checkpoint, load_dataset, read_checkpoint
from ..common.cli import import_user_dir
from ..common.errors import InterpretError
from ..common.options import add_split_arguments, check_counts, check_dataset_options, check_range
from ..common.outputs import OVERWRITE_HELP, check_results_folder, folder_files, output_lock
from ..common.statistics import BOOTSTRAP_RESAMPLES

logger = logging.getLogger(__name__)

#: earlier option names still accepted (one warning each), per subcommand
RENAMED_OPTIONS = {"probes": {"--subset": "--gen-subset"}}


def add_subcommands(sub):
    p = sub.add_parser("probes", help="agreement of attention with lexical probes (Snell et al. 2021)")
    p.add_argument("data", nargs="?", help="fairseq-preprocess output folder (translation and SST-2 tasks); omit for "
                                           "tasks that generate their data (permutation_copy, keyword_classification)")
    p.add_argument("--path", required=True, help="checkpoint of the model whose attention α is probed (required)")
    p.add_argument("--uniform-path", help="checkpoint trained with --uniform-attention on the same data (β^uf); "
                                          "default: none, no β^uf")
    p.add_argument("--second-seed-path", help="checkpoint of the same model (same options and data) trained with "
                                              "another seed: the row of its attention α'; with --along-training "
                                              "its folder's interval checkpoints give ξ (Eq. 11); default: none")
    p.add_argument("--along-training", action="store_true",
                   help="ξ (Eq. 11): probe the second seed's interval checkpoints checkpoint_<epoch>_<N>.pt in the "
                        "folder of --second-seed-path (fairseq-train --save-interval-updates N "
                        "--keep-interval-updates -1) in update order, up to and ending with --second-seed-path (the "
                        "converged run, ξ*); ξ(u) = the token accuracy of the first whose attention agrees with α "
                        "more than u does")
    p.add_argument("--uniform-select", choices=["best", "given"], default="best",
                   help="best (the authors' choice, appendix A.7): every agreement with β^uf is its maximum over the "
                        "uniform run's checkpoints, --uniform-path and the checkpoint_<epoch>_<N>.pt beside it; "
                        "given: --uniform-path only (default: %(default)s)")
    p.add_argument("--frozen-path", help="classifier only: checkpoint of the frozen-β model (fairseq-train "
                                         "--freeze-except-attention) for Table 10's A(α, α^fr), the maximum over "
                                         "this checkpoint and the interval checkpoints beside it (appendix A.6); "
                                         "default: none")
    p.add_argument("--gen-subset", default="valid", help="split whose sentences are probed (default: %(default)s)")
    p.add_argument("--train-subset", default="train",
                   help="split IBM-1 and the proxy are trained on (default: %(default)s)")
    p.add_argument("--num-sentences", type=int, default=200,
                   help="probe the sentences with id < N (0 = all; default: %(default)s)")
    p.add_argument("--ibm1-iterations", type=int, default=5,
                   help="EM iterations of IBM-1 (0 = no β^IBM; default: %(default)s)")
    p.add_argument("--ibm1-max-pairs", type=int, default=0,
                   help="train IBM-1/proxy on the first N pairs (0 = all; default: %(default)s)")
    p.add_argument("--proxy-epochs", type=int, default=0,
                   help="epochs of the bag-of-words proxy (0 = no β^px; default: %(default)s)")
    p.add_argument("--proxy", choices=["factorized", "table"], default="factorized",
                   help="factorized: softmax((1/L) Σ W e_x) as Eq. 5-6 write it; table: a full-rank logit table in "
                        "place of W e (default: %(default)s)")
    p.add_argument("--proxy-dim", type=int, default=256,
                   help="embedding size d of the factorized proxy, as the authors' code (default: %(default)s)")
    p.add_argument("--proxy-lr", type=float, default=1e-3, help="Adam learning rate of the proxy (default: %(default)s)")
    p.add_argument("--proxy-valid-subset", default="valid",
                   help="split whose loss picks the proxy's best epoch, as the authors' code does ('' = last epoch; "
                        "default: %(default)s)")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient saliency Δ")
    p.add_argument("--saliency", choices=["hotflip", "l2"], default="hotflip",
                   help="Δ: hotflip = e(x_l)ᵀ ∂ log p(y_t)/∂e(x_l), the first-order effect of removing the word "
                        "(Ebrahimi et al. 2018, as §5.1 uses); l2 = ‖∂ log p(y_t)/∂e(x_l)‖₂ (default: %(default)s)")
    p.add_argument("--head-layer", type=int, default=-1,
                   help="Transformers: decoder layer whose encoder-attention heads get per-head probes (default: "
                        "%(default)s, the last)")
    p.add_argument("--no-head-probes", action="store_true", help="skip the per-head probes of Transformers")
    p.add_argument("--top", type=float, default=0.05, help="top fraction of Eq. 10, in (0, 1] (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the proxy training (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES,
                   help="bootstrap samples over the probed sentences for each agreement's 95%% interval (0: no "
                        "interval; default: %(default)s)")
    batching = p.add_argument_group("reading the split (fairseq's batch iterator)")
    add_split_arguments(batching, 16, "batch read", shards_help=(
        "refused above 1: the agreements, their random baseline, Kendall τ, the best checkpoint of a run and ξ are "
        "statistics of all probed sentences at once and cannot be merged from shards"))
    p.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    p.add_argument("--results-path", required=True,
                   help="folder for probes.json and probes.md (required; created if missing)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    p.set_defaults(func=run)
    return p


def check_options(args):
    """Every option that can be refused before anything is loaded: ranges, sharding, the results folder."""
    check_range(args.top, "--top", 0, 1, strict_minimum=True, what="e.g. 0.05")
    check_counts(args, {"num_sentences": 0, "ibm1_iterations": 0, "ibm1_max_pairs": 0, "proxy_epochs": 0,
                        "proxy_dim": 1, "log_interval": 1, "bootstrap": 0})
    check_range(args.proxy_lr, "--proxy-lr", 0, strict_minimum=True)
    check_dataset_options(args)
    if args.num_shards > 1:
        raise InterpretError(f"--num-shards {args.num_shards}: the agreements, Kendall τ, the best checkpoint of a run "
                             "and ξ are statistics over all probed sentences at once and cannot be merged from "
                             "shards; run probes in one process (lower --num-sentences for a shorter run)")
    if args.along_training and not args.second_seed_path:
        raise InterpretError("--along-training follows the second seed's training: pass --second-seed-path")
    models = [args.path, args.uniform_path, args.second_seed_path, args.frozen_path]
    check_results_folder(args.results_path, ["probes.json", "probes.md"], "--results-path", args.overwrite,
                         inputs=[m for m in models if m] + folder_files(args.data))


class Loaded:
    """A checkpoint read once: its task, task config, model (eval mode) and provenance."""

    def __init__(self, path, args):
        from ..common.provenance import checkpoint_provenance

        state = read_checkpoint(path)
        self.path = path
        self.task, self.task_cfg, model = load_checkpoint(path, args.data, state=state, require_encoder_decoder=False,
                                                          allow_data_mismatch=args.allow_data_mismatch)
        self.model = model.eval()
        self.provenance = {**checkpoint_provenance(path, state), "stopping": checkpoint_stopping(state)}


def _check_second_seed(path, first, other):
    """ξ compares two training runs of one model: same vocabularies, same architecture, only the seed differs."""
    for side in ("source", "target"):
        ours, theirs = getattr(first.task, f"{side}_dictionary"), getattr(other.task, f"{side}_dictionary")
        if ours is not None and (theirs is None or ours.symbols != theirs.symbols):
            raise InterpretError(f"--second-seed-path {path} has another {side} vocabulary than --path: train both "
                                 "seeds on the same data")
    shapes = {k: tuple(v.shape) for k, v in first.model.state_dict().items()}
    other_shapes = {k: tuple(v.shape) for k, v in other.model.state_dict().items()}
    if type(first.model) is not type(other.model) or shapes != other_shapes:
        first_key = next((k for k in sorted(set(shapes) | set(other_shapes)) if shapes.get(k) != other_shapes.get(k)),
                         type(other.model).__name__)
        raise InterpretError(f"--second-seed-path {path} is another architecture than --path (first difference: "
                             f"{first_key}): train the second seed with the same options")


def _load_models(args):
    """{"main", "uniform", "second_seed", "frozen"}: the :class:`Loaded` checkpoints given, checked."""
    from .probes import is_classifier

    main = Loaded(args.path, args)
    loaded = {"main": main}
    if args.uniform_path:
        uniform = loaded["uniform"] = Loaded(args.uniform_path, args)
        if not (hasattr(uniform.model, "lexical_probe") or is_classifier(uniform.model)) or \
                is_classifier(uniform.model) != is_classifier(main.model):
            raise InterpretError(f"--uniform-path {args.uniform_path} is a {type(uniform.model).__name__}: β^uf needs "
                                 "the probed model's architecture (lstm_dot_attention or lstm_attention_classifier) "
                                 "trained with --uniform-attention")
    if args.second_seed_path:
        loaded["second_seed"] = Loaded(args.second_seed_path, args)
        _check_second_seed(args.second_seed_path, main, loaded["second_seed"])
    if args.frozen_path:
        if not is_classifier(main.model):
            raise InterpretError("--frozen-path is for lstm_attention_classifier models (appendix A.6)")
        loaded["frozen"] = Loaded(args.frozen_path, args)
        _check_second_seed(args.frozen_path, main, loaded["frozen"])
    return loaded


def _run_checkpoints(run, until_given=False):
    """{update: path} of a run: the :class:`Loaded` checkpoint ``run`` and the interval checkpoints beside it; with
    ``until_given`` only those saved up to ``run``, the second run's converged model T (Eq. 11 reads τ ≤ T; a run
    stopped by --patience trains on past its best)."""
    given = run.provenance["updates"]
    if given is None:
        raise InterpretError(f"{run.path} does not record its number of updates: pass a checkpoint written by "
                             "fairseq-train")
    found = interval_checkpoints(os.path.dirname(os.path.abspath(run.path)))
    if until_given:
        found = {update: path for update, path in found.items() if update <= given}
        if not found:
            raise InterpretError(f"no checkpoint_<epoch>_<N>.pt up to update {given} beside {run.path}: train the "
                                 "second seed with --save-interval-updates N --keep-interval-updates -1")
    found.setdefault(given, run.path)
    return dict(sorted(found.items()))


def _each_checkpoint(args, checkpoints, main, prefix):
    """``(update, Loaded)`` of every checkpoint of ``checkpoints`` ({update: path}) in update order, checked
    against the probed model, under a progress bar."""
    bar = progress(list(checkpoints.items()), args, prefix=prefix)
    for k, (update, path) in enumerate(bar, start=1):
        other = Loaded(path, args)
        _check_second_seed(path, main, other)
        yield update, other
        bar.log({"update": update, "checkpoints": k}, step=k)


def _probe_split(args, main, loaded, ibm, proxy, head_layer):
    """``(ids, pairs, records)`` of the probed split in id order: (source, target) pairs for translation,
    (source, label) for a classifier, read through fairseq's batch iterator under a progress bar."""
    from fairseq import utils

    from . import probes

    task, model = main.task, main.model
    eos = task.target_dictionary.eos()
    dataset = load_dataset(task, args.gen_subset, main.task_cfg)
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    _, batches = split_batches(task, dataset, args, max_positions, num_sentences=args.num_sentences,
                               default_batch_size=16, seed=args.seed)
    classify = probes.is_classifier(model)
    others = {name: loaded[name].model if name in loaded else None for name in ("uniform", "second_seed", "frozen")}
    found = []
    bar = progress(batches, args, prefix=f"probes {args.gen_subset}")
    for step, sample in enumerate(bar, start=1):
        for sentence_id in sample.get("id", []) if "net_input" in sample else []:
            sentence_id = int(sentence_id)
            item = dataset[sentence_id]
            if classify:
                src, label = probes.classification_item(item)
                found.append((sentence_id, (src, label), probes.classification_probes(
                    model, src, label, uniform_model=others["uniform"], proxy=proxy, gradients=not args.no_gradients,
                    second_model=others["second_seed"], frozen_model=others["frozen"], saliency=args.saliency)))
            elif item.get("target") is not None and len(item["source"]) >= 2 and len(item["target"]) >= 2:
                found.append((sentence_id, (item["source"], item["target"]), probes.sentence_probes(
                    model, item["source"], item["target"], eos, uniform_model=others["uniform"], ibm=ibm,
                    proxy=proxy, gradients=not args.no_gradients, second_model=others["second_seed"],
                    head_layer=head_layer, saliency=args.saliency)))
        bar.log({"sentences": len(found)}, step=step)
    found.sort(key=lambda x: x[0])
    return [x[0] for x in found], [x[1] for x in found], [x[2] for x in found]


def _train_probes(args, main, classify):
    """(IBM Model 1 or None, bag-of-words proxy or None), trained on --train-subset."""
    from . import probes

    task = main.task
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    ibm_iterations = 0 if classify else args.ibm1_iterations
    if classify and args.ibm1_iterations > 0:
        logger.info("β^IBM is a translation probe: skipped for a classifier")
    if ibm_iterations == 0 and args.proxy_epochs == 0:
        return None, None

    def pairs_of(split):
        data = load_dataset(task, split, main.task_cfg)
        what = f"--train-subset {split}" if split == args.train_subset else f"--proxy-valid-subset {split}"
        return (probes.classification_pairs(task, data, args, src_dict.pad(), args.ibm1_max_pairs, what) if classify
                else probes.training_pairs(task, data, args, tgt_dict.eos(), tgt_dict.pad(), args.ibm1_max_pairs,
                                           what))

    train_pairs = pairs_of(args.train_subset)
    ibm = probes.train_ibm1(train_pairs, ibm_iterations) if ibm_iterations > 0 else None
    proxy = None
    if args.proxy_epochs > 0:
        import torch

        torch.manual_seed(args.seed)
        proxy = probes.BagOfWordsProxy(len(src_dict), 2 if classify else len(tgt_dict), dim=args.proxy_dim,
                                       factorized=args.proxy == "factorized")
        valid_pairs = pairs_of(args.proxy_valid_subset) if args.proxy_valid_subset else None
        losses = proxy.fit(train_pairs, epochs=args.proxy_epochs, lr=args.proxy_lr, seed=args.seed,
                           valid_pairs=valid_pairs)
        logger.info(f"proxy ({args.proxy}): training loss per epoch {', '.join(f'{x:.3f}' for x in losses)}; "
                    f"kept epoch {proxy.best_epoch}")
    return ibm, proxy


def _head_layer(args, model):
    layers = getattr(getattr(model, "decoder", None), "layers", None)
    has_attention_layers = hasattr(layers, "__getitem__") and hasattr(layers, "__len__") and len(layers) > 0 \
        and hasattr(layers[0], "encoder_attn")
    if args.no_head_probes or not has_attention_layers:
        return None
    if not -len(layers) <= args.head_layer < len(layers):
        raise InterpretError(f"--head-layer {args.head_layer} does not exist: pass a value between {-len(layers)} "
                             f"and {len(layers) - 1}")
    return args.head_layer


def run(args):
    from . import probes
    from .probe_results import probes_provenance, write_results

    import_user_dir(args.user_dir)
    check_options(args)
    start = time.time()
    loaded = _load_models(args)
    main = loaded["main"]
    classify = probes.is_classifier(main.model)
    checkpoints = _run_checkpoints(loaded["second_seed"], until_given=True) if args.along_training else None
    eos = main.task.target_dictionary.eos()
    ibm, proxy = _train_probes(args, main, classify)
    head_layer = _head_layer(args, main.model)
    ids, pairs, records = _probe_split(args, main, loaded, ibm, proxy, head_layer)
    if not records:
        raise InterpretError(f"no sentence of {args.gen_subset} could be probed: pass a split with sentences")
    alphas = [r["alpha"] for r in records]
    used = {}  # {what: {update: checkpoint provenance}} of the runs' checkpoints the numbers come from
    curve = None
    if checkpoints:
        curve, used["second_seed_curve"] = [], {}
        for update, other in _each_checkpoint(args, checkpoints, main, "along training"):
            point = probes.second_run_point(other.model, pairs, alphas, eos, args.top)
            curve.append({"update": update, "checkpoint": other.path, **point})
            used["second_seed_curve"][update] = other.provenance
            logger.info(f"update {update}: A(α, α') {point['agreement']:.3f}, accuracy {point['accuracy']:.1f}%")
    runs = {}
    for name, which, symbol, wanted in (("uniform", "beta", "β^uf", args.uniform_select == "best"),
                                        ("frozen", "alpha", "α^fr", True)):
        if name not in loaded or not wanted:
            continue
        runs[name], used[f"{name}_run"] = {}, {}
        for update, other in _each_checkpoint(args, _run_checkpoints(loaded[name]), loaded[name],
                                              f"{symbol} run"):
            runs[name][update] = probes.run_matrices(other.model, pairs, eos, which)
            used[f"{name}_run"][update] = other.provenance
        logger.info(f"{symbol}: {len(runs[name])} checkpoints (updates {', '.join(map(str, runs[name]))})")
        best = probes.best_over_run(alphas, runs[name], args.top)[1]
        for record, matrix in zip(records, runs[name][best]):
            record["beta_uf" if name == "uniform" else "alpha_fr"] = matrix
    rows = probes.agreement_table(records, args.top, curve, args.bootstrap)
    table = probes.format_table(rows)
    result = {"checkpoint": args.path, "subset": args.gen_subset, "sentences": len(records), "top": args.top,
              "kind": "classification" if classify else "translation",
              "ibm1_iterations": 0 if classify else args.ibm1_iterations, "proxy_epochs": args.proxy_epochs,
              "proxy": args.proxy if args.proxy_epochs else None,
              "saliency": None if args.no_gradients else args.saliency, "uniform_select": args.uniform_select,
              "rows": rows}
    if proxy is not None:
        result["proxy_epoch_kept"] = proxy.best_epoch
    if args.second_seed_path:
        result["second_seed_checkpoint"] = args.second_seed_path
    if curve:
        result["second_seed_curve"] = curve
        table += "\n" + probes.format_curve(curve)
    if "uniform" in loaded:
        result["paper_row"] = probes.paper_row(records, args.top, curve, runs.get("uniform"), runs.get("frozen"),
                                               args.bootstrap)
        table += "\n" + probes.format_paper_row(result["paper_row"])
    result["seconds"] = round(time.time() - start, 1)
    provenance = probes_provenance(args, loaded, used, ids)
    os.makedirs(args.results_path, exist_ok=True)
    with output_lock(args.results_path, "probes", "probes"):
        check_results_folder(args.results_path, ["probes.json", "probes.md"], "--results-path", args.overwrite)
        write_results(args.results_path, result, table, provenance)
    print(table, end="")
    logger.info(f"{len(records)} sentences of {args.gen_subset}, {result['seconds']} s; written to "
                f"{args.results_path}")
