"""Fertility classes of source words vs word importance (He et al. 2019, §5.2, Table 4).

**Per occurrence (default, the paper's Table 4).** Each source word *occurrence* of a record gets the class of its
links to the target words of the same sentence pair (He et al., Table 2 caption: "one-to-many (≥ 2), one-to-one
(1), many-to-one ((0, 1)), and null-aligned (0)")::

    ≥2     the word is linked to two or more target words                      (one-to-many)
    1      linked to one target word, and that target word to no other source word   (one-to-one)
    (0,1)  linked to one target word that other source words are linked to too     (many-to-one: fertility 1/k)
    0      linked to no target word                                            (null-aligned)

The paper names no aligner; links come from :mod:`.word_alignment` (IBM-1 in both directions, grow-diag-final-and
by default: many-to-one links need the target→source direction). IBM-1 is trained on the training corpus with the
records' own sentence pairs appended (so every word of them has a translation table entry). The target side is the
one the record attributes (``tgt_words``: the model's translation for ``--attribute-target hypothesis``, as the
paper does) or, with ``align_to="reference"``, the record's reference.

**Per type (option ``per-type``).** The earlier reading of this project: fertility φ(e) of a source word *type* =
the number of target words that the source→target IBM-1 Viterbi alignment links to an occurrence of e, averaged
over e's occurrences in the training corpus; classes of the average ``≥2``, ``[1,2)``, ``(0,1)``, ``0`` and
``unseen``. A word that is sometimes dropped then has a class (0,1) although no single occurrence is many-to-one,
so these classes do not line up with the paper's.

Source words are those of the attribution records (subwords merged, ``</s>`` excluded), so the training text must
be split the same way: ``prepare_data.py``'s Moses-tokenized ``tok/train.*``, or its ``spm/train.*`` with
``scheme="sentencepiece"``. Count and importance shares per class: :mod:`.shares`.
"""

import collections
import os

from ...common.errors import InterpretError
from ...common.ibm1 import IBM1
from ...common.subwords import group_subwords
from . import shares

#: the paper's classes, in the order of its Table 4
CLASSES = ("≥2", "1", "(0,1)", "0")
#: the classes of the per-type reading
TYPE_CLASSES = ("≥2", "[1,2)", "(0,1)", "0", "unseen")
READINGS = ("per-occurrence", "per-type")
ALIGN_TO = ("target", "reference")


def read_parallel(src_path, tgt_path, scheme="none"):
    """Sentence pairs ``[(source words, target words)]`` of two line-aligned text files; subwords of ``scheme``
    (see :mod:`fairseq_interp.common.subwords`) merged into words. Pairs with an empty side are left out."""
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


# ---------------------------------------------------------------------------------------------- per occurrence

def occurrence_classes(n_source, links):
    """The class (:data:`CLASSES`) of each of ``n_source`` source words from 0-based ``(i, j)`` links."""
    targets, sources = collections.defaultdict(set), collections.defaultdict(set)
    for i, j in links:
        if not 0 <= i < n_source:
            raise InterpretError(f"link ({i}, {j}) points outside the {n_source} source words")
        targets[i].add(j)
        sources[j].add(i)
    classes = []
    for i in range(n_source):
        if not targets[i]:
            classes.append("0")
        elif len(targets[i]) >= 2:
            classes.append("≥2")
        else:
            (j,) = targets[i]
            classes.append("1" if len(sources[j]) == 1 else "(0,1)")
    return classes


def occurrence_fertilities(n_source, links):
    """Fertility value of each source word: Σ over its target words j of 1 / (number of source words linked to j)
    (≥ 2 for one-to-many, 1 for one-to-one, 1/k for many-to-one, 0 for null-aligned)."""
    sources = collections.Counter(j for _, j in set(links))
    values = [0.0] * n_source
    for i, j in set(links):
        values[i] += 1.0 / sources[j]
    return values


def record_target_words(record, align_to="target"):
    """The target words a record's source words are aligned to: the attributed ``tgt_words`` (``</s>`` dropped)
    or the ``reference`` string's words."""
    if align_to == "reference":
        if not record.get("reference"):
            raise InterpretError(f"record {record['id']} has no reference: align to the attributed target "
                                 "(--align-to target) or attribute a split with references")
        return record["reference"].split()
    words = record["tgt_words"]
    return words[:-1] if words[-1:] == ["</s>"] else list(words)


