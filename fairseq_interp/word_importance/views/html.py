"""HTML views of attribution records (no scripts, no external files): one self-contained page (``--html``,
``fairseq-interp html``) and the fragment a notebook shows (``_repr_html_`` of the Python API's results).

Per sentence: how it was made (model and options from the record), the source words shaded by word importance,
the target words, the reference, for a contrastive record the step and the alternative, and — for methods with a
matrix — the word contribution heatmap as a table (red positive, blue negative), then the target-prefix matrix of a
target-prefix record. Every shading has a legend with its scale (:mod:`.scales`: a value's share of the sentence's
importance, a cell's share of the largest target word's total attribution), so near-uniform attributions stay pale.
Words are never cut: they wrap between words and the tables grow with their longest word.
"""

import html

from ...common.jsonl import write_atomic
from ...common.subwords import SPM_SPACE
from .scales import importance_scale, matrix_scale, strength

#: record fields that are data, not how the record was made (the rest is shown as the record's options)
DATA_FIELDS = frozenset([
    "id", "src_tokens", "tgt_tokens", "src_words", "tgt_words", "contributions", "word_contributions",
    "word_importance", "target_scores", "baseline_scores", "convergence_delta", "source", "translation", "reference",
    "prefix_tokens", "prefix_words", "prefix_contributions", "prefix_word_contributions", "contrast_step",
    "contrast_token", "contrast_word", "erasure_bleu", "erasure_bleus"])

POSITIVE, NEGATIVE = "214,39,40", "31,119,180"

STYLE = """
.fairseq-interp{font-family:system-ui,sans-serif;color:#222;line-height:1.5}
.fairseq-interp section{border-top:1px solid #ccc;padding:.8em 0}
.fairseq-interp h3{margin:.2em 0}
.fairseq-interp .w{display:inline-block;padding:1px 4px;margin:1px;border-radius:3px;white-space:pre;
  border:1px solid #ddd;color:#222}
.fairseq-interp .line{margin:.2em 0;overflow-wrap:anywhere}
.fairseq-interp table.m{border-collapse:collapse;font-size:12px;margin-top:.5em}
.fairseq-interp table.m td,.fairseq-interp table.m th{border:1px solid #eee;padding:2px 5px;text-align:right;
  white-space:nowrap}
.fairseq-interp table.m th{font-weight:normal;color:#555}
.fairseq-interp table.m th.c{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left}
.fairseq-interp .meta{color:#555;font-size:13px}
.fairseq-interp .legend{display:inline-flex;align-items:center;gap:6px;font-size:12px;color:#444;margin:.3em 0}
.fairseq-interp .label{font-weight:bold}
.fairseq-interp .bar{display:inline-block;width:140px;height:12px;border:1px solid #bbb}
"""


def _fill(value, scale):
    """Inline style of a shaded word or cell: red for positive, blue for negative, strength on ``scale``; white
    text on dark fills."""
    alpha = strength(value, scale)
    rgb = POSITIVE if value >= 0 else NEGATIVE
    return f"background:rgba({rgb},{alpha:.3f})" + (";color:#fff" if alpha > 0.6 else "")


def _legend(label, scale, signed, what):
    """A colour bar with its scale: 0 … +scale (or −scale … 0 … +scale) and what the scale is."""
    if signed:
        bar = f"linear-gradient(to right,rgb({NEGATIVE}),#fff,rgb({POSITIVE}))"
        ends = f"<span>{-scale:+.3g}</span><span class='bar' style='background:{bar}'></span><span>{scale:+.3g}</span>"
    else:
        bar = f"linear-gradient(to right,#fff,rgb({POSITIVE}))"
        ends = f"<span>0</span><span class='bar' style='background:{bar}'></span><span>{scale:.3g}</span>"
    return (f"<div class='legend'><span class='label'>{html.escape(label)}</span>{ends}"
            f"<span>{html.escape(what)}</span></div>")


def _piece(token):
    """A subword token without sentencepiece's word-start mark (the raw token is in the element's title)."""
    return token.lstrip(SPM_SPACE) or token


def _strip_eos(words):
    return words[:-1] if words[-1:] == ["</s>"] else words


def options_line(record):
    """``name=value`` of every field of the record that says how it was made (method, score, model, ...)."""
    items = [(k, v) for k, v in record.items() if k not in DATA_FIELDS and v is not None]
    return ", ".join(f"{k}={v}" for k, v in items)


