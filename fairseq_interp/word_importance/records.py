"""The per-sentence attribution record (one JSON object per line of ``attributions.jsonl``).

Fields (see docs/word_importance.md for the full schema): ``id``, ``src_tokens``, ``tgt_tokens``, ``src_words``,
``tgt_words``, ``contributions`` (rows = source tokens, columns = target tokens), ``word_contributions``,
``word_importance``, ``target_scores``, ``baseline_scores``, ``convergence_delta`` and provenance
(``method``, ``score``, ``attribute_target``, ``source``, ``translation``, ``reference``, ``ig_steps``,
``ig_method``).

Only in records of the two optional modes, after ``convergence_delta``: target-prefix attribution adds
``prefix_tokens`` (the decoder's input tokens: ``</s>``, a decoder language token if any, then the target tokens but
the last), ``prefix_words``, ``prefix_contributions`` (rows = prefix tokens, columns = target tokens) and
``prefix_word_contributions``; contrastive attribution adds ``contrast_step`` (index into ``tgt_tokens``),
``contrast_token`` and ``contrast_word`` (index into ``tgt_words``). Records of the default mode are unchanged.
"""

import math

from ..common.subwords import EOS, group_subwords, merge_matrix


def word_importance(word_contributions, src_words):
    """He et al. 2019 word importance: per source word, the sum of its contributions over all target words,
    normalized with a softmax over the source words (``</s>`` excluded; the list is aligned with
    ``src_words`` minus a trailing ``</s>``)."""
    totals = [sum(row) for row, word in zip(word_contributions, src_words) if word != EOS]
    if not totals:
        return []
    top = max(totals)
    exps = [math.exp(t - top) for t in totals]
    z = sum(exps)
    return [e / z for e in exps]


def _floats(tensor):
    return None if tensor is None else [float(v) for v in tensor.tolist()]


def _record(sample_id, src_tokens, tgt_tokens, src_words, tgt_words, provenance, **fields):
    """The fields every record has, in schema order, then the method's fields and its provenance."""
    record = {"id": int(sample_id), "src_tokens": list(src_tokens), "tgt_tokens": list(tgt_tokens),
              "src_words": src_words, "tgt_words": tgt_words, **fields}
    record.update(provenance)
    return record


def build_record(sample_id, src_tokens, tgt_tokens, result, scheme, prefix_tokens=None, contrast=None,
                 **provenance):
    """Assemble the record of one sentence from token strings and an :class:`~.methods.AttributionResult`.

    ``prefix_tokens``: with target-prefix attribution, the decoder input token strings whose rows follow the
    ``len(src_tokens)`` source rows of ``result.contributions``. ``contrast``: ``(step, alternative token string)``
    of a contrastive attribution.
    """
    src_words, src_map = group_subwords(src_tokens, scheme)
    tgt_words, tgt_map = group_subwords(tgt_tokens, scheme)
    rows = [_floats(row) for row in result.contributions]
    contributions = rows[:len(src_tokens)]
    word_contributions = merge_matrix(contributions, src_map, tgt_map, len(src_words), len(tgt_words))
    fields = {}
    if prefix_tokens is not None:
        if len(rows) != len(src_tokens) + len(prefix_tokens):
            raise ValueError(f"{len(rows)} contribution rows for {len(src_tokens)} source and {len(prefix_tokens)} "
                             "prefix tokens")
        prefix_words, prefix_map = group_subwords(list(prefix_tokens), scheme)
        prefix = rows[len(src_tokens):]
        fields.update(prefix_tokens=list(prefix_tokens), prefix_words=prefix_words, prefix_contributions=prefix,
                      prefix_word_contributions=merge_matrix(prefix, prefix_map, tgt_map, len(prefix_words),
                                                             len(tgt_words)))
    elif len(rows) != len(src_tokens):
        raise ValueError(f"{len(rows)} contribution rows for {len(src_tokens)} source tokens")
    if contrast is not None:
        step, token = contrast
        fields.update(contrast_step=int(step), contrast_token=token, contrast_word=tgt_map[int(step)])
    return _record(sample_id, src_tokens, tgt_tokens, src_words, tgt_words, provenance,
                   contributions=contributions, word_contributions=word_contributions,
                   word_importance=word_importance(word_contributions, src_words),
                   target_scores=_floats(result.target_scores), baseline_scores=_floats(result.baseline_scores),
                   convergence_delta=_floats(result.convergence_delta), **fields)


def build_word_record(sample_id, src_tokens, tgt_tokens, importance, scheme, target_scores=None, **provenance):
    """The record of a word-level method (frequency, content, random, erasure): ``word_importance`` given per source
    word (``</s>`` excluded); ``contributions``, ``word_contributions``, ``baseline_scores`` and
    ``convergence_delta`` are null."""
    src_words, _ = group_subwords(src_tokens, scheme)
    tgt_words, _ = group_subwords(tgt_tokens, scheme)
    n_words = len(src_words) - (1 if src_words and src_words[-1] == "</s>" else 0)
    if len(importance) != n_words:
        raise ValueError(f"{len(importance)} importance values for {n_words} source words")
    return _record(sample_id, src_tokens, tgt_tokens, src_words, tgt_words, provenance,
                   contributions=None, word_contributions=None, word_importance=[float(v) for v in importance],
                   target_scores=_floats(target_scores), baseline_scores=None, convergence_delta=None)
