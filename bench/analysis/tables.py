"""The view of a table, rendered three ways: Markdown, the terminal (rich), and the HTML report
(whose template reads the same fields). A report's tables, ``bench compare``'s and ``bench
check``'s are built once as a ``Table`` of ``Cell``s and drawn by whichever needs them.

Every cell's text is from the run or from our own formatting (formatting.py); the renderers
escape it for their medium (``md_escape`` for Markdown, ``rich.markup.escape`` for the
terminal; jinja2's autoescape for HTML).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.analysis.formatting import DASH, md_escape


@dataclass
class Cell:
    text: str
    sort: float | str | None = None   # what the HTML table sorts by
    best: bool = False                # shown in bold: the best value, a called difference
    style: str | None = None          # the terminal's style for it (rich), e.g. "bold red"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns
    title: str = ""

    def markdown(self) -> str:
        def cell(c: Cell) -> str:
            text = md_escape(c.text)
            return f"**{text}**" if c.best and c.text != DASH and text else text

        align = [("---:" if n else ":---") for n in (self.numeric or [False] * len(self.columns))]
        lines = ["| " + " | ".join(md_escape(c) for c in self.columns) + " |",
                 "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def rich(self):
        """The table for a rich Console: every text escaped (no markup from the run)."""
        from rich.markup import escape
        from rich.table import Table as RichTable

        table = RichTable(title=escape(self.title) if self.title else None)
        numeric = self.numeric or [False] * len(self.columns)
        for name, right in zip(self.columns, numeric):
            table.add_column(escape(name), justify="right" if right else "left")
        for row in self.rows:
            cells = []
            for c in row:
                style = c.style or ("bold" if c.best and c.text != DASH else None)
                cells.append(f"[{style}]{escape(c.text)}[/]" if style and c.text else escape(c.text))
            table.add_row(*cells)
        return table
