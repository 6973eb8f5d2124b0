"""Checks of command-line options right after parsing, before anything is loaded or written: one line naming the
option, the value and the fix. Commands built on fairseq's generation parser (``fairseq-interpret``, and any
subcommand that decodes) share :func:`check_generation_options`.
"""

import ast

from .errors import InterpretError


def check_range(value, option, minimum=None, maximum=None, special=(), what="", strict_minimum=False):
    """Refuse ``value`` outside ``[minimum, maximum]`` (``(minimum, maximum]`` with ``strict_minimum``) unless it
    is one of ``special`` (e.g. ``-1`` meaning "off"); ``None`` (option not given) passes."""
    if value is None or value in special:
        return
    low_ok = minimum is None or (value > minimum if strict_minimum else value >= minimum)
    high_ok = maximum is None or value <= maximum
    if low_ok and high_ok:
        return
    if minimum is not None and maximum is not None:
        bound = f"in ({minimum}, {maximum}]" if strict_minimum else f"in [{minimum}, {maximum}]"
    elif minimum is not None:
        bound = f"> {minimum}" if strict_minimum else f">= {minimum}"
    else:
        bound = f"<= {maximum}"
    alternatives = "".join(f" or {s}" for s in special)
    raise InterpretError(f"{option} {value} is out of range: pass a value {bound}{alternatives}"
                         + (f" ({what})" if what else ""))


#: the lower bound of the counts commands share (option destination -> minimum); 0 = "all" for sentence counts
COUNT_MINIMUMS = {"num_sentences": 0, "beam": 1, "batch_size": 1, "max_tokens": 1, "ig_steps": 1, "repeats": 1,
                  "max_len_b": 0, "max_len_a": 0, "bootstrap": 0, "iterations": 0, "ibm1_iterations": 0,
                  "replacement_lines": 1, "trees": 1, "max_depth": 1, "min_words": 1}


def check_counts(args, minimums=None):
    """Refuse a count option below its minimum (:data:`COUNT_MINIMUMS`, or ``minimums``) for every such option
    ``args`` holds; options not given (``None``) pass."""
    for dest, minimum in (minimums or COUNT_MINIMUMS).items():
        check_range(getattr(args, dest, None), "--" + dest.replace("_", "-"), minimum)


def parse_model_overrides(text, option="--model-overrides"):
    """``--model-overrides`` as a dict (a Python dict literal, as fairseq reads it)."""
    try:
        value = ast.literal_eval(text or "{}")
    except (ValueError, SyntaxError) as e:
        raise InterpretError(f"{option} {text!r} is not a Python dict literal ({type(e).__name__}): pass e.g. "
                             "\"{'dropout': 0.0}\"") from None
    if not isinstance(value, dict):
        raise InterpretError(f"{option} {text!r} is not a dict: pass e.g. \"{{'dropout': 0.0}}\"")
    return value


def check_dataset_options(args):
    """Batching and sharding options of fairseq's dataset group."""
    check_range(getattr(args, "batch_size", None), "--batch-size", 1)
    check_range(getattr(args, "max_tokens", None), "--max-tokens", 1)
    check_range(getattr(args, "num_workers", None), "--num-workers", 0)
    num_shards, shard_id = getattr(args, "num_shards", 1), getattr(args, "shard_id", 0)
    check_range(num_shards, "--num-shards", 1)
    if shard_id is not None and not 0 <= shard_id < num_shards:
        raise InterpretError(f"--shard-id {shard_id} is out of range for --num-shards {num_shards}: pass a shard id "
                             f"from 0 to {num_shards - 1}")


def check_post_process(value, option="--post-process"):
    """Refuse a ``--post-process`` value fairseq's ``post_process`` does not know (it would fail on the first
    sentence)."""
    from fairseq.data import data_utils

    if value is None:
        return
    try:
        data_utils.post_process("a b", value)
    except NotImplementedError:
        raise InterpretError(f"{option} {value!r} is not a fairseq post-processing: pass sentencepiece, "
                             "subword_nmt, wordpiece, letter, silence, _EOW or none") from None


