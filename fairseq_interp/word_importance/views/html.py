"""One self-contained HTML page of attribution records (no scripts, no external files).

Per sentence: the source words shaded by word importance (darker = more important), the target words, the
reference, and — for methods with a matrix (ig, attention) — the word contribution heatmap as a table whose cells
are shaded red (positive) or blue (negative), scaled by the sentence's largest |value|.
"""

import html

from ...common.jsonl import write_atomic

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
section{border-top:1px solid #ccc;padding:1em 0}
.w{display:inline-block;padding:2px 4px;margin:1px;border-radius:3px}
table.m{border-collapse:collapse;font-size:12px;margin-top:.5em}
table.m td,table.m th{border:1px solid #eee;padding:2px 5px;text-align:right}
table.m th{font-weight:normal;color:#555}
table.m th.c{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left}
.meta{color:#666;font-size:13px}
"""


def _shade(value, limit):
    """Background colour of a cell: red for positive, blue for negative, alpha = |value| / limit."""
    alpha = 0.0 if limit <= 0 else min(1.0, abs(value) / limit)
    rgb = "214,39,40" if value >= 0 else "31,119,180"
    return f"background:rgba({rgb},{alpha:.3f})"


def render_record(record):
    esc = html.escape
    sid = record["id"]
    words = record["src_words"][:-1] if record["src_words"][-1:] == ["</s>"] else record["src_words"]
    importance = record["word_importance"]
    top = max((abs(v) for v in importance), default=0.0)
    parts = [f'<section id="s{sid}"><h3>sentence {sid}</h3>',
             "<div><b>source</b> " + "".join(
                 f'<span class="w" style="{_shade(v, top)}" title="{v:.4f}">{esc(w)}</span>'
                 for w, v in zip(words, importance)) + "</div>"]
    target = record["tgt_words"][:-1] if record["tgt_words"][-1:] == ["</s>"] else record["tgt_words"]
    parts.append(f"<div><b>{esc(record.get('attribute_target') or 'target')}</b> {esc(' '.join(target))}</div>")
    if record.get("reference") is not None:
        parts.append(f"<div><b>reference</b> {esc(record['reference'])}</div>")
    ranked = sorted(zip(words, importance), key=lambda p: -p[1])[:5]
    parts.append('<div class="meta">most important: ' + ", ".join(f"{esc(w)} ({v:.3f})" for w, v in ranked)
                 + "</div>")
    matrix = record.get("word_contributions")
    if matrix is not None:
        limit = max((abs(v) for row in matrix for v in row), default=0.0)
        rows = ['<table class="m"><tr><th></th>' + "".join(f'<th class="c">{esc(w)}</th>'
                                                             for w in record["tgt_words"]) + "</tr>"]
        for w, row in zip(record["src_words"], matrix):
            rows.append(f"<tr><th>{esc(w)}</th>" + "".join(
                f'<td style="{_shade(v, limit)}" title="{v:.4f}">{v:+.2f}</td>' for v in row) + "</tr>")
        parts.append("".join(rows) + "</table>")
    parts.append("</section>")
    return "\n".join(parts)


def render(records, title="fairseq-interp attributions"):
    records = sorted(records, key=lambda r: r["id"])
    methods = sorted({str(r.get("method")) for r in records})
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{len(records)} sentence(s); method: {html.escape(', '.join(methods))}. Source words "
            "are shaded by word importance; matrix cells by contribution (red positive, blue negative); hover for "
            "values.</p>")
    return head + "\n".join(render_record(r) for r in records) + "</body></html>\n"


def write_html(records, path, title="fairseq-interp attributions"):
    """Write the page atomically."""
    write_atomic(path, render(records, title))
