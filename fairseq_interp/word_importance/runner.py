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
            self._check_one_at_a_time("--attribute-target-prefix")

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
        strings, provenance = self._provenance(src, hyp, ref, provenance)
        step = None
        if contrast is not None:
            self._check_adapter_method("contrastive")
            step = contrast_step(target, contrast)
            self._check_one_at_a_time("--contrast")
        mode = (self.context.adapter.attributing(target, target_prefix=self.target_prefix, contrast=step)
                if self.target_prefix or step is not None else contextlib.nullcontext())
        with mode:
            result = self.method.attribute(src, target, sentence_id=sample_id, reference=strings["reference"])
        return self._build(sample_id, src, target, result, provenance, step)

    def sentences_per_pass(self):
        """How many sentences share one attribution pass (``--ig-sentences-per-pass``; 1 for methods that
        attribute one sentence at a time)."""
        if not hasattr(self.method, "attribute_sentences"):
            return 1
        return max(1, int(getattr(self.context.options, "ig_sentences_per_pass", 1) or 1))

    def _check_one_at_a_time(self, mode):
        """Error-controlled IG and several sentences per pass score plain targets (not target-prefix or
        contrastive ones)."""
        if getattr(self.method, "tolerance", None) or self.sentences_per_pass() > 1:
            raise InterpretError(f"{mode} needs fixed-step IG one sentence at a time: drop --ig-tolerance and "
                                 "--ig-sentences-per-pass")

    def records(self, sentences, **provenance):
        """The records of several sentences ``[(sample_id, src, target, hyp, ref, contrast), ...]`` (``contrast``
        optional, see :meth:`record`), yielded in that order.

        With one sentence per pass each record is yielded as soon as it is made (:meth:`record`). Otherwise the
        sentences are sorted by target and source length (as fairseq's batches are) and attributed in groups of
        :meth:`sentences_per_pass` (padding-aware, one pass per group: :meth:`~.methods.integrated_gradients.
        IntegratedGradients.attribute_sentences`); the records equal those made one sentence at a time up to
        floating-point summation order.
        """
        per_pass = self.sentences_per_pass()
        if per_pass == 1:
            for sentence in sentences:
                yield self.record(*sentence, **provenance)
            return
        if any(len(s) > 5 and s[5] is not None for s in sentences):
            self._check_one_at_a_time("--contrast")
        order = sorted(range(len(sentences)), key=lambda k: (len(sentences[k][2]), len(sentences[k][1])))
        results = {}
        for start in range(0, len(order), per_pass):
            group = order[start:start + per_pass]
            attributed = self.method.attribute_sentences([(sentences[k][1], sentences[k][2]) for k in group])
            results.update(zip(group, attributed))
        for k, (sample_id, src, target, hyp, ref, *_) in enumerate(sentences):
            _, fields = self._provenance(src, hyp, ref, provenance)
            yield self._build(sample_id, src, target, results.pop(k), fields)

    def _provenance(self, src, hyp, ref, provenance):
        ctx = self.context
        src_dict, tgt_dict, post_process = ctx.src_dict, ctx.tgt_dict, ctx.post_process
        strings = {"source": src_dict.string(src, post_process),
                   "translation": None if hyp is None else tgt_dict.string(hyp, post_process),
                   "reference": None if ref is None else tgt_dict.string(ref, post_process)}
        return strings, {**strings, **provenance}

    def _build(self, sample_id, src, target, result, provenance, step=None):
        ctx = self.context
        tgt_dict = ctx.tgt_dict
        src_strings = [ctx.src_dict[i] for i in src.tolist()]
        tgt_strings = [tgt_dict[i] for i in target.tolist()]
        fields = {**provenance, **result.extras}  # what the method states of its own result wins (e.g. its rule)
        if result.contributions is not None:
            prefix = ([tgt_dict[i] for i in ctx.adapter.prefix_input_tokens(target).tolist()]
                      if self.target_prefix else None)
            return build_record(sample_id, src_strings, tgt_strings, result, ctx.scheme, prefix_tokens=prefix,
                                contrast=None if step is None else (step[0], tgt_dict[step[1]]), **fields)
        return build_word_record(sample_id, src_strings, tgt_strings, result.word_importance, ctx.scheme, **fields)


def contrast_step(target, alternative):
    """``(n, y′_n)``: the first position where the alternative target token ids differ from ``target`` (both
    1-d), or a one-line error when they do not differ."""
    target, alternative = target.tolist(), [int(t) for t in alternative.tolist()]
    for n, (y, y_alt) in enumerate(zip(target, alternative)):
        if y != y_alt:
            return n, y_alt
    raise InterpretError("the contrastive alternative does not differ from the attributed target where both have "
                         "tokens: give an alternative that changes at least one target token")