def record_pairs(records, align_to="target"):
    """``[(source words, target words)]`` of the records (``</s>`` excluded on both sides)."""
    return [(shares.source_words(r), record_target_words(r, align_to)) for r in records]


def occurrence_distribution(records, aligner, align_to="target"):
    """Table 4 rows (:mod:`.shares`) of the records, classes per occurrence from ``aligner.align(src, tgt)``
    (0-based links, e.g. :class:`.word_alignment.BidirectionalIBM1`), in the order :data:`CLASSES`."""
    records = _checked(records)
    by_id = {id(r): occurrence_classes(len(src), aligner.align(src, tgt))
             for r, (src, tgt) in zip(records, record_pairs(records, align_to))}
    return shares.category_shares(records, lambda r: by_id[id(r)], "class", order=CLASSES, by_record=True)


def train_aligner(train_pairs, records, align_to="target", iterations=5, null=True,
                  heuristic="grow-diag-final-and", progress=None):
    """Bidirectional IBM-1 on the training pairs plus the records' own pairs (``progress``: see
    :class:`.word_alignment.BidirectionalIBM1`)."""
    from .word_alignment import BidirectionalIBM1

    return BidirectionalIBM1(list(train_pairs) + record_pairs(records, align_to), iterations=iterations, null=null,
                             heuristic=heuristic, progress=progress)


# ---------------------------------------------------------------------------------------------- per type (option)

def fertilities(model, pairs):
    """φ(e) per source word type: mean number of source→target Viterbi links per occurrence over ``pairs``."""
    links, occurrences = collections.Counter(), collections.Counter()
    for src, tgt in pairs:
        occurrences.update(src)
        links.update(src[i - 1] for i, _ in model.align(src, tgt))
    return {w: links[w] / n for w, n in occurrences.items()}


def fertility_class(phi):
    """The per-type class of an average fertility (``None``: unseen word)."""
    if phi is None:
        return "unseen"
    if phi >= 2:
        return "≥2"
    if phi >= 1:
        return "[1,2)"
    return "(0,1)" if phi > 0 else "0"


def train_fertilities(pairs, iterations=5, null=True, progress=None):
    """IBM-1 trained by EM on ``pairs``, then φ(e) of every source word type from its Viterbi alignments
    (``progress``: a wrapper of the EM loop, as :meth:`~fairseq_interp.common.ibm1.IBM1.fit` takes it)."""
    return fertilities(IBM1(null=null).fit(pairs, iterations=iterations, progress=progress), pairs)


def fertility_distribution(records, phi, max_unseen=0.5):
    """Per-type rows ``{"class", "words", "count_share", "importance_share", "relative_change"}`` in the order
    :data:`TYPE_CLASSES`.

    ``phi``: word → average fertility (:func:`fertilities`). Refuses records whose words are mostly (more than
    ``max_unseen``) absent from ``phi``: the training text is then not tokenized like the records.
    """
    records = _checked(records)
    check_vocabulary(records, phi, max_unseen)
    return shares.category_shares(records, lambda ws: [fertility_class(phi.get(w)) for w in ws], "class",
                                  order=TYPE_CLASSES)


def _checked(records):
    records = list(records)
    if not records:
        raise InterpretError("no attribution records: attribute some sentences with fairseq-interpret first")
    return records


def check_vocabulary(records, vocabulary, max_unseen=0.5):
    """Refuse records whose source words mostly (more than ``max_unseen``) are not in ``vocabulary`` (the training
    source words): the training text is then not tokenized like the records, or belongs to another model."""
    words = [w for r in records for w in shares.source_words(r)]
    unseen = sum(w not in vocabulary for w in words)
    if words and unseen > max_unseen * len(words):
        raise InterpretError(f"{unseen} of the records' {len(words)} source words never occur in the training text: "
                             "pass the training text of the records' model, tokenized like their words")


def markdown(rows):
    return shares.markdown(rows, "class", "fertility")
