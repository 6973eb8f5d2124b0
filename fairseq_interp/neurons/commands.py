"""``fairseq-interp neurons importance|allocate|erase``: per-pair neuron importance, general/specific masks and
erasure at inference (Xie et al. 2021). Thin: parse → load → :mod:`.importance` / :mod:`.allocation` /
:mod:`.curves` / :mod:`.erasure` → write."""

import contextlib
import json
import logging
import os
from argparse import Namespace

from ..common.checkpoints import (ALLOW_DATA_MISMATCH_HELP, check_paths, load_checkpoint, load_dataset, read_checkpoint,
                                  saved_task_config)
from ..common.cli import import_user_dir
from ..common.errors import InterpretError
from ..common.options import add_split_arguments, check_dataset_options, check_range, defaults_help_formatter
from ..common.provenance import plain
from ..common.outputs import OVERWRITE_HELP, check_output_files, check_results_folder, folder_files
from ..common.tables import markdown_table


logger = logging.getLogger("fairseq_interp.neurons")

#: earlier option names of each step (still accepted, with one warning; :func:`~..common.options.rename_options`)
RENAMED_OPTIONS = {
    "neurons importance": {"--subset": "--train-subset", "--force": "--overwrite"},
    "neurons erase": {"--subset": "--gen-subset", "--out-dir": "--results-path", "--force": "--overwrite"},
    "neurons expand": {"--force": "--overwrite"},
    "neurons allocate": {"--force": "--overwrite"},
}


