"""Markdown tables as a CommonMark reader sees them, for the tests of escaped report values."""

from __future__ import annotations

from markdown_it import MarkdownIt


def table_row_widths(text: str) -> list[list[int]]:
    """Per table of ``text`` (CommonMark with raw HTML and tables), the number of cells of each row:
    a value whose pipe was not escaped shows as a row wider or narrower than the header."""
    tables: list[list[int]] = []
    widths: list[int] = []
    row = 0
    for t in MarkdownIt("commonmark", {"html": True}).enable("table").parse(text):
        if t.type == "tr_open":
            row = 0
        elif t.type in ("th_open", "td_open"):
            row += 1
        elif t.type == "tr_close":
            widths.append(row)
        elif t.type == "table_close":
            tables.append(widths)
            widths = []
    return tables
