"""The README and docs/: a front page, links that resolve, and the schema's table as the code has it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.schema import markdown_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*?|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    found, seen = set(), {}
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [a or b for a, b in LINK.findall(text)]


def test_slug_is_githubs():
    assert slug("Changes to the first design's contracts") == "changes-to-the-first-designs-contracts"
    assert slug("`bench run`: options") == "bench-run-options"
    assert slug("MNIST-1D") == "mnist-1d"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: (none reach the network)
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT.resolve() not in dest.parents and dest != ROOT.resolve():
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_exist_and_the_readme_is_a_front_page():
    names = {p.name for p in DOCS}
    assert {"architecture.md", "suite-format.md", "results.md", "cli.md", "extending.md",
            "suites.md", "performance.md", "development.md"} <= names
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12_500, "the README is a front page: the reference is in docs/"
    first = FENCE.search(readme).group(0).splitlines()[1:-1]
    install = 'pip install torch==2.13.0 -e ".[test]"'
    assert first == [f"{install} && python -m bench run suites/activations.toml",
                     f"{install} && python -m pytest -q"]
    assert readme.startswith("# actbench\n\n```bash\n"), "the set-up commands come first"
    for page in DOCS:
        assert f"docs/{page.name}" in readme, f"the README does not link docs/{page.name}"


def test_the_results_page_holds_the_schemas_table():
    text = (ROOT / "docs" / "results.md").read_text()
    block = re.search(r"<!-- schema:columns -->\n(.*?)\n<!-- /schema:columns -->", text, re.S)
    assert block, "docs/results.md has no <!-- schema:columns --> block"
    assert block.group(1) == markdown_table(), "run: python scripts/schema_docs.py"


def test_nothing_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    outside = []
    for name in tracked:
        text_file = name.endswith((".md", ".py", ".toml", ".ini", ".j2", ".sh", ".cfg"))
        if not text_file or name.startswith("reports/"):
            continue
        text = (ROOT / name).read_text(errors="replace")
        for needle in ("../shared", "DESIGN.md"):
            if needle in text and name != "tests/test_docs.py":
                outside.append(f"{name}: {needle}")
    assert not outside, outside