def add_subcommands(sub):
    p = sub.add_parser("neurons", help="multilingual neuron importance and allocation (Xie et al. 2021)")
    nsub = p.add_subparsers(dest="neurons_command", metavar="STEP")
    imp = nsub.add_parser("importance", help="Θ_TE and Θ_AV of every neuron for each language pair",
                          formatter_class=defaults_help_formatter())
    imp.add_argument("data", help="fairseq-preprocess output folder holding every pair's split (one direction, "
                                  "or a translation_multi_simple_epoch data-bin)")
    imp.add_argument("--path", required=True, help="checkpoint of the (multilingual) Transformer")
    imp.add_argument("--pairs", nargs="+", required=True,
                     help="language pairs SRC-TGT, e.g. en-fr de-en (a multilingual model: among its --lang-pairs)")
    imp.add_argument("--train-subset", default="train",
                     help="split importance is measured on: the training data, as the paper's Eq. 7-8 (valid is "
                          "the cheaper option, and the authors' released code's)")
    imp.add_argument("--num-sentences", type=int, default=0, help="sentences with id < N of each pair (0 = all)")
    imp.add_argument("--ffn-point", choices=["activation", "linear"], default="activation",
                     help="FFN hidden units read after their activation (the paper's 'activation value') or at "
                          "fc1's linear output (the authors' released code)")
    add_split_arguments(imp, 32, "forward/backward", shards_help="only 1: importance is a mean over all sentences")
    imp.add_argument("--out", required=True, help="importance file to write (.pt)")
    imp.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    imp.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    imp.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    imp.set_defaults(func=run_importance)
    alloc = nsub.add_parser("allocate", help="general and language-specific neurons (Eq. 9), LScore/MScore",
                            formatter_class=defaults_help_formatter())
    alloc.add_argument("importance", help="file written by fairseq-interp neurons importance")
    alloc.add_argument("--rho", type=float, default=0.9, help="share of general neurons per module")
    alloc.add_argument("--k", type=float, default=0.7, help="a pair gets a neuron if its importance >= k x the max "
                                                            "over pairs")
    alloc.add_argument("--criterion", choices=["taylor", "absolute"], default="taylor",
                       help="Taylor expansion (Θ_TE) or absolute value (Θ_AV) importance")
    alloc.add_argument("--out", required=True, help="mask file to write (.pt)")
    alloc.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    alloc.add_argument("--plot", help="PNG of Figure 3: LScore per layer and pair, MScore per layer and module "
                                      "(encoder and decoder panels)")
    alloc.add_argument("--score-modules", choices=["paper", "linear"], default="paper",
                       help="modules of MScore: the paper's self_attn / encoder_attn / ffn, or one per linear map")
    alloc.add_argument("--plot-importance", metavar="PNG",
                       help="PNG of the importance curves (Figure 2): per pair, --criterion importance sorted "
                            "in decreasing order, one panel per --curve-group")
    alloc.add_argument("--curve-group", choices=["layer", "module"], default="layer",
                       help="panels of --plot-importance: one per layer, or one per module type over all layers")
    alloc.set_defaults(func=run_allocate)
    erase = nsub.add_parser("erase", help="BLEU change per direction after erasing general or one pair's "
                                          "language-specific neurons at inference (Figure 5)",
                            formatter_class=defaults_help_formatter())
    erase.add_argument("data", help="fairseq-preprocess output folder the masked model was trained on")
    erase.add_argument("--path", required=True, help="transformer_neuron_masked checkpoint (masks stored in it)")
    erase.add_argument("--references", required=True,
                       help="raw reference text of each direction, with {src}/{tgt} placeholders, e.g. "
                            "DATA/raw/test.{tgt}")
    erase.add_argument("--pairs", nargs="+", help="directions to translate and score (default: every pair of the "
                                                  "checkpoint)")
    erase.add_argument("--general-fraction", type=float, default=0.2,
                       help="share of the general neurons erased in condition 'general'")
    erase.add_argument("--specific-fraction", type=float, default=0.5,
                       help="share of one pair's specific neurons erased in condition 'specific:PAIR'")
    erase.add_argument("--specific-pairs", nargs="*",
                       help="pairs whose specific neurons are erased, one condition each (default: every pair of "
                            "the checkpoint; none: only the general condition)")
    erase.add_argument("--specific-set", choices=["specific", "exclusive"], default="specific",
                       help="a pair's neurons erased per condition: every neuron specific to it (shared with "
                            "other pairs or not), or only those no other pair uses (exclusive:PAIR)")
    erase.add_argument("--random-control", action="store_true",
                       help="for every specific:PAIR (exclusive:PAIR) condition, also erase as many neurons drawn "
                            "at random from all neurons (condition random:PAIR), the control of Figure 5")
    erase.add_argument("--seed", type=int, default=1, help="seed of the random choice of erased neurons")
    erase.add_argument("--gen-subset", default="test", help="split to translate")
    erase.add_argument("--num-sentences", type=int, default=0, help="sentences with id < N of each direction "
                                                                    "(0 = all)")
    erase.add_argument("--beam", type=int, default=5, help="beam size (fairseq's default; Xie et al. 2021: 4)")
    erase.add_argument("--max-len-a", type=float, default=1.5, help="max length = a x source length + b")
    erase.add_argument("--max-len-b", type=int, default=10, help="max length = a x source length + b")
    add_split_arguments(erase, 64, "generator call", shards_help="only 1: BLEU of shards cannot be merged")
    erase.add_argument("--detokenize", choices=["moses", "none"], default="moses",
                       help="undo Moses tokenization of the hypotheses before sacrebleu")
    erase.add_argument("--results-path", required=True, help="folder for erasure.json, erasure.md and erasure.png")
    erase.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    erase.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    erase.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    erase.set_defaults(func=run_erase)
    expand = nsub.add_parser("expand", help="widen the FFN of a trained Transformer checkpoint; the new units "
                                            "start with zero output weights, so the model's outputs are unchanged "
                                            "(+Expansion of Table 2)", formatter_class=defaults_help_formatter())
    expand.add_argument("--path", required=True, help="trained Transformer checkpoint")
    expand.add_argument("--ffn-dim", type=int, required=True,
                        help="new FFN width of every encoder and decoder layer (Xie et al.: 2048 -> 3000)")
    expand.add_argument("--seed", type=int, default=1, help="seed of the new units' input weights")
    expand.add_argument("--out", required=True, help="checkpoint to write (weights only; continue training it with "
                                                     "--finetune-from-model and the new --encoder/decoder-ffn-embed-dim)")
    expand.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    expand.set_defaults(func=run_expand)
    p.set_defaults(func=lambda args: _no_step(p, nsub))
    return p


def _no_step(parser, steps):
    import sys

    parser.print_help(sys.stderr)
    raise InterpretError(f"no step given: pass one of {', '.join(steps.choices)} (fairseq-interp neurons STEP --help "
                         "for its options)")


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


