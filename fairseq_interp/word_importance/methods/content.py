"""Content-word baseline (He et al. 2019, §4.1): nouns, verbs and adjectives first, in random order.

POS tags come from spaCy (universal POS: NOUN, PROPN, VERB, ADJ are content words) run on the record's source words
as given (no re-tokenization; :mod:`fairseq_interp.common.spacy_models`). Importance: content words take the ranks
above all other words, each group in a seeded random order (see :mod:`.random_baseline`), normalized to sum 1.
"""

from .base import WordLevelMethod, register_method
from .random_baseline import _rng, ranks_to_importance

CONTENT_POS = ("NOUN", "PROPN", "VERB", "ADJ")


@register_method("content")
class ContentBaseline(WordLevelMethod):
    """Content words (by POS) before the others, random order within each group.

    Args:
        tagger: a callable words → universal POS tags (e.g. :class:`~fairseq_interp.common.spacy_models.PosTagger`).
        seed: base seed; the order is seeded per sentence id.
        source_words: a :class:`~.base.SourceWords` (needed by :meth:`attribute`).
    """

    def __init__(self, tagger, seed=1, source_words=None):
        self.tagger = tagger
        self.seed = seed
        self.source_words = source_words

    @classmethod
    def from_context(cls, context):
        return cls(context.tagger, seed=context.options.seed,
                   source_words=context.source_words())

    def word_importance(self, src_words, sentence_id=0):
        tags = self.tagger(src_words)
        content = [i for i, t in enumerate(tags) if t in CONTENT_POS]
        other = [i for i, t in enumerate(tags) if t not in CONTENT_POS]
        rng = _rng(self.seed, sentence_id)
        rng.shuffle(content)
        rng.shuffle(other)
        ranks = [0] * len(src_words)
        # least important first: other words get ranks 1..len(other), content words the ranks above
        for rank, i in enumerate(other + content, 1):
            ranks[i] = rank
        return ranks_to_importance(ranks)
