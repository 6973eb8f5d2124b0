"""Under-translation detection from word importance (He et al. 2019, §5.1, Table 1).

Under-translated source words should get little importance (§5.1), so the least important words are predicted to
be under-translated and compared with labelled ones: precision = |pred ∩ gold| / |pred|, recall = |pred ∩ gold| /
|gold|, F1 = 2PR / (P + R), pooled over all labelled sentences (micro average; a sentence without an
under-translated word still contributes predictions).

Which words are "the top 5 / 10 / 15 %"? The paper says only that it compares "words of least importance" with the
annotated words (§5.1, Table 1); it does not say whether the share is taken in every sentence or over the corpus.

* ``corpus`` (default): over all words of all labelled sentences, the ``ceil(p · W)`` words (W = their number)
  of lowest importance × sentence length, i.e. with the rescaling the paper applies in §5 "for fair comparison"
  (a sentence's words average 1 whatever its length). Ties: earlier sentence (in id order), then earlier word.
  The three ratios give three different sets whatever the sentence lengths.
* ``per-sentence``: in each sentence of n words, the ``ceil(p · n)`` least important words (ties: earlier word).
  With ceil, 5 % and 10 % both pick one word in every sentence of at most 10 words (most Multi30k captions), so
  the first two columns of Table 1 coincide there.

Importance is the record's ``word_importance`` whatever the method (a softmax over the sentence for ig and
attention, the normalized BLEU drop for erasure).

Annotation file (UTF-8 text), one line per labelled sentence::

    # comment lines and blank lines are ignored
    <sentence id><TAB><0-based source word indices, space separated>

The id is the ``id`` of the attribution records; the indices count the source *words* of the records
(``src_words``, without ``</s>``). An id with no indices is a labelled sentence with no under-translated word.
"""

import math

from ...common.errors import InterpretError
from ...common.tables import markdown_table

SELECTIONS = ("corpus", "per-sentence")
RATIOS = (0.05, 0.10, 0.15)


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


def annotation_text(labels, header=""):
    """The annotation file of ``{sentence id: word indices}`` (ids in order)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{sid}\t{' '.join(str(i) for i in sorted(labels[sid]))}" for sid in sorted(labels)]
    return "\n".join(lines) + "\n"


def _check_ratio(ratio):
    if not 0 < ratio <= 1:
        raise InterpretError(f"ratio {ratio} must be in (0, 1]")


def least_important(importance, ratio):
    """Per-sentence selection: indices of the ``ceil(ratio · n)`` least important words (ties: earlier word)."""
    _check_ratio(ratio)
    n = len(importance)
    count = min(n, math.ceil(ratio * n - 1e-9))
    order = sorted(range(n), key=lambda i: (importance[i], i))
    return set(order[:count])


def corpus_least_important(importances, ratio):
    """Corpus selection: ``importances`` = one list per sentence (in order); returns one set of word indices per
    sentence, together the ``ceil(ratio · W)`` words of lowest importance × sentence length."""
    _check_ratio(ratio)
    words = [(value * len(imp), s, i) for s, imp in enumerate(importances) for i, value in enumerate(imp)]
    count = min(len(words), math.ceil(ratio * len(words) - 1e-9))
    chosen = [set() for _ in importances]
    for _, s, i in sorted(words)[:count]:
        chosen[s].add(i)
    return chosen


def _checked_inputs(records, annotations):
    by_id = {r["id"]: r for r in records}
    missing = sorted(set(annotations) - set(by_id))
    if missing:
        raise InterpretError(f"annotated sentence(s) {missing[:5]} have no attribution record: attribute them "
                             "first (fairseq-interpret without --num-sentences, or a larger one)")
    ids = sorted(annotations)
    importances = []
    for sid in ids:
        importance = by_id[sid]["word_importance"]
        if any(i >= len(importance) for i in annotations[sid]):
            raise InterpretError(f"sentence {sid}: annotated word index {max(annotations[sid])} but the source has "
                                 f"{len(importance)} words")
        importances.append(importance)
    return ids, importances


def _counts(importances, golds, ratio, selection):
    if selection == "corpus":
        predictions = corpus_least_important(importances, ratio)
    elif selection == "per-sentence":
        predictions = [least_important(imp, ratio) for imp in importances]
    else:
        raise InterpretError(f"unknown selection {selection!r}: choose one of {', '.join(SELECTIONS)}")
    predicted = sum(len(p) for p in predictions)
    gold = sum(len(g) for g in golds)
    correct = sum(len(p & g) for p, g in zip(predictions, golds))
    return predicted, gold, correct


def _f1(predicted, gold, correct):
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def f1_scores(records, annotations, ratios=RATIOS, selection="corpus"):
    """``{ratio: {"precision", "recall", "f1", "predicted", "gold", "correct"}}`` for one method's records."""
    ids, importances = _checked_inputs(records, annotations)
    golds = [annotations[sid] for sid in ids]
    out = {}
    for ratio in ratios:
        predicted, gold, correct = _counts(importances, golds, ratio, selection)
        precision, recall, f1 = _f1(predicted, gold, correct)
        out[ratio] = {"precision": precision, "recall": recall, "f1": f1, "predicted": predicted, "gold": gold,
                      "correct": correct}
    return out