def _load_for_pair(path, data, src, tgt, overrides=None, allow_data_mismatch=False):
    """Model and task of ``path`` reading direction ``src-tgt`` of ``data`` (one-direction or multilingual task)."""
    state = read_checkpoint(path)
    trained = _trained_pairs(saved_task_config(state, path))
    if trained is not None and f"{src}-{tgt}" not in trained:
        raise InterpretError(f"language pair {src}-{tgt} is not one the model was trained on (available: "
                             f"{', '.join(trained)})")
    try:
        return load_checkpoint(path, data, {"source_lang": src, "target_lang": tgt, **(overrides or {})}, state=state,
                               allow_data_mismatch=allow_data_mismatch, pair_fix="--pairs {src}-{tgt}")
    except InterpretError as e:
        if str(e).startswith(("cannot set up the task", "the data folder")):  # name the pair that was asked for
            raise InterpretError(f"language pair {src}-{tgt}: {e}") from None
        raise


def _check_batching(args, results):
    """``--batch-size``/``--max-tokens``/sharding: ranges, and one shard only (``results`` cannot be merged)."""
    check_dataset_options(args)
    check_range(args.log_interval, "--log-interval", 1)
    if args.num_shards > 1:
        raise InterpretError(f"--num-shards {args.num_shards}: {results} of shards cannot be merged; run the whole "
                             "split in one process (drop --num-shards/--shard-id)")


def _pair_batches(task, model, dataset, args, default_batch_size, name):
    """The split's batches (fairseq's iterator: ``--max-tokens``, ``--batch-size``, ids < ``--num-sentences``)."""
    from fairseq import utils

    from ..common.batches import split_batches

    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    _, batches = split_batches(task, dataset, args, max_positions, args.num_sentences, default_batch_size,
                               what=f"language pair {name}")
    return batches


def _split_of_pair(task, task_cfg, split, name, data):
    try:
        return load_dataset(task, split, task_cfg)
    except (InterpretError, FileNotFoundError):
        raise InterpretError(f"language pair {name} has no {split!r} split in {data}") from None


def _data_provenance(task, data, split, src, tgt):
    """The data section of one pair (its language pair named even when the task is many-to-many)."""
    from ..common import provenance as prov

    section = prov.data_provenance(task, data, split)
    files = prov.split_files(data, split, src, tgt)
    section.update(source_lang=src, target_lang=tgt, split_sha256=prov.files_fingerprint(files) if files else None)
    return section


def run_importance(args):
    """Θ_TE and Θ_AV (Xie et al. 2021, Eq. 7-8) of every neuron, per pair, over ``--train-subset``."""
    from ..common.batches import progress
    from .importance import ImportanceAccumulator, importance_provenance, model_fingerprint, save_importance

    import_user_dir(args.user_dir)
    _check_batching(args, "importance (a mean over all tokens of a pair)")
    check_output_files([args.out], "--out", args.overwrite, inputs=[args.path] + folder_files(args.data))
    check_paths([args.path], args.data)
    state = read_checkpoint(args.path)
    fingerprint, per_pair, tokens, data = None, {}, {}, {}
    for name in args.pairs:
        src, tgt = _pair(name)
        task, task_cfg, model = _load_for_pair(args.path, args.data, src, tgt,
                                               allow_data_mismatch=args.allow_data_mismatch)
        dataset = _split_of_pair(task, task_cfg, args.train_subset, name, args.data)
        fingerprint = fingerprint or model_fingerprint(model)
        acc = ImportanceAccumulator(model, args.ffn_point)
        sentences = 0
        for sample in progress(_pair_batches(task, model, dataset, args, 32, name), args, prefix=f"importance {name}"):
            if not sample or "net_input" not in sample:
                continue
            if hasattr(task, "with_model_pair_ids"):  # a masked many-to-many checkpoint: the pair's own mask
                sample = task.with_model_pair_ids(sample, model)
            acc.add_batch(sample, task.target_dictionary.pad())
            sentences += int(sample["nsentences"])
        per_pair[name], tokens[name] = acc.result(), {**acc.tokens, "sentences": sentences}
        data[name] = _data_provenance(task, args.data, args.train_subset, src, tgt)
        logger.info(f"{name}: {sentences} sentences, {acc.tokens['src']} source and {acc.tokens['tgt']} target tokens")
    options = {"train_subset": args.train_subset, "num_sentences": args.num_sentences, "ffn_point": args.ffn_point,
               "skip_invalid_size_inputs_valid_test": args.skip_invalid_size_inputs_valid_test,
               "loss": "summed token NLL, teacher forcing, eval mode"}
    save_importance(args.out, fingerprint, per_pair, tokens,
                    importance_provenance(args.path, state, data, options))
    logger.info(f"importance of {sum(fingerprint['modules'].values())} neurons in {len(fingerprint['modules'])} "
                f"modules for {len(per_pair)} pairs -> {args.out}")


