"""Fertility classes of source words vs word importance (He et al. 2019, §5.2, Table 4).

Fertility φ(e) of a source word *type* e = the number of target words that the IBM Model 1 Viterbi alignment
(:meth:`.ibm1.IBM1.align`, Brown et al. 1993) links to an occurrence of e, **averaged over e's occurrences in the
training corpus**. Per type, not per occurrence: He et al.'s class (0, 1) ("sometimes translated, sometimes
dropped") cannot hold the integer count of one occurrence. Classes of the average::

    ≥2: φ ≥ 2      [1,2): 1 ≤ φ < 2 (the paper's "1")      (0,1): 0 < φ < 1      0: φ = 0 (never aligned)
    unseen: the word does not occur in the training source text (no fertility)

Source words are those of the attribution records (subwords merged, ``</s>`` excluded), so the training text must
be split the same way: ``prepare_data.py``'s Moses-tokenized ``tok/train.*``, or its ``spm/train.*`` with
``scheme="sentencepiece"`` (merged exactly as the records are). Count and importance shares per class:
:mod:`.shares`.
"""

import collections
import os

from ...common.errors import InterpretError
from ...common.ibm1 import IBM1
from ...common.subwords import group_subwords
from . import shares

CLASSES = ("≥2", "[1,2)", "(0,1)", "0", "unseen")


def read_parallel(src_path, tgt_path, scheme="none"):
    """Sentence pairs ``[(source words, target words)]`` of two line-aligned text files; subwords of ``scheme``
    (see :mod:`.words`) merged into words. Pairs with an empty side are left out."""
    sides = []
    for path in (src_path, tgt_path):
        if not os.path.isfile(path):
            raise InterpretError(f"training text {path} not found: pass the training source and target text "
                                 "tokenized like the records' words (prepare_data.py writes DATA/tok/train.LANG)")
        with open(path, encoding="utf-8") as f:
            sides.append([group_subwords(line.split(), scheme)[0] for line in f])
    if len(sides[0]) != len(sides[1]):
        raise InterpretError(f"{src_path} has {len(sides[0])} lines but {tgt_path} has {len(sides[1])}: pass the "
                             "two sides of the same parallel corpus")
    pairs = [(s, t) for s, t in zip(*sides) if s and t]
    if not pairs:
        raise InterpretError(f"{src_path} and {tgt_path} hold no sentence pair: pass a non-empty training corpus")
    return pairs


def fertilities(model, pairs):
    """φ(e) per source word type: mean number of Viterbi links per occurrence over ``pairs``."""
    links, occurrences = collections.Counter(), collections.Counter()
    for src, tgt in pairs:
        occurrences.update(src)
        links.update(src[i - 1] for i, _ in model.align(src, tgt))
    return {w: links[w] / n for w, n in occurrences.items()}


def fertility_class(phi):
    """The class of an average fertility (``None``: unseen word)."""
    if phi is None:
        return "unseen"
    if phi >= 2:
        return "≥2"
    if phi >= 1:
        return "[1,2)"
    return "(0,1)" if phi > 0 else "0"


def train_fertilities(pairs, iterations=5, null=True):
    """IBM-1 trained by EM on ``pairs``, then φ(e) of every source word type from its Viterbi alignments."""
    return fertilities(IBM1(null=null).fit(pairs, iterations=iterations), pairs)


def fertility_distribution(records, phi, max_unseen=0.5):
    """Rows ``{"class", "words", "count_share", "importance_share", "relative_change"}`` in the order ``CLASSES``.

    ``phi``: word → average fertility (:func:`fertilities`). Refuses records whose words are mostly (more than
    ``max_unseen``) absent from ``phi``: the training text is then not tokenized like the records.
    """
    records = list(records)
    if not records:
        raise InterpretError("no attribution records: attribute some sentences with fairseq-interpret first")
    words = [w for r in records for w in shares.source_words(r)]
    unseen = sum(w not in phi for w in words)
    if words and unseen > max_unseen * len(words):
        raise InterpretError(f"{unseen} of the records' {len(words)} source words never occur in the training text: "
                             "pass the training text of the records' model, tokenized like their words")
    return shares.category_shares(records, lambda ws: [fertility_class(phi.get(w)) for w in ws], "class",
                                  order=CLASSES)


def markdown(rows):
    return shares.markdown(rows, "class", "fertility")
