"""One record per sentence for any ``--attribution`` method (what ``fairseq-interpret`` and the perturbation curves
share): the method's :class:`~.methods.AttributionResult` with the sentence's tokens, words and strings.

* matrix methods (``ig``, ``attention``): the token-level matrix (rows = source tokens, columns = target tokens) is
  merged to words, and word importance = softmax over source words of the row sums (He et al. 2019, §3);
* word-level methods (``erasure``, ``frequency``, ``content``, ``random``): word importance only (no matrix).

Two optional modes, for methods that attribute through the adapter (``attributes_adapter_inputs``): target-prefix
attribution (the run option ``attribute_target_prefix``) and contrastive attribution (``contrast``, per sentence);
see :meth:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter.attributing`.
"""

import contextlib

from ..common.errors import InterpretError
from .methods import method_class
from .records import build_record, build_word_record


class WordImportanceRunner:
    """Applies one attribution method to a sentence and builds its record.

    Args:
        name: a registered ``--attribution`` method (:data:`~.methods.METHOD_NAMES`).
        context: a :class:`~.context.MethodContext`; the method is built from it (and checks its inputs) here.
    """

    def __init__(self, name, context):
        self.name = name
        self.context = context
        self.method = method_class(name).from_context(context)
        self.target_prefix = bool(getattr(context.options, "attribute_target_prefix", False))
        if self.target_prefix:
            self._check_adapter_method("target-prefix")

    def _check_adapter_method(self, mode):
        if not getattr(self.method, "attributes_adapter_inputs", False):
            raise InterpretError(f"{mode} attribution needs a method that attributes through the model's inputs "
                                 f"(ig, saliency, input_x_gradient, deeplift, gradient_shap, occlusion, layer_ig), "
                                 f"not {self.name}")

    def importance_only(self):
        return self.method.word_level

    def record(self, sample_id, src, target, hyp=None, ref=None, contrast=None, **provenance):
        """The record of one sentence (see :mod:`.records`).

        ``contrast``: alternative target token ids y′ (EOS optional); the contrastive step n is the first position
        where y′ differs from ``target`` (the two agree before it, so y_<n is the context of both), and
        F_n = log P(y_n | y_<n, x) − log P(y′_n | y_<n, x).
        """
        ctx = self.context
        src_dict, tgt_dict, post_process = ctx.src_dict, ctx.tgt_dict, ctx.post_process
        src_strings = [src_dict[i] for i in src.tolist()]
        tgt_strings = [tgt_dict[i] for i in target.tolist()]
        strings = {"source": src_dict.string(src, post_process),
                   "translation": None if hyp is None else tgt_dict.string(hyp, post_process),
                   "reference": None if ref is None else tgt_dict.string(ref, post_process)}
        provenance = {**strings, **provenance}
        step = None
        if contrast is not None:
            self._check_adapter_method("contrastive")
            step = contrast_step(target, contrast)
        mode = (ctx.adapter.attributing(target, target_prefix=self.target_prefix, contrast=step)
                if self.target_prefix or step is not None else contextlib.nullcontext())
        with mode:
            result = self.method.attribute(src, target, sentence_id=sample_id, reference=strings["reference"])
        if result.contributions is not None:
            prefix = ([tgt_dict[i] for i in ctx.adapter.prefix_input_tokens(target).tolist()]
                      if self.target_prefix else None)
            return build_record(sample_id, src_strings, tgt_strings, result, ctx.scheme, prefix_tokens=prefix,
                                contrast=None if step is None else (step[0], tgt_dict[step[1]]), **provenance)
        return build_word_record(sample_id, src_strings, tgt_strings, result.word_importance, ctx.scheme,
                                 **provenance, **result.extras)


def contrast_step(target, alternative):
    """``(n, y′_n)``: the first position where the alternative target token ids differ from ``target`` (both
    1-d), or a one-line error when they do not differ."""
    target, alternative = target.tolist(), [int(t) for t in alternative.tolist()]
    for n, (y, y_alt) in enumerate(zip(target, alternative)):
        if y != y_alt:
            return n, y_alt
    raise InterpretError("the contrastive alternative does not differ from the attributed target where both have "
                         "tokens: give an alternative that changes at least one target token")