def run_allocate(args):
    from .allocation import allocate, plot_scores, save_masks, scores
    from .importance import load_importance

    from .allocation import _check_fraction

    _check_fraction("rho", args.rho)  # the options first, as allocate checks them
    _check_fraction("k", args.k)
    check_output_files([args.out, args.plot, args.plot_importance], ["--out", "--plot", "--plot-importance"],
                       args.overwrite, inputs=[args.importance])
    masks = allocate(load_importance(args.importance), args.rho, args.k, args.criterion)
    save_masks(args.out, masks)
    table = scores(masks, args.score_modules)
    general = sum(int(g.sum()) for g in masks["general"].values())
    total = sum(g.numel() for g in masks["general"].values())
    logger.info(f"{general}/{total} general neurons (rho {args.rho}, k {args.k}, {args.criterion}) -> {args.out}")

    def rounded(row):
        return {n: (None if v is None else round(v, 4)) for n, v in row.items()}

    for key in ("lscore", "mscore"):
        print(json.dumps({key: {layer: rounded(row) for layer, row in table[key].items()}}))
    if args.plot:
        plot_scores(table, args.plot)
        logger.info(f"plot: {args.plot}")
    if args.plot_importance:
        from .curves import importance_curves, plot_importance_curves

        curves = importance_curves(load_importance(args.importance), args.criterion, args.curve_group)
        plot_importance_curves(curves, args.plot_importance, args.criterion)
        logger.info(f"importance curves ({len(curves)} {args.curve_group} panels): {args.plot_importance}")


def run_expand(args):
    """+Expansion (Xie et al. 2021, Table 2): the checkpoint with every FFN widened to ``--ffn-dim`` units."""
    import torch
    from omegaconf import OmegaConf, open_dict

    from .baselines import expand_ffn

    check_range(args.ffn_dim, "--ffn-dim", 1)
    check_output_files([args.out], "--out", args.overwrite, inputs=[args.path])
    state = read_checkpoint(args.path)
    state["model"] = expand_ffn(state["model"], args.ffn_dim, args.seed)
    model_cfg = state["cfg"]["model"] if state.get("cfg") is not None else None
    if model_cfg is None:
        raise InterpretError(f"{args.path} has no model config: use a checkpoint written by fairseq-train")
    with open_dict(model_cfg) if OmegaConf.is_config(model_cfg) else contextlib.nullcontext():
        for key in ("encoder_ffn_embed_dim", "decoder_ffn_embed_dim"):
            setattr(model_cfg, key, args.ffn_dim)
    state["last_optimizer_state"] = None  # shapes changed: the optimizer starts afresh
    tmp = args.out + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, args.out)
    logger.info(f"FFN widened to {args.ffn_dim} units in every layer (new output weights zero) -> {args.out}")


def _erase_pairs(args, state):
    """The checkpoint's mask pairs; refuses bad fractions and pairs, and masks that do not fit the checkpoint's
    model, before anything is loaded."""
    from .erasure import check_fraction, check_stored_masks

    check_fraction("--general-fraction", args.general_fraction, allow_zero=False)
    check_fraction("--specific-fraction", args.specific_fraction, allow_zero=False)
    stored = state["model"].get("neuron_mask_pairs")
    pairs = bytes(stored.tolist()).decode().split(",") if stored is not None else ["*"]
    if pairs == ["*"]:
        raise InterpretError(f"{args.path} holds no neuron masks: pass a transformer_neuron_masked checkpoint "
                             "fine-tuned with --neuron-masks")
    check_stored_masks(state["model"], pairs, args.path)
    for option, chosen in (("--pairs", args.pairs), ("--specific-pairs", args.specific_pairs)):
        missing = [p for p in chosen or [] if p not in pairs]
        if missing:
            raise InterpretError(f"language pair {missing[0]} has no neuron mask in {args.path} (pairs: "
                                 f"{', '.join(pairs)}): pass {option} among them")
    return pairs


