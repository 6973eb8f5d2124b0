"""Random baseline (He et al. 2019, §4.1): a seeded random order of the source words.

importance = a uniformly random permutation of the ranks 1..n, normalized to sum 1; the generator is seeded per
sentence with (seed, sentence id), so a record does not depend on which other sentences were attributed.
"""

import random

from .base import WordLevelMethod, register_method


def _rng(seed, sentence_id):
    return random.Random(f"{seed}:{sentence_id}")


def ranks_to_importance(ranks):
    """Ranks (1 = least important) → importance summing to 1."""
    total = sum(ranks)
    return [r / total for r in ranks] if total else []


@register_method("random")
class RandomBaseline(WordLevelMethod):
    """Random word importance.

    Args:
        seed: base seed (``--seed``).
        source_words: a :class:`~.base.SourceWords` (needed by :meth:`attribute`).
    """

    def __init__(self, seed=1, source_words=None):
        self.seed = seed
        self.source_words = source_words

    @classmethod
    def from_context(cls, context):
        return cls(seed=context.options.seed, source_words=context.source_words())

    def word_importance(self, src_words, sentence_id=0):
        """Importance of every word of ``src_words`` (without ``</s>``): a random permutation of ranks."""
        ranks = list(range(1, len(src_words) + 1))
        _rng(self.seed, sentence_id).shuffle(ranks)
        return ranks_to_importance(ranks)
