"""Frequency baseline (He et al. 2019, §4.1): source words ranked by their training-corpus frequency.

Counts come from a training text of the source side, tokenized like the records' words (``prepare_data.py``
writes it as ``DATA/tok/train.SRC``: Moses tokens). The ``ignore_top`` most frequent words (50 in the paper: mostly
punctuation and function words) are ranked last; every other word ranks by its count, the most frequent first,
unknown words (count 0) just above the ignored ones. Importance = the score normalized to sum 1::

    score(w) = 0 if w among the ignore_top most frequent, else count(w) + 1;  importance = score / Σ score

(uniform if every score is 0). Only the ranking matters for the perturbation curves.
"""

import collections
import os

from ...common.errors import InterpretError
from .base import WordLevelMethod, register_method


def count_words(path, max_lines=0):
    """Whitespace-token counts of a text file (the first ``max_lines`` lines if > 0)."""
    if not os.path.isfile(path):
        raise InterpretError(f"training text {path} not found: pass --frequency-text with the source side of the "
                             "training data, tokenized like the data (prepare_data.py writes DATA/tok/train.SRC)")
    counts = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if max_lines and n >= max_lines:
                break
            counts.update(line.split())
    if not counts:
        raise InterpretError(f"training text {path} is empty: pass the source side of the training data")
    return counts


@register_method("frequency")
class FrequencyBaseline(WordLevelMethod):
    """Word importance from corpus frequency.

    Args:
        counts: a mapping word → count in the training corpus (e.g. :func:`count_words`).
        ignore_top: how many of the most frequent words rank last (ties at the cut: by word, for determinism).
        source_words: a :class:`~.base.SourceWords` (needed by :meth:`attribute`).
    """

    def __init__(self, counts, ignore_top=50, source_words=None):
        if ignore_top < 0:
            raise InterpretError("--frequency-ignore-top must be >= 0")
        self.counts = counts
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self.ignored = {w for w, _ in ranked[:ignore_top]}
        self.source_words = source_words

    @classmethod
    def from_context(cls, context):
        return cls(context.word_counts, ignore_top=context.options.frequency_ignore_top,
                   source_words=context.source_words())

    def word_importance(self, src_words, sentence_id=0):
        """Importance of every word of ``src_words`` (a list of strings without ``</s>``), summing to 1."""
        scores = [0.0 if w in self.ignored else float(self.counts.get(w, 0) + 1) for w in src_words]
        total = sum(scores)
        if not scores:
            return []
        if total == 0:
            return [1.0 / len(scores)] * len(scores)
        return [s / total for s in scores]
