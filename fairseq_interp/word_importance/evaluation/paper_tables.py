"""Our He et al. 2019 tables next to the paper's (``paper_numbers.json`` via
:func:`fairseq_interp.common.paper_numbers.side_by_side`): paper | ours | ours − paper | our setting."""

from ...common.errors import InterpretError
from ...common.paper_numbers import load_paper_numbers, side_by_side

#: the paper's language-pair columns
PAPER_PAIRS = ("Zh⇒En", "En⇒Fr", "En⇒Ja")


def _numbers(pair):
    if pair not in PAPER_PAIRS:
        raise InterpretError(f"the paper has no column {pair!r}: choose one of {', '.join(PAPER_PAIRS)}")
    return load_paper_numbers("word_importance")


def shares_side_by_side(table, rows, key, pair, setting):
    """Table 3 or 4 rows (:mod:`.shares` dicts, category in ``row[key]``) against the paper's ``pair`` column:
    count share, importance share and relative change (in %) of every category the paper has."""
    numbers = _numbers(pair)
    paper_rows = {n.row for n in numbers.table(table)}
    lines = []
    for r in rows:
        if r[key] not in paper_rows:
            continue
        lines += [(f"{r[key]}: count share", numbers.get(table, r[key], f"{pair} Count").value, r["count_share"],
                   setting),
                  (f"{r[key]}: importance share", numbers.get(table, r[key], f"{pair} Attri.").value,
                   r["importance_share"], setting),
                  (f"{r[key]}: Δ (%)", numbers.get(table, r[key], f"{pair} Δ").value, 100 * r["relative_change"],
                   setting)]
    return side_by_side(lines, digits=3)


def regression_side_by_side(rows, pair, setting):
    """Table 2 rows (:class:`.importance_regression.FeatureRow`) against the paper's ``pair`` column (percent);
    the per-kind totals are compared with the sums of the paper's values."""
    numbers = _numbers(pair)
    paper = {n.row: n.value for n in numbers.table("Table 2") if n.column == pair}
    lines = []
    for r in rows:
        if r.value == "total":
            total = sum(v for row, v in paper.items() if row.startswith(f"{r.kind}: "))
            lines.append((f"{r.kind}: total (%)", total, r.importance, setting))
        else:
            lines.append((f"{r.kind}: {r.value} (%)", paper.get(f"{r.kind}: {r.value}"), r.importance, setting))
    return side_by_side(lines, digits=1)