def _f1_draws(importances_per_method, golds, ratios, selection, resamples, seed):
    """``[{ratio: [F1 per resample]}]`` per method: percentile-bootstrap samples of the labelled sentences (drawn
    with replacement, a drawn sentence entering with all its words; the selection is redone on every sample), the
    same samples for every method, so that differences between methods are paired."""
    import numpy as np

    rng = np.random.default_rng(seed)
    draws = [{ratio: [] for ratio in ratios} for _ in importances_per_method]
    for _ in range(resamples):
        sample = rng.integers(0, len(golds), len(golds))
        sample_gold = [golds[s] for s in sample]
        for importances, method_draws in zip(importances_per_method, draws):
            sample_imp = [importances[s] for s in sample]
            for ratio in ratios:
                method_draws[ratio].append(_f1(*_counts(sample_imp, sample_gold, ratio, selection))[2])
    return draws


def _percentiles(values, level):
    import numpy as np

    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def f1_intervals(records, annotations, ratios=RATIOS, selection="corpus", resamples=1000, seed=1, level=0.95):
    """``{ratio: (low, high)}``: percentile bootstrap of F1 over the labelled sentences (:func:`_f1_draws`)."""
    ids, importances = _checked_inputs(records, annotations)
    draws = _f1_draws([importances], [annotations[sid] for sid in ids], ratios, selection, resamples, seed)[0]
    return {ratio: _percentiles(values, level) for ratio, values in draws.items()}


def f1_differences(methods, annotations, ratios=RATIOS, selection="corpus", resamples=1000, seed=1, level=0.95):
    """Paired bootstrap of F1 differences: the first ``(name, records)`` of ``methods`` (e.g. IG, whose F1 §5.1
    Table 1 claims is the highest) minus each other, on the same sentence samples (:func:`_f1_draws`).

    Returns ``{name: {ratio: (difference, low, high, p)}}`` for the other methods: the difference of F1 on all
    labelled sentences, its percentile interval, and the p-value of sacrebleu's paired bootstrap test for BLEU
    (``significance._paired_bs_test``): the share (+1 in both counts) of samples whose absolute difference, less
    the samples' mean absolute difference, reaches the observed absolute difference (``>=``, where sacrebleu has
    ``>``, so that a method against itself gets p = 1)."""
    import numpy as np

    checked = [_checked_inputs(records, annotations) for _, records in methods]
    ids = checked[0][0]
    golds = [annotations[sid] for sid in ids]
    draws = _f1_draws([importances for _, importances in checked], golds, ratios, selection, resamples, seed)
    scores = [{ratio: _f1(*_counts(importances, golds, ratio, selection))[2] for ratio in ratios}
              for _, importances in checked]
    out = {}
    for (name, _), other_scores, other_draws in zip(methods[1:], scores[1:], draws[1:]):
        out[name] = {}
        for ratio in ratios:
            difference = scores[0][ratio] - other_scores[ratio]
            sampled = np.asarray(draws[0][ratio]) - np.asarray(other_draws[ratio])
            centred = np.abs(sampled) - np.abs(sampled).mean()
            p = (int(np.sum(centred >= abs(difference))) + 1) / (len(sampled) + 1)
            out[name][ratio] = (difference, *_percentiles(sampled, level), p)
    return out


def f1_table(methods, annotations, ratios=RATIOS, selection="corpus", resamples=1000, seed=1):
    """Markdown: one row per ``(name, records)`` of ``methods``: F1 [95 % interval] at each ratio."""
    rows = []
    for name, records in methods:
        scores = f1_scores(records, annotations, ratios, selection)
        intervals = f1_intervals(records, annotations, ratios, selection, resamples, seed) if resamples else {}
        cells = []
        for r in ratios:
            cell = f"{scores[r]['f1']:.3f}"
            if r in intervals:
                cell += f" [{intervals[r][0]:.3f}, {intervals[r][1]:.3f}]"
            cells.append(cell)
        rows.append([name, *cells])
    return markdown_table(["method", *(f"F1 @ {r:.0%}" for r in ratios)], rows)


def f1_difference_table(methods, annotations, ratios=RATIOS, selection="corpus", resamples=1000, seed=1):
    """Markdown: :func:`f1_differences` of the first method against each other one, a row each: the difference
    [95 % interval] and its p-value at each ratio; empty with fewer than two methods or no resamples."""
    if len(methods) < 2 or not resamples:
        return ""
    first = methods[0][0]
    rows = []
    for name, by_ratio in f1_differences(methods, annotations, ratios, selection, resamples, seed).items():
        rows.append([f"{first} − {name}", *(f"{d:+.3f} [{low:+.3f}, {high:+.3f}], p = {p:.3f}"
                                             for d, low, high, p in (by_ratio[r] for r in ratios))])
    return markdown_table(["difference", *(f"F1 @ {r:.0%}" for r in ratios)], rows)
