"""``fairseq-interpret`` options of raw-text input, target-prefix and contrastive attribution and the Captum methods
(in the same "Attribution" group as the others; defaults of the methods' options: ``CAPTUM_OPTION_DEFAULTS``)."""

from dataclasses import dataclass, field
from typing import Optional


def input_and_method_config_class():
    """The options as a FairseqDataclass (built lazily: fairseq imports are slow)."""
    from fairseq.dataclass import ChoiceEnum, FairseqDataclass

    from .methods import CAPTUM_OPTION_DEFAULTS as D
    from .methods.layer_integrated_gradients import BASELINE_TOKENS

    @dataclass
    class InputAndMethodConfig(FairseqDataclass):
        attribute_target_prefix: bool = field(
            default=False, metadata={"help": "also attribute to the previous target tokens (the decoder's input "
                                             "embeddings): records gain prefix_* matrices; completeness over source "
                                             "and prefix together"})
        contrast: Optional[str] = field(
            default=None, metadata={"help": "contrastive attribution: one alternative target y' per sentence (line "
                                            "i for sentence id i); at the first token where y' differs, F = "
                                            "log P(y) - log P(y')"})
        gradient_shap_samples: int = field(
            default=D["gradient_shap_samples"], metadata={"help": "gradient_shap: random points per target token"})
        gradient_shap_stdev: float = field(
            default=D["gradient_shap_stdev"], metadata={"help": "gradient_shap: Gaussian noise on the input"})
        occlusion_window: int = field(
            default=D["occlusion_window"], metadata={"help": "occlusion: source tokens zeroed at once (1 = "
                                                             "feature ablation of single tokens)"})
        layer_ig_baseline: ChoiceEnum(list(BASELINE_TOKENS)) = field(
            default=D["layer_ig_baseline"], metadata={"help": "layer_ig: baseline token at every source position "
                                                              "(pad: zero unless the table is tied to the output)"})

    return InputAndMethodConfig


def add_input_and_method_options(group):
    """Add the options to ``fairseq-interpret``'s attribution group. ``--input`` is added by hand with the
    destination ``input_file``: fairseq's own config has an ``input`` (``fairseq-interactive``'s, default ``-``), which
    the namespace must not set."""
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    group.add_argument("--input", dest="input_file", metavar="FILE", default=None,
                       help="attribute raw sentences from this file (- = standard input), one per line or "
                            "SOURCE<TAB>REFERENCE, encoded like fairseq-interactive with --tokenizer/--bpe; default: "
                            "the binarized --gen-subset")
    gen_parser_from_dataclass(group, input_and_method_config_class()())


class _EarlierName:
    """argparse action of an option's earlier name: stores into the new option's destination, warning once (the
    warning of :func:`~fairseq_interp.common.options.rename_options`)."""

    @staticmethod
    def make(new, command, flag):
        import argparse

        from ..common.options import rename_options

        class EarlierName(argparse.Action):
            def __call__(self, parser, namespace, values, option_string=None):
                from ..common.cli import configure_logging

                configure_logging()  # parsing comes before the command's own logging setup
                rename_options([option_string], {option_string: new}, command)
                setattr(namespace, self.dest, True if flag else values)

        return EarlierName


def add_renamed_argument(parser, new, earlier, command, **kwargs):
    """``parser.add_argument(new, **kwargs)`` plus the hidden earlier names ``earlier`` (same destination; each use
    warns and names ``new``). A required option is checked by the command, not by argparse, so that an earlier name
    satisfies it."""
    import argparse

    action = parser.add_argument(new, **kwargs)
    flag = kwargs.get("action") in ("store_true", "store_false")
    for name in earlier:
        parser.add_argument(name, dest=action.dest, help=argparse.SUPPRESS, nargs=0 if flag else None,
                            default=argparse.SUPPRESS, action=_EarlierName.make(new, command, flag))
    return action


def add_progress_arguments(parser):
    """fairseq's progress-bar options (``--log-format``, ``--log-interval``, ``--no-progress-bar``), read by
    :func:`~fairseq_interp.common.batches.progress`."""
    parser.add_argument("--log-format", choices=("json", "none", "simple", "tqdm"), default=None,
                        help="log format of the progress bar (default: tqdm on a terminal, else simple)")
    parser.add_argument("--log-interval", type=int, default=100,
                        help="log progress every N items (simple/json formats)")
    parser.add_argument("--no-progress-bar", action="store_true", help="disable the tqdm progress bar")


def add_split_arguments(parser, batch_size):
    """The batching and sharding options of a command that reads a split through
    :func:`~fairseq_interp.common.batches.split_batches` (fairseq's names)."""
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sentences per batch (default: {batch_size} unless --max-tokens is given)")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per batch (default: no limit)")
    parser.add_argument("--num-shards", type=int, default=1, help="split the sentences into N shards")
    parser.add_argument("--shard-id", type=int, default=0, help="the shard this run reads (0 .. N-1)")
    parser.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                        help="skip sentences longer than the model's positions instead of stopping")


def defaults_help_formatter():
    """argparse's formatter that adds ``(default: ...)`` to every option whose help does not state its default
    (options without a default, flags and hidden options excepted)."""
    import argparse

    class DefaultsHelpFormatter(argparse.HelpFormatter):
        def _get_help_string(self, action):
            text = action.help or ""
            if (not action.option_strings or "default" in text.lower() or action.default is None
                    or action.default is False or action.default is argparse.SUPPRESS or text is argparse.SUPPRESS):
                return text
            return f"{text} (default: %(default)s)"

    return DefaultsHelpFormatter
