"""The numbers the papers report, as data, and tables that put ours beside them.

Each paper package holds ``paper_numbers.json``::

    {"paper": "Xie, Feng, Gu, Yu 2021. Importance-based Neuron Allocation for Multilingual NMT (ACL)",
     "text": "xie2021-neuron-allocation.txt",            # in ../shared/papers/
     "numbers": [{"table": "Table 1", "row": "Multilingual", "column": "En→De", "value": 27.44,
                  "setting": "IWSLT ..., Transformer base, ..."}, ...]}

``table`` names the table or figure as the paper does, ``row`` and ``column`` its labels, ``setting`` what the paper
ran (data, model, training) so that a reader sees where ours differs. Reproduction scripts print
:func:`side_by_side` tables: paper | ours | difference | our setting.
"""

import json
import os
from dataclasses import dataclass
from typing import List, Optional

from .errors import InterpretError
from .tables import markdown_table

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class PaperNumber:
    table: str
    row: str
    column: str
    value: float
    setting: str = ""
    note: str = ""


@dataclass
class PaperNumbers:
    paper: str
    text: str
    numbers: List[PaperNumber]

    def get(self, table, row, column) -> PaperNumber:
        """The number in ``table`` at ``row``/``column``; a one-line error names what exists."""
        for number in self.numbers:
            if (number.table, number.row, number.column) == (table, row, column):
                return number
        known = sorted({n.table for n in self.numbers})
        raise InterpretError(f"{self.paper}: no number at {table!r} / {row!r} / {column!r} (tables: "
                             f"{', '.join(known)})")

    def table(self, table) -> List[PaperNumber]:
        return [n for n in self.numbers if n.table == table]


def load_paper_numbers(package) -> PaperNumbers:
    """The ``paper_numbers.json`` of a paper package (``"neurons"``, ``"heads"``, ...), checked."""
    path = os.path.join(PACKAGE_ROOT, package, "paper_numbers.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InterpretError(f"{path} not found: the package {package!r} has no paper numbers") from None
    numbers = []
    for k, entry in enumerate(data.get("numbers", [])):
        missing = [key for key in ("table", "row", "column", "value") if key not in entry]
        if missing:
            raise InterpretError(f"{path}: number {k} lacks {', '.join(missing)}")
        numbers.append(PaperNumber(str(entry["table"]), str(entry["row"]), str(entry["column"]),
                                   float(entry["value"]), str(entry.get("setting", "")), str(entry.get("note", ""))))
    keys = [(n.table, n.row, n.column) for n in numbers]
    if len(keys) != len(set(keys)):
        raise InterpretError(f"{path}: a (table, row, column) appears twice")
    return PaperNumbers(str(data["paper"]), str(data.get("text", "")), numbers)


def _fixed(value, digits, sign=""):
    """``value`` with ``digits`` decimals; a value that rounds to zero is printed without a minus sign."""
    text = f"{value:{sign}.{digits}f}"
    return f"{0.0:{sign}.{digits}f}" if float(text) == 0 else text


def _cell(value, digits):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        number, low, high = value
        return f"{_fixed(number, digits)} [{_fixed(low, digits)}, {_fixed(high, digits)}]"
    return _fixed(value, digits)


def side_by_side(rows, digits=2) -> str:
    """Markdown: one line per compared quantity, ``rows`` = ``[(what, paper value or None, ours (a number, a
    ``(number, low, high)`` triple printed with its interval, a preformatted string such as "16.35 ± 0.12", or
    None), our setting)]``; the difference is ours − paper where both are numbers (ours' number for a triple)."""
    cells = []
    for what, paper, ours, setting in rows:
        difference: Optional[float] = None
        number = ours[0] if isinstance(ours, tuple) else ours
        if isinstance(paper, (int, float)) and isinstance(number, (int, float)):
            difference = number - paper
        diff = "–" if difference is None else _fixed(difference, digits, "+")
        cells.append([what, _cell(paper, digits), _cell(ours, digits), diff, setting])
    return markdown_table(["quantity", "paper", "ours", "ours − paper", "our setting"], cells)
