"""Under-translation detection from word importance (He et al. 2019, §5.1, Table 1).

The least important source words of a sentence are predicted to be under-translated: for a ratio p (5/10/15 %),
the ``ceil(p · n)`` words of lowest importance among the sentence's n source words (``</s>`` excluded; ties broken
by position). Predictions are pooled over all annotated sentences and compared with the annotations:
precision = |pred ∩ gold| / |pred|, recall = |pred ∩ gold| / |gold|, F1 = 2PR / (P + R) (micro average).

Annotation file (UTF-8 text), one line per annotated sentence::

    # comment lines and blank lines are ignored
    <sentence id><TAB><0-based source word indices, space separated>

The id is the fairseq split id (the ``id`` of the attribution records); the indices count the source *words* of the
records (``src_words``, Moses tokens, without ``</s>``). An id with no indices is an annotated sentence with no
under-translated word (it still contributes predictions, i.e. false positives).
"""

import math

from ...common.errors import InterpretError


def read_annotations(path):
    """``{sentence id: set of word indices}`` from an annotation file (see the module docstring)."""
    annotations = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise InterpretError(f"cannot read the annotation file {path} ({e.strerror}): pass an existing file") \
            from None
    with f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            head, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
            try:
                sid = int(head)
                indices = {int(i) for i in rest.split()}
            except ValueError:
                raise InterpretError(
                    f"{path}:{number}: expected '<sentence id><TAB><word indices>', got {line[:60]!r}") from None
            if sid in annotations:
                raise InterpretError(f"{path}:{number}: sentence {sid} is annotated twice: merge its lines")
            if any(i < 0 for i in indices):
                raise InterpretError(f"{path}:{number}: word indices are 0-based and non-negative")
            annotations[sid] = indices
    return annotations


def least_important(importance, ratio):
    """Indices of the ``ceil(ratio · n)`` least important words (ties: earlier word first)."""
    if not 0 < ratio <= 1:
        raise InterpretError(f"ratio {ratio} must be in (0, 1]")
    n = len(importance)
    count = min(n, math.ceil(ratio * n - 1e-9))
    order = sorted(range(n), key=lambda i: (importance[i], i))
    return set(order[:count])


def f1_scores(records, annotations, ratios=(0.05, 0.10, 0.15)):
    """``{ratio: {"precision", "recall", "f1", "predicted", "gold", "correct"}}`` for one method's records."""
    by_id = {r["id"]: r for r in records}
    missing = sorted(set(annotations) - set(by_id))
    if missing:
        raise InterpretError(f"annotated sentence(s) {missing[:5]} have no attribution record: attribute them "
                             "first (fairseq-interpret without --num-sentences, or a larger one)")
    out = {}
    for ratio in ratios:
        predicted = gold = correct = 0
        for sid, gold_words in annotations.items():
            importance = by_id[sid]["word_importance"]
            if any(i >= len(importance) for i in gold_words):
                raise InterpretError(f"sentence {sid}: annotated word index {max(gold_words)} but the source has "
                                     f"{len(importance)} words")
            pred = least_important(importance, ratio)
            predicted += len(pred)
            gold += len(gold_words)
            correct += len(pred & gold_words)
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[ratio] = {"precision": precision, "recall": recall, "f1": f1, "predicted": predicted, "gold": gold,
                      "correct": correct}
    return out
