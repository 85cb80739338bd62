"""Write the results schema's column table (bench/schema.py) into docs/results.md, between its
``<!-- schema:columns -->`` markers. tests/test_docs.py fails when the two differ."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.schema import markdown_table  # noqa: E402

START, END = "<!-- schema:columns -->", "<!-- /schema:columns -->"
BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)


def with_table(text: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit(f"docs/results.md has no {START} ... {END} block")
    return BLOCK.sub(lambda _: f"{START}\n{markdown_table()}\n{END}", text)


if __name__ == "__main__":
    path = ROOT / "docs" / "results.md"
    path.write_text(with_table(path.read_text()))
    print(f"wrote the column table into {path.relative_to(ROOT)}")