def _erase_plan(args, model):
    """The erased neurons of each condition (general, then specific:PAIR or exclusive:PAIR) and the size of each
    erased set."""
    from .erasure import condition_neurons, model_masks, neuron_sets, random_control

    masks = model_masks(model)
    sets = neuron_sets(masks, model.pairs)
    specific = model.pairs if args.specific_pairs is None else args.specific_pairs
    conditions = {"general": condition_neurons(sets, "general", args.general_fraction, args.seed)}
    kind = args.specific_set
    for pair in specific:
        conditions[f"{kind}:{pair}"] = condition_neurons(sets, f"{kind}:{pair}", args.specific_fraction, args.seed)
    sizes = {"general": sum(int(v.sum()) for v in sets["general"].values()),
             **{f"{kind}:{p}": sum(int(v.sum()) for v in sets[kind][p].values()) for p in specific}}
    if getattr(args, "random_control", False):
        total = sum(int(t.shape[1]) for t in masks.values())
        for pair in specific:
            conditions[f"random:{pair}"] = random_control(masks, conditions[f"{kind}:{pair}"], args.seed)
            sizes[f"random:{pair}"] = total
    return masks, conditions, sizes


def erasure_markdown(record):
    """Markdown table: unerased BLEU, then one row of BLEU change per condition."""
    pairs = record["pairs"]
    base = record["bleu"]["none"]
    rows = [["none (BLEU)", 0, *(f"{base[p]:.2f}" for p in pairs), f"{sum(base.values()) / len(pairs):.2f}"]]
    for condition, info in record["conditions"].items():
        delta = record["delta"][condition]
        rows.append([condition, f"{info['erased']}/{info['of']}", *(f"{delta[p]:+.2f}" for p in pairs),
                     f"{sum(delta.values()) / len(pairs):+.2f}"])
    return markdown_table(["condition", "erased", *pairs, "avg"], rows)


