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
