"""Plain-text view of attribution records, for people.

Per sentence::

    S-12    source words
    T-12    attributed target words (hypothesis or reference)
    R-12    reference (if known)
    C-12    contrastive record: the step and the alternative token
    I-12    word importance, most important first: word=0.213 ...
    then the word contribution matrix: one row per source word, one column per target word (a column is as wide as
    its word, at least 8 characters: no word is cut); a target-prefix record adds its prefix matrix (P rows)
"""


def _fmt(v):
    return f"{v:+.3f}"


def _matrix(row_words, col_words, matrix):
    width = max(len(w) for w in list(row_words) + ["source"])
    widths = [max(8, len(w)) for w in col_words]
    lines = [" " * width + " " + " ".join(f"{c:>{k}}" for c, k in zip(col_words, widths))]
    for word, row in zip(row_words, matrix):
        lines.append(f"{word:<{width}} " + " ".join(f"{_fmt(v):>{k}}" for v, k in zip(row, widths)))
    return lines


def render_record(record):
    sid = record["id"]
    lines = [f"S-{sid}\t{' '.join(record['src_words'][:-1])}",
             f"T-{sid}\t{' '.join(record['tgt_words'][:-1])}"]
    if record.get("reference") is not None:
        lines.append(f"R-{sid}\t{record['reference']}")
    if record.get("contrast_step") is not None:
        step = record["contrast_step"]
        lines.append(f"C-{sid}\tstep {step}: {record['tgt_tokens'][step]} rather than {record['contrast_token']} "
                     "(log P(y) - log P(y') at that step)")
    ranked = sorted(zip(record["src_words"], record["word_importance"]), key=lambda p: -p[1])
    lines.append(f"I-{sid}\t" + " ".join(f"{w}={v:.3f}" for w, v in ranked))
    if record.get("convergence_delta") is not None:
        delta = max((abs(d) for d in record["convergence_delta"]), default=0.0)
        lines.append(f"D-{sid}\tmax |convergence delta| = {delta:.2e}")
    if record.get("word_contributions") is None:  # word-level methods (frequency, content, random, erasure)
        return "\n".join(lines) + "\n"
    lines += _matrix(record["src_words"], record["tgt_words"], record["word_contributions"])
    if record.get("prefix_word_contributions") is not None:
        lines.append(f"P-{sid}\ttarget prefix (rows: the decoder's input words)")
        lines += _matrix(record["prefix_words"], record["tgt_words"], record["prefix_word_contributions"])
    return "\n".join(lines) + "\n"


def render(records):
    return "\n".join(render_record(r) for r in sorted(records, key=lambda r: r["id"]))


def write_text_view(records, path):
    """Write the view of ``records`` (an iterable, e.g. :func:`~.jsonl.iter_records_by_id`) to ``path``,
    streaming, through a temporary file and a rename."""
    from ...common.jsonl import write_lines_atomic

    write_lines_atomic(path, (("\n" if k else "") + render_record(r) for k, r in enumerate(records)))