def run_erase(args):
    """Figure 5: translate every direction with the stored masks, then with each erasure condition on top."""
    import time

    from fairseq.dataclass.configs import GenerationConfig

    from ..common.batches import progress
    from ..common.bleu import corpus_bleu, read_references
    from ..common.jsonl import write_atomic
    from ..common.provenance import files_fingerprint
    from ..common.translation import translate_batches
    from .erasure import affected_pairs, erasing, erasure_provenance, plot_changes

    import_user_dir(args.user_dir)
    _check_batching(args, "BLEU (a corpus statistic)")
    check_results_folder(args.results_path, ["erasure.json", "erasure.md", "erasure.png"], "--results-path",
                         args.overwrite, inputs=[args.path] + folder_files(args.data))
    if os.path.exists(os.path.join(args.results_path, "translations")) and not args.overwrite:
        raise InterpretError(f"{os.path.join(args.results_path, 'translations')} exists: pass --overwrite to replace "
                             "the translations there, or another --results-path")
    check_paths([args.path], args.data)
    if "{tgt}" not in args.references:
        raise InterpretError(f"--references {args.references!r} has no {{tgt}} placeholder: name each direction's "
                             "reference file, e.g. DATA/raw/test.{tgt}")
    t0 = time.time()
    state = read_checkpoint(args.path)
    pairs = args.pairs or _erase_pairs(args, state)  # checks --pairs, --specific-pairs, the fractions, the masks
    if args.pairs:
        _erase_pairs(args, state)
    task_cfg = state["cfg"]["task"] if state.get("cfg") is not None else None
    # a one-direction task trained with --neuron-pair: every direction here uses its own pair's mask
    overrides = {"neuron_pair": ""} if task_cfg is not None and "neuron_pair" in task_cfg else None
    gen_cfg = GenerationConfig(beam=args.beam, max_len_a=args.max_len_a, max_len_b=args.max_len_b)
    record, conditions, data = None, None, {}
    for name in pairs:
        src, tgt = _pair(name)
        task, task_cfg, model = _load_for_pair(args.path, args.data, src, tgt, overrides, args.allow_data_mismatch)
        model.eval()
        if conditions is None:  # the same erased neurons for every direction
            masks, conditions, sizes = _erase_plan(args, model)
            record = {"checkpoint": os.path.abspath(args.path), "seed": args.seed, "pairs": list(pairs),
                      "settings": {k: v for k, v in vars(args).items() if k not in ("func", "command",
                                                                                  "neurons_command")},
                      "conditions": {c: {"erased": sum(int(v.sum()) for v in erased.values()), "of": sizes[c],
                                         "affected_pairs": affected_pairs(masks, model.pairs, erased)}
                                     for c, erased in conditions.items()},
                      "bleu": {"none": {}, **{c: {} for c in conditions}}}
        dataset = _split_of_pair(task, task_cfg, args.gen_subset, name, args.data)
        count = len(dataset) if args.num_sentences <= 0 else min(args.num_sentences, len(dataset))
        reference_file = args.references.format(src=src, tgt=tgt)
        refs = read_references(reference_file, count)
        data[name] = {**_data_provenance(task, args.data, args.gen_subset, src, tgt),
                      "references_sha256": files_fingerprint([reference_file], names=False)}
        generator = task.build_generator([model], gen_cfg)
        started = time.time()
        for condition in ["none", *conditions]:
            batches = _pair_batches(task, model, dataset, args, 64, name)
            with erasing(model, conditions[condition]) if condition != "none" else contextlib.nullcontext():
                found = translate_batches(task, model, progress(batches, args, prefix=f"{name} {condition}"),
                                          generator)
            if sorted(found) != list(range(count)):
                raise InterpretError(f"language pair {name}: {count - len(found)} of the first {count} sentences "
                                     "were skipped (too long for the model): BLEU needs every reference; pass "
                                     "--num-sentences or a split without them")
            hyps, scores = [found[i][0] for i in range(count)], [found[i][1] for i in range(count)]
            folder = os.path.join(args.results_path, "translations", condition)
            os.makedirs(folder, exist_ok=True)
            write_atomic(os.path.join(folder, f"{name}.txt"), "".join(h + "\n" for h in hyps))
            write_atomic(os.path.join(folder, f"{name}.scores"), "".join(f"{v!r}\n" for v in scores))
            record["bleu"][condition][name] = round(corpus_bleu(hyps, refs, tgt, args.detokenize).score, 4)
        logger.info(f"{name}: {count} sentences, BLEU {record['bleu']['none'][name]:.2f} unerased, "
                    f"{len(conditions)} conditions in {time.time() - started:.0f} s")
    record["delta"] = {c: {p: round(record["bleu"][c][p] - record["bleu"]["none"][p], 4) for p in pairs}
                       for c in record["conditions"]}
    record["seconds"] = round(time.time() - t0, 1)
    options = {name: getattr(args, name) for name in (
        "general_fraction", "specific_fraction", "specific_pairs", "specific_set", "random_control", "seed",
        "gen_subset", "num_sentences", "beam", "max_len_a", "max_len_b", "detokenize", "pairs")}
    record["provenance"] = plain(erasure_provenance(args.path, state, data, options))
    os.makedirs(args.results_path, exist_ok=True)
    md = erasure_markdown(record)
    write_atomic(os.path.join(args.results_path, "erasure.json"), json.dumps(record, indent=1) + "\n")
    write_atomic(os.path.join(args.results_path, "erasure.md"), md + "\n")
    plot_changes(record["delta"], list(pairs), os.path.join(args.results_path, "erasure.png"),
                 title=f"BLEU change: {args.general_fraction:g} of general / {args.specific_fraction:g} of a pair's "
                       f"{args.specific_set} neurons erased")
    print(md)
    logger.info(f"{len(pairs)} directions x {len(conditions) + 1} conditions in {record['seconds']:.0f} s -> "
                f"{os.path.join(args.results_path, 'erasure')}.{{json,md,png}}")