def _matrix_table(row_words, col_words, matrix, scale):
    esc = html.escape
    rows = ['<table class="m"><tr><th></th>' + "".join(f'<th class="c">{esc(w)}</th>' for w in col_words) + "</tr>"]
    for w, row in zip(row_words, matrix):
        rows.append(f"<tr><th>{esc(w)}</th>" + "".join(
            f'<td style="{_fill(v, scale)}" title="{v:.4f}">{v:+.2f}</td>' for v in row) + "</tr>")
    return "".join(rows) + "</table>"


def render_record(record):
    """One sentence as an HTML ``<section>`` (styled by :data:`STYLE` inside a ``fairseq-interp`` element)."""
    esc = html.escape
    sid = record["id"]
    words = _strip_eos(record["src_words"])
    importance = record["word_importance"]
    parts = [f'<section id="s{sid}"><h3>sentence {sid}</h3>']
    options = options_line(record)
    if options:
        parts.append(f'<div class="meta">{esc(options)}</div>')
    scale = importance_scale(importance)
    signed = any(v < 0 for v in importance)
    parts.append('<div class="line"><b>source</b> ' + "".join(
        f'<span class="w" style="{_fill(v, scale)}" title="{v:.4f}">{esc(w)}</span>'
        for w, v in zip(words, importance)) + "</div>")
    parts.append(_legend("word importance", scale, signed, "colour = share of the sentence's total |importance|"
                         if abs(scale - 1.0) > 1e-6 else "colour = importance (it sums to 1 over the words)"))
    target = _strip_eos(record["tgt_words"])
    attributed = record.get("attribute_target") or "target"
    parts.append(f"<div class='line'><b>{esc(attributed)}</b> {esc(' '.join(target))}</div>")
    if attributed == "reference":  # the line above is the reference; show what the model translated
        if record.get("translation") is not None:
            parts.append(f"<div class='line'><span class='label'>translation</span> "
                         f"{esc(record['translation'])}</div>")
    elif record.get("reference") is not None:
        parts.append(f"<div class='line'><b>reference</b> {esc(record['reference'])}</div>")
    if record.get("contrast_step") is not None:
        step = record["contrast_step"]
        token, alternative = record["tgt_tokens"][step], record["contrast_token"]
        parts.append(f"<div class='line'><span class='label'>contrast</span> at target token {step}: why "
                     f"<span class='w' title='{esc(token)}'>{esc(_piece(token))}</span> rather than "
                     f"<span class='w' title='{esc(alternative)}'>{esc(_piece(alternative))}</span> "
                     "(F = log P(y) − log P(y′) at that step; every other target word scores 0)</div>")
    ranked = sorted(zip(words, importance), key=lambda p: -p[1])[:5]
    parts.append('<div class="meta">most important: ' + ", ".join(f"{esc(w)} ({v:.3f})" for w, v in ranked)
                 + "</div>")
    matrix = record.get("word_contributions")
    if matrix is not None:
        prefix = record.get("prefix_word_contributions")
        scale = matrix_scale(matrix, prefix)
        what = ("colour = share of the largest target word's total |contribution| (source and prefix)" if prefix
                else "colour = share of the largest target word's total |contribution|")
        parts.append(_legend("contribution", scale, True, what))
        parts.append(_matrix_table(record["src_words"], record["tgt_words"], matrix, scale))
        if prefix is not None:
            parts.append("<div class='line'><span class='label'>target prefix</span> (rows: the decoder's input "
                         "words)</div>")
            parts.append(_matrix_table(record["prefix_words"], record["tgt_words"], prefix, scale))
    parts.append("</section>")
    return "\n".join(parts)


def render_fragment(records):
    """The records as one ``<div class="fairseq-interp">`` with its own scoped style (a notebook cell output)."""
    records = sorted(records, key=lambda r: r["id"])
    return (f"<div class='fairseq-interp'><style>{STYLE}</style>" + "\n".join(render_record(r) for r in records)
            + "</div>")


def render(records, title="fairseq-interp attributions"):
    records = sorted(records, key=lambda r: r["id"])
    methods = sorted({str(r.get("method")) for r in records})
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>body{{margin:2em}}{STYLE}</style></head><body class='fairseq-interp'>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{len(records)} sentence(s); method: {html.escape(', '.join(methods))}. Source words "
            "are shaded by word importance; matrix cells by contribution (red positive, blue negative); the legends "
            "give each scale; hover for values.</p>")
    return head + "\n".join(render_record(r) for r in records) + "</body></html>\n"


def write_html(records, path, title="fairseq-interp attributions"):
    """Write the page atomically."""
    write_atomic(path, render(records, title))
