"""Voita et al. (2019)'s published numbers beside ours (``paper_numbers.json`` of this package): the head analysis
part (Table 1, §5.1, §5.3), as rows for :func:`~fairseq_interp.common.paper_numbers.side_by_side`."""

from ..common.paper_numbers import load_paper_numbers
from .held_out import HALVES
from .roles import BEST_RARE_STATISTIC, value_with_interval


def _ours(head, name, scale=1):
    """A head's statistic, as ``(value, low, high)`` with its 95% interval over sentences when the report has one."""
    value, interval = value_with_interval(head, name, required=True)
    if interval is None:
        return scale * value
    return scale * value, scale * interval[0], scale * interval[1]


def analysis_rows(report, setting=""):
    """``[(quantity, paper, ours, our setting)]`` from a ``heads.json`` report of ``fairseq-interp heads``:

    * §5.3: the encoder head that points most often to one of the two least frequent tokens, its shares (%) of the
      qualifying sentences (rarest token; one of the two least frequent) beside the paper's rare-word head;
    * §5.1: the lowest confidence of a positional head (the paper: every positional head exceeds 0.8);
    * Table 1 (when the report has syntactic statistics): per relation and direction, the most accurate encoder
      head and the positional baseline (%), beside the paper's WMT EN-RU column; with intervals also the paired
      difference best head − baseline (points).

    The §5 rows and Table 1 carry the chosen head's (and the baseline's) 95% interval over sentences where the report
    has one (the choice of the head is not resampled). Where the report has per-sentence values, the §5.3 and
    Table 1 best-head rows are followed by their held-out rows: the best head chosen on the other half of the
    sentences (even/odd ids; :mod:`.held_out`), free of the upward bias of choosing on the sentences measured."""
    paper = load_paper_numbers("heads")
    encoder = [h for layer in report["kinds"]["encoder_self"]["layers"] for h in layer]
    prefix = f"{setting}; " if setting else ""
    rows = []
    rated = [h for h in encoder if h.get(BEST_RARE_STATISTIC) is not None]
    best = max(rated, key=lambda h: h[BEST_RARE_STATISTIC]) if rated else None
    where = (f"{prefix}{report['sentences']} sentences, {report.get('rare_sentences')} with the rarest token outside "
             f"the top {report.get('rare_top_frequent')}; our best encoder head")
    rare_held_out = report.get("rare_held_out")
    for number in paper.table("Section 5.3"):
        stat = "rare" if "rarest" in number.column else "rare_top2"
        rows.append((f"§5.3 {number.row}: {number.column}", number.value,
                     None if best is None else _ours(best, stat, 100), where if best else "no sentence qualified"))
        if rare_held_out is not None:
            rows.append((f"§5.3 {number.row}: {number.column.removesuffix(' (%)')}, held-out best head (%)",
                         number.value, _held_out_percent(rare_held_out, stat),
                         _held_out_setting(rare_held_out, prefix, "qualifying sentence")))
    positional = [h for kind in report["kinds"].values() for layer in kind["layers"] for h in layer
                  if "positional" in h.get("roles", [])]
    number = paper.get("Section 5.1", "positional heads", "confidence (lower bound)")
    least = min(positional, key=lambda h: h["confidence"]) if positional else None
    rows.append(("§5.1 lowest confidence of a positional head", number.value,
                 None if least is None else _ours(least, "confidence"),
                 f"{prefix}{len(positional)} positional heads (≥ {report['positional_threshold']:.0%} of tokens at "
                 "one offset)"))
    for key, syn in (report.get("syntax") or {}).items():
        for number in paper.table("Table 1"):
            if number.note.startswith(f"our key {key};") and number.column == "WMT best head":
                best = max((h for h in encoder if h.get("syntactic")), key=lambda h: h["syntactic"][key])
                baseline = paper.get("Table 1", number.row, "WMT baseline").value
                rows.append((f"Table 1, {number.row}: best head accuracy (%)", number.value,
                             _percent(best["syntactic"][key], (best.get("syntactic_interval") or {}).get(key)),
                             f"{prefix}{syn['arcs']} arcs in {report['sentences']} sentences, spaCy parses"))
                held_out = syn.get("held_out")
                if held_out is not None:
                    rows.append((f"Table 1, {number.row}: held-out best head accuracy (%)", number.value,
                                 _held_out_percent(held_out, "accuracy"),
                                 _held_out_setting(held_out, prefix, "sentence with such an arc")))
                rows.append((f"Table 1, {number.row}: positional baseline (%)", baseline,
                             _percent(syn["baseline"], syn.get("baseline_interval")),
                             f"{prefix}most frequent offset {syn['baseline_offset']:+d}"))
                if syn.get("best_minus_baseline") is not None:
                    rows.append((f"Table 1, {number.row}: best head − baseline (points)", number.value - baseline,
                                 _percent(syn["best_minus_baseline"], syn.get("best_minus_baseline_interval")),
                                 f"{prefix}paired per sentence; the best head is chosen on these sentences "
                                 "(its interval ignores that choice)"))
                if held_out is not None:
                    rows.append((f"Table 1, {number.row}: held-out best head − baseline (points)",
                                 number.value - baseline, _held_out_percent(held_out, "best_minus_baseline"),
                                 _held_out_setting(held_out, prefix, "sentence with such an arc")
                                 + f"; baseline at offset {syn['baseline_offset']:+d} of all arcs"))
    return rows


def _held_out_percent(held_out, name):
    """A held-out statistic of :func:`~.held_out.held_out_best` as :func:`_percent`, or None (a half without
    sentences)."""
    value = held_out.get(name)
    return None if value is None else _percent(value, held_out.get(f"{name}_interval"))


def _held_out_setting(held_out, prefix, sentence):
    """The setting of a held-out row: the split, and the head chosen on each half (layer.head)."""
    chosen = {half: held_out["best_head"][half] for half in HALVES}
    where = f"{prefix}chosen on the other half of the sentences (even/odd ids)"
    empty = [half for half in HALVES if chosen[half] is None]
    if empty:
        return f"{where}: no {sentence} has an {empty[0]} id"
    names = {half: "{}.{}".format(*head) for half, head in chosen.items()}
    if chosen["even"] == chosen["odd"]:
        return f"{where}: the same head {names['even']} (layer.head) on both halves"
    return (f"{where}: head {names['even']} (layer.head) chosen on the even ids, {names['odd']} on the odd ids "
            "(they differ)")


def _percent(value, interval):
    """``100 · value``, as ``(value, low, high)`` with its interval when there is one."""
    if interval is None:
        return 100 * value
    return 100 * value, 100 * interval[0], 100 * interval[1]
