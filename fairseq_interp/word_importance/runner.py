"""One record per sentence for any ``--attribution`` method (what ``fairseq-interpret`` and the perturbation curves
share): the method's :class:`~.methods.AttributionResult` with the sentence's tokens, words and strings.

* matrix methods (``ig``, ``attention``): the token-level matrix (rows = source tokens, columns = target tokens) is
  merged to words, and word importance = softmax over source words of the row sums (He et al. 2019, §3);
* word-level methods (``erasure``, ``frequency``, ``content``, ``random``): word importance only (no matrix).
"""

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

    def importance_only(self):
        return self.method.word_level

    def record(self, sample_id, src, target, hyp=None, ref=None, **provenance):
        """The record of one sentence (see :mod:`.records`)."""
        ctx = self.context
        src_dict, tgt_dict, post_process = ctx.src_dict, ctx.tgt_dict, ctx.post_process
        src_strings = [src_dict[i] for i in src.tolist()]
        tgt_strings = [tgt_dict[i] for i in target.tolist()]
        strings = {"source": src_dict.string(src, post_process),
                   "translation": None if hyp is None else tgt_dict.string(hyp, post_process),
                   "reference": None if ref is None else tgt_dict.string(ref, post_process)}
        provenance = {**strings, **provenance}
        result = self.method.attribute(src, target, sentence_id=sample_id, reference=strings["reference"])
        if result.contributions is not None:
            return build_record(sample_id, src_strings, tgt_strings, result, ctx.scheme, **provenance)
        return build_word_record(sample_id, src_strings, tgt_strings, result.word_importance, ctx.scheme,
                                 **provenance, **result.extras)
