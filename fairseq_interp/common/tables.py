"""Markdown tables (GitHub-flavoured): the one place that writes their syntax.

A cell is written as ``str(cell)`` with ``|`` escaped (``\\|``: a label such as "argmax of |contribution|" stays one
cell) and line breaks replaced by spaces, so no value can split or end a row.
"""


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _row(cells) -> str:
    return "|" + "".join(f" {text} |" if text else " |" for text in map(_cell, cells))


def markdown_table_lines(header, rows) -> list:
    """The table as lines: ``header`` (the column titles), the separator, one line per row of ``rows``."""
    header = list(header)
    lines = [_row(header), "|" + "---|" * len(header)]
    for cells in rows:
        cells = list(cells)
        if len(cells) != len(header):
            raise ValueError(f"a table row has {len(cells)} cells for {len(header)} columns: {cells!r}")
        lines.append(_row(cells))
    return lines


def markdown_table(header, rows) -> str:
    """The table as one string (lines joined by newlines, no newline at the end)."""
    return "\n".join(markdown_table_lines(header, rows))