def check_generation_options(args, one_hypothesis=True):
    """Options of fairseq's generation group: ranges, and options a command that decodes with
    ``task.build_generator`` + ``task.inference_step`` cannot honour (they need fairseq-generate's own loop).

    ``one_hypothesis``: the command uses the best hypothesis only (``--nbest`` must be 1)."""
    check_range(args.beam, "--beam", 1)
    check_range(args.nbest, "--nbest", 1)
    if one_hypothesis and args.nbest != 1:
        raise InterpretError(f"--nbest {args.nbest}: this command uses the best hypothesis only; drop --nbest")
    if args.nbest > args.beam:
        raise InterpretError(f"--nbest {args.nbest} is more than --beam {args.beam}: pass --nbest <= --beam")
    check_range(args.max_len_a, "--max-len-a", 0)
    check_range(args.max_len_b, "--max-len-b", 0)
    if args.max_len_a == 0 and args.max_len_b < 1:
        raise InterpretError("--max-len-a 0 --max-len-b 0 allow no target token: the longest hypothesis is "
                             "max-len-a * source length + max-len-b tokens; pass --max-len-b >= 1")
    check_range(args.min_len, "--min-len", 0)
    check_range(args.no_repeat_ngram_size, "--no-repeat-ngram-size", 0)
    check_range(args.temperature, "--temperature", 0, strict_minimum=True)
    check_range(args.sampling_topk, "--sampling-topk", 1, special=(-1,))
    check_range(args.sampling_topp, "--sampling-topp", 0, 1, special=(-1, -1.0), strict_minimum=True)
    check_range(args.diverse_beam_groups, "--diverse-beam-groups", 1, special=(-1,))
    if args.diverse_beam_groups > 1 and args.beam % args.diverse_beam_groups:
        raise InterpretError(f"--beam {args.beam} is not a multiple of --diverse-beam-groups "
                             f"{args.diverse_beam_groups}: pass a beam that is")
    refused = [
        (args.score_reference, "--score-reference", "score references with --attribute-target reference, or use "
                                                    "fairseq-generate"),
        (args.prefix_size and args.prefix_size > 0, f"--prefix-size {args.prefix_size}",
         "this command decodes without forced target prefixes; drop it"),
        (args.constraints, "--constraints", "this command reads no constraints; drop it"),
        (args.lm_path, "--lm-path", "this command decodes without language-model fusion; drop it"),
        (args.replace_unk is not None, "--replace-unk", "this command attributes the model's own tokens; drop it"),
        (args.print_alignment is not None, "--print-alignment", "use fairseq-generate to print alignments"),
        (getattr(args, "fp16", False) or getattr(args, "bf16", False), "--fp16/--bf16",
         "this command runs in fp32; drop it"),
        (getattr(args, "distributed_world_size", 1) > 1, f"--distributed-world-size "
                                                         f"{getattr(args, 'distributed_world_size', 1)}",
         "this command runs in one process; split the work with --num-shards N --shard-id I instead"),
    ]
    for given, option, fix in refused:
        if given:
            raise InterpretError(f"{option} is not supported here: {fix}")
    check_dataset_options(args)
    parse_model_overrides(getattr(args, "model_overrides", "{}"))
    check_post_process(getattr(args, "post_process", None))


def rename_options(argv, renamed, command):
    """``argv`` with the earlier names of options replaced by the project's one vocabulary (fairseq's names where
    fairseq has one: ``--gen-subset``, ``--results-path``, ``--beam``, ...). ``renamed`` maps an old name to the
    new one for this command; each use logs one warning naming the new option. ``--old=value`` is handled too."""
    import logging

    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if name in renamed:
            logging.getLogger(command).warning(f"{name} is now called {renamed[name]}; the old name will be removed")
            arg = renamed[name] + sep + value
        out.append(arg)
    return out


def defaults_help_formatter():
    """argparse's help formatter class that adds ``(default: ...)`` to every option whose help does not state its
    default (required options, flags, options without a default and hidden ones excepted)."""
    import argparse

    class DefaultsShown(argparse.HelpFormatter):
        def _get_help_string(self, action):
            text = action.help or ""
            if (not action.option_strings or text is argparse.SUPPRESS or "default" in text.lower()
                    or action.required or action.default is None or action.default is False
                    or action.default is argparse.SUPPRESS):
                return text
            return f"{text} (default: %(default)s)"

    return DefaultsShown


#: the destinations of :func:`add_progress_arguments`: how a run shows its progress, never a setting of its results
PROGRESS_OPTIONS = ("log_format", "log_interval", "no_progress_bar")


def add_progress_arguments(parser, log_interval=100):
    """fairseq's progress-bar options (``--log-format``, ``--log-interval``, ``--no-progress-bar``), read by
    :func:`~fairseq_interp.common.batches.progress`; ``log_interval``: the default of ``--log-interval`` (1 for
    a loop over a few long items, e.g. a driver's runs)."""
    parser.add_argument("--log-format", choices=("json", "none", "simple", "tqdm"), default=None,
                        help="progress format (default: tqdm on a terminal, else simple)")
    parser.add_argument("--log-interval", type=int, default=log_interval,
                        help="log progress every N items with the simple/json formats (default: %(default)s)")
    parser.add_argument("--no-progress-bar", action="store_true", help="no tqdm bar (fairseq's simple format)")


def add_split_arguments(parser, batch_size, what="batch", shards_help=None):
    """The batching, sharding and progress options of a command that reads a split through
    :func:`~fairseq_interp.common.batches.split_batches` (fairseq's names). ``shards_help``: what ``--num-shards``
    does in this command (e.g. why it is refused above 1)."""
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sentences per {what} (default: {batch_size} unless --max-tokens is given)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help=f"tokens per {what}, fairseq's batching by length (default: no limit)")
    parser.add_argument("--num-shards", type=int, default=1,
                        help=(shards_help or "split the sentences into N shards") + " (default: %(default)s)")
    parser.add_argument("--shard-id", type=int, default=0, help="the shard this run reads, 0 .. N-1 (default: "
                                                                "%(default)s)")
    parser.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                        help="skip sentences longer than the model's positions (default: refuse them)")
    add_progress_arguments(parser)
