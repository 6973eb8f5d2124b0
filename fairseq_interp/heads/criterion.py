"""``label_smoothed_cross_entropy_l0``: label-smoothed cross-entropy plus λ times the relaxed L0 norm of the
head gates (Voita et al. 2019, eq. 8): L = L_xent + λ · L_C, L_C = Σ_i (1 − P(g_i = 0)).

fairseq divides the summed loss by ``sample_size`` before the update, so the penalty is added as
λ · L_C · sample_size: per token the objective is exactly L_xent + λ · L_C. The model supplies L_C through
``l0_penalty()`` (``transformer_gated_heads``). A model without any gate (a plain ``transformer``, or
``--gate-heads none``) is refused with one line: the penalty would be 0 and nothing would be pruned.

Logged through fairseq's ``metrics`` (so they reach ``--tensorboard-logdir`` and ``--wandb-project``):
``l0_penalty``, the expected L0 norm L_C itself (unweighted); per attention type (enc/dec/cross) the expected open
heads Σ(1 − P(g=0)), the hard-open heads (the deterministic evaluation gates), fractional heads and the total; and
per head its open probability 1 − P(g_i = 0) (its term of L_C) as ``p_open_<type>_l<layer>_h<head>``.
"""

import sys
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


class MissingGatesError(InterpretError):
    """The L0 criterion was given a model without head gates."""


def _report_missing_gates(previous):
    """``sys.excepthook`` for training processes that use the L0 criterion: an uncaught :class:`MissingGatesError`
    (raised inside fairseq-train's loop) becomes one line ``<command>: error: ...`` and exit code 2."""

    def hook(kind, error, traceback):
        if isinstance(error, MissingGatesError):
            import os

            print(f"{os.path.basename(sys.argv[0]) or 'fairseq-train'}: error: {error}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)  # an exception hook cannot set the exit code otherwise
        previous(kind, error, traceback)

    hook.reports_missing_gates = True
    return hook


def _gated_model(model):
    inner = unwrap(model)
    if not hasattr(inner, "l0_penalty"):
        raise MissingGatesError(
            f"criterion label_smoothed_cross_entropy_l0 needs a model with head gates, got {type(inner).__name__}: "
            "train with --arch transformer_gated_heads (or one of its sizes)")
    if not any(g is not None for gates in inner.head_gates().values() for g in gates):
        raise MissingGatesError(
            "criterion label_smoothed_cross_entropy_l0: the model has no head gates (--gate-heads none), so the L0 "
            "penalty is 0 and no head can be pruned: pass --gate-heads with the attention types to prune")
    return inner


def per_head_open_probabilities(model):
    """``{"p_open_<type>_l<layer>_h<head>": 1 − P(g = 0)}`` for every gated head (no gradient)."""
    import torch

    values = {}
    with torch.no_grad():
        for kind, gates in model.head_gates().items():
            for layer, gate in enumerate(gates):
                if gate is None:
                    continue
                for head, p in enumerate((1.0 - gate.prob_closed()).tolist()):
                    values[f"p_open_{SHORT[kind]}_l{layer}_h{head}"] = p
    return values


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
        if not getattr(sys.excepthook, "reports_missing_gates", False):
            sys.excepthook = _report_missing_gates(sys.excepthook)

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
        logging_output.update(per_head_open_probabilities(gated))
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        count = sum(log.get("l0_count", 0) for log in logging_outputs)
        if not count:
            return
        metrics.log_scalar("l0_penalty", sum(log.get("l0_penalty", 0.0) for log in logging_outputs) / count,
                           count, round=3)
        keys = sorted({k for log in logging_outputs for k in log if k.startswith(("heads_", "p_open_"))})
        for key in keys:
            value = sum(log.get(key, 0) for log in logging_outputs) / count
            metrics.log_scalar(key, value, count, round=2 if key.startswith("heads_") else 4)
