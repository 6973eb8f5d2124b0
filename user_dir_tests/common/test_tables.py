"""common.tables: every table the project writes is read back by a Markdown parser (markdown-it-py, GFM tables)
as the cells it was given, whatever the cells hold (pipes, line breaks, empty cells, numbers)."""

import pytest
from markdown_it import MarkdownIt

from fairseq_interp.common.tables import markdown_table, markdown_table_lines


def parsed_rows(text):
    """The text of each row's cells, header first, as a GFM Markdown parser reads them."""
    rows, cells = [], None
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "tr_open":
            cells = []
        elif token.type == "inline" and cells is not None:
            cells.append("".join(child.content for child in token.children or [] if child.type == "text"))
        elif token.type == "tr_close":
            rows.append(cells)
            cells = None
    return rows


def test_cells_read_back_as_given():
    header = ["method", "AER", "rank by |relevance|", ""]
    rows = [["ig (argmax of |contribution|)", 0.702, "", "–"],
            ["attention", 0.5, "two\nlines", "a | b | c"],
            ["", 3, "[0.1, 0.2]", "1/15"]]
    text = markdown_table(header, rows)
    assert parsed_rows(text) == [[str(c).replace("\n", " ") for c in row] for row in [header, *rows]]
    assert text.count("\n") == len(rows) + 1  # one line per row: no cell can break one
    assert not text.endswith("\n")


def test_lines_and_string_agree():
    header, rows = ["λ", "heads"], [[0.05, "20 / 22"], [0.1, 7]]
    lines = markdown_table_lines(header, rows)
    assert lines == ["| λ | heads |", "|---|---|", "| 0.05 | 20 / 22 |", "| 0.1 | 7 |"]
    assert markdown_table(header, rows) == "\n".join(lines)
    assert parsed_rows("\n".join(lines)) == [["λ", "heads"], ["0.05", "20 / 22"], ["0.1", "7"]]


def test_header_only_and_generators():
    assert parsed_rows(markdown_table((f"k={k}" for k in range(3)), [])) == [["k=0", "k=1", "k=2"]]
    assert parsed_rows(markdown_table(["a", "b"], ((i, i * i) for i in range(2)))) == [["a", "b"], ["0", "0"],
                                                                                     ["1", "1"]]


def test_row_of_another_width_is_refused():
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        markdown_table(["a", "b"], [[1, 2, 3]])
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1, 2], [1]])
