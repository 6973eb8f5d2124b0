"""Erasure baseline (He et al. 2019, §4.1; supervised: needs the reference).

Every source word in turn is erased (the encoder token embeddings of all its subwords set to zero, the mask
perturbation of §4.2), the sentence is re-translated with the same generator, and the word's importance is the
normalized drop of sentence BLEU (sacrebleu, against the reference)::

    importance_i = (BLEU(y) − BLEU(y_{-i})) / BLEU(y)      (BLEU(y) − BLEU(y_{-i}) / 100 when BLEU(y) = 0)

with y the translation of the intact source (re-translated in the same batch) and y_{-i} that of the source
without word i. The values can be negative (erasing a word may help).
"""

import torch

from ...common.errors import InterpretError
from .base import AttributionMethod, AttributionResult, register_method


@register_method("erasure")
class ErasureAttribution(AttributionMethod):
    """Word importance by erasing one source word at a time and re-translating.

    Args:
        translator: a :class:`~fairseq_interp.common.translation.Translator`.
        to_text: callable target ids → the string scored against the reference (e.g. ``tgt_dict.string`` with
            the run's ``--post-process``).
        source_words: a :class:`~.base.SourceWords` (the words of a sentence; needed by :meth:`attribute`).
    """

    word_level = True

    def __init__(self, translator, to_text, source_words=None):
        self.translator = translator
        self.to_text = to_text
        self.source_words = source_words

    @classmethod
    def from_context(cls, context):
        context.require_references("erasure")
        return cls(context.translator, context.target_string, context.source_words())

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        """Word importance of every source word; the record also gets ``erasure_bleu`` (the intact source's
        sentence BLEU) and ``erasure_bleus`` (one per erased word)."""
        _, token_to_word = self.source_words(src_tokens)
        importance, intact, erased = self.erase_words(src_tokens, token_to_word, reference)
        return AttributionResult(None, word_importance=importance,
                                 extras={"erasure_bleu": intact, "erasure_bleus": erased})

    def erase_words(self, src_tokens, token_to_word, reference):
        """Importance of each source word (word indices of ``token_to_word``, ``</s>`` excluded).

        Args:
            src_tokens: (L,) source ids, EOS last. token_to_word: word index of every token (``</s>`` = last word).
            reference: the reference translation, post-processed like ``to_text``'s output.
        Returns:
            ``(importance, bleu_intact, bleus_erased)``.
        """
        import sacrebleu

        if reference is None:
            raise InterpretError("erasure needs references: use a split with target text (--gen-subset test/valid)")
        n_words = token_to_word[-1]  # the last word is </s>
        sources, masks = [src_tokens], [torch.zeros(src_tokens.numel(), dtype=torch.bool)]
        for w in range(n_words):
            sources.append(src_tokens)
            masks.append(torch.tensor([i == w for i in token_to_word], dtype=torch.bool))
        hypos = self.translator.translate(sources, masks)
        bleus = [sacrebleu.sentence_bleu(self.to_text(h), [reference]).score for h in hypos]
        intact, erased = bleus[0], bleus[1:]
        scale = intact if intact > 0 else 100.0
        return [(intact - b) / scale for b in erased], intact, erased
