"""``label_smoothed_cross_entropy_l0``: label-smoothed cross-entropy plus λ times the relaxed L0 norm of the
head gates (Voita et al. 2019, eq. 8): L = L_xent + λ · L_C, L_C = Σ_i (1 − P(g_i = 0)).

fairseq divides the summed loss by ``sample_size`` before the update, so the penalty is added as
λ · L_C · sample_size: per token the objective is exactly L_xent + λ · L_C. The model supplies L_C through
``l0_penalty()`` (``transformer_gated_heads``). Logged per attention type (enc/dec/cross): expected open heads
Σ(1 − P(g=0)), hard-open heads (the deterministic evaluation gates) and fractional heads.
"""

from dataclasses import dataclass, field

from fairseq.criterions.label_smoothed_cross_entropy import (LabelSmoothedCrossEntropyCriterion,
                                                             LabelSmoothedCrossEntropyCriterionConfig)
from fairseq.logging import metrics

from ..common.errors import InterpretError
from ..common.wrappers import unwrap
from ..common.registry import register_criterion

SHORT = {"encoder_self": "enc", "decoder_self": "dec", "cross": "cross"}
STATS = ("expected_open", "hard_open", "fractional")


@dataclass
class LabelSmoothedCrossEntropyL0Config(LabelSmoothedCrossEntropyCriterionConfig):
    l0_lambda: float = field(default=0.0, metadata={
        "help": "weight λ of the L0 penalty on the head gates (Voita et al. 2019 use 0.01 to 0.1); must be >= 0"})


def _gated_model(model):
    inner = unwrap(model)
    if not hasattr(inner, "l0_penalty"):
        raise InterpretError(
            f"criterion label_smoothed_cross_entropy_l0 needs a model with head gates, got {type(inner).__name__}: "
            "train with --arch transformer_gated_heads (or one of its sizes)")
    return inner


@register_criterion("label_smoothed_cross_entropy_l0", dataclass=LabelSmoothedCrossEntropyL0Config)
class LabelSmoothedCrossEntropyL0Criterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0, report_accuracy=False,
                 l0_lambda=0.0):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size=ignore_prefix_size,
                         report_accuracy=report_accuracy)
        if l0_lambda is None or l0_lambda < 0:
            raise InterpretError(f"--l0-lambda must be >= 0, got {l0_lambda}: pass a non-negative weight "
                                 "(0 trains the gates without pressure to close)")
        self.l0_lambda = float(l0_lambda)

    def forward(self, model, sample, reduce=True):
        gated = _gated_model(model)
        loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        penalty = gated.l0_penalty()
        loss = loss + self.l0_lambda * penalty * sample_size
        logging_output["loss"] = loss.data
        logging_output["l0_penalty"] = float(penalty.detach())
        logging_output["l0_count"] = 1  # summed over workers/steps: the divisor of the gate statistics
        for kind, stats in gated.gate_summary().items():
            for stat in STATS:
                logging_output[f"heads_{SHORT[kind]}_{stat}"] = stats[stat]
            logging_output[f"heads_{SHORT[kind]}_total"] = stats["total"]
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        count = sum(log.get("l0_count", 0) for log in logging_outputs)
        if not count:
            return
        metrics.log_scalar("l0_penalty", sum(log.get("l0_penalty", 0.0) for log in logging_outputs) / count,
                           count, round=3)
        keys = sorted({k for log in logging_outputs for k in log if k.startswith("heads_")})
        for key in keys:
            value = sum(log.get(key, 0) for log in logging_outputs) / count
            metrics.log_scalar(key, value, count, round=2)
