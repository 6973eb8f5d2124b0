"""Plain-text view of attribution records, for people.

Per sentence::

    S-12    source words
    T-12    attributed target words (hypothesis or reference)
    R-12    reference (if known)
    I-12    word importance, most important first: word=0.213 ...
    then the word contribution matrix: one row per source word, one column per target word
"""


def _fmt(v):
    return f"{v:+.3f}"


def render_record(record):
    sid = record["id"]
    lines = [f"S-{sid}\t{' '.join(record['src_words'][:-1])}",
             f"T-{sid}\t{' '.join(record['tgt_words'][:-1])}"]
    if record.get("reference") is not None:
        lines.append(f"R-{sid}\t{record['reference']}")
    ranked = sorted(zip(record["src_words"], record["word_importance"]), key=lambda p: -p[1])
    lines.append(f"I-{sid}\t" + " ".join(f"{w}={v:.3f}" for w, v in ranked))
    if record.get("convergence_delta") is not None:
        delta = max((abs(d) for d in record["convergence_delta"]), default=0.0)
        lines.append(f"D-{sid}\tmax |convergence delta| = {delta:.2e}")
    if record.get("word_contributions") is None:  # word-level methods (frequency, content, random, erasure)
        return "\n".join(lines) + "\n"
    width = max(len(w) for w in record["src_words"] + ["source"])
    cols = [w[:8] for w in record["tgt_words"]]
    lines.append(" " * width + " " + " ".join(f"{c:>8}" for c in cols))
    for word, row in zip(record["src_words"], record["word_contributions"]):
        lines.append(f"{word:<{width}} " + " ".join(f"{_fmt(v):>8}" for v in row))
    return "\n".join(lines) + "\n"


def render(records):
    return "\n".join(render_record(r) for r in sorted(records, key=lambda r: r["id"]))


def write_text_view(records, path):
    """Write the view of ``records`` (an iterable, e.g. :func:`~.jsonl.iter_records_by_id`) to ``path``,
    streaming, through a temporary file and a rename."""
    from ...common.jsonl import write_lines_atomic

    write_lines_atomic(path, (("\n" if k else "") + render_record(r) for k, r in enumerate(records)))
