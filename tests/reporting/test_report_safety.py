"""Reports of run folders that cannot be trusted: a doctored manifest writes nothing outside
reports/, text from the suite or the run is literal in the Markdown report (as autoescape makes
it in the HTML one), and a "$" in a name never reaches matplotlib as mathtext."""

import json
import re
import shutil
import sys
import textwrap
from pathlib import Path

import matplotlib
import pytest
from markdown_it import MarkdownIt

import bench
from bench.analysis.sections import sections
from bench.cli import main
from bench.errors import UserError
from bench.execution.run import RunOptions, run_suite
from bench.reporting import figures as bench_figures
from bench.reporting.report import render
from bench.results.reader import RunData
from tests.helpers import make_suite

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
HEADING = "\n# Fake heading"
TABLE = "\n| a | b |\n|---|---|\n| c | d |"
LINK = "[x](javascript:alert(1))"
PAYLOAD = SCRIPT + " " + IMG + HEADING + TABLE + "\n" + LINK


def toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


# A user task: its string arguments are settings like any other (fixed, or set by a variant),
# and its error message is the reason a failed trial gives.
TASK = '''
import torch

def blobs(n: int = 20, note: str = "", fail: str = "", seed: int = 0):
    if fail and seed == 1:  # the suite loads (its check calls the task once), seed 1 fails
        raise ValueError(fail)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(n, 2, generator=g) - 2, torch.randn(n, 2, generator=g) + 2])
    y = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    return x, y, "classification"
'''

PAYLOAD_SUITE = f"""
description = {toml(PAYLOAD)}
seeds = [0, 1]
[task]
kind = "report_safety_task:blobs"
n = 20
note = {toml("note " + PAYLOAD)}
[model]
hidden = [4]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.05
epochs = 3
[[variant]]
name = {toml("v1 " + PAYLOAD)}
[[variant]]
name = "plain"
"model.activation" = "tanh"
[[variant]]
name = "broken"
"task.fail" = {toml("error " + PAYLOAD)}
[[expect]]
metric = "final_accuracy"
min = 0.0
description = {toml("claim " + PAYLOAD)}
"""

DOLLAR_SUITE = r"""
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 20
[model]
hidden = [4]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.05
epochs = 4
log_every = 2
[sweep]
"model.init" = ["default", "xavier_uniform"]
[[variant]]
name = "a $x^$ b"
[[variant]]
name = '$\frac{1}{0}$'
"model.activation" = "tanh"
"""


@pytest.fixture(scope="module")
def payload_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payload")
    (tmp / "report_safety_task.py").write_text(TASK)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp))  # the worker process starts with this sys.path too
        sys.modules.pop("report_safety_task", None)
        run_dir = run_suite(make_suite(PAYLOAD_SUITE, name="safety"),
                            RunOptions(out=tmp / "results", workers=1)).dir
        render(run_dir, tmp / "report")
    sys.modules.pop("report_safety_task", None)
    return run_dir, (tmp / "report" / "report.md").read_text(), \
        (tmp / "report" / "report.html").read_text()


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A run with nothing odd in it (no "$"): what the doctored copies start from."""
    tmp = tmp_path_factory.mktemp("plain")
    body = DOLLAR_SUITE.split("[[variant]]")[0]
    return run_suite(make_suite(body, name="plain"), RunOptions(out=tmp / "results", workers=1)).dir


@pytest.fixture(scope="module")
def dollar_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dollar")
    return run_suite(make_suite(DOLLAR_SUITE, name="dollar"),
                     RunOptions(out=tmp / "results", workers=1)).dir


# -- 1. a doctored run folder writes nothing outside reports/ ----------------------------------

def _doctored(run_dir: Path, where: Path, key: str, value: str) -> Path:
    copy = where / "results" / "plain" / run_dir.name
    shutil.copytree(run_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    if key == "suite.name":
        manifest["suite"]["name"] = value
    else:
        manifest[key] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


BAD_NAMES = [("suite.name", "../../X"), ("run_id", "../../X"), ("run_id", "a/b"),
             ("suite.name", ".."), ("suite.name", "{abs}")]


@pytest.mark.parametrize("key, value", BAD_NAMES)
def test_a_doctored_name_is_refused_by_bench_report(plain_run, tmp_path, monkeypatch, capsys,
                                                    key, value):
    value = value.format(abs=tmp_path / "absolute")
    run_dir = _doctored(plain_run, tmp_path, key, value)
    cwd = tmp_path / "work" / "here"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = _files(tmp_path)
    assert main(["report", str(run_dir)]) == 2
    assert _files(tmp_path) == before  # nothing written, inside reports/ or out of it
    err = " ".join(capsys.readouterr().err.split())
    assert "manifest.json" in err and key in err and repr(value) in err and "folder name" in err

    with pytest.raises(UserError) as caught:
        render(run_dir)
    assert (caught.value.key, caught.value.value) == (key, value)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("side", ["A", "B"])
@pytest.mark.parametrize("key, value", BAD_NAMES[:3])
def test_a_doctored_name_is_refused_by_bench_compare(plain_run, tmp_path, monkeypatch, capsys,
                                                     side, key, value):
    run_dir = _doctored(plain_run, tmp_path, key, value)
    cwd = tmp_path / "work" / "here"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = _files(tmp_path)
    pair = [str(plain_run), str(run_dir)] if side == "B" else [str(run_dir), str(plain_run)]
    assert main(["compare", *pair]) == 2
    assert _files(tmp_path) == before
    err = " ".join(capsys.readouterr().err.split())
    assert "manifest.json" in err and key in err and repr(value) in err
    with pytest.raises(UserError, match="folder name"):
        bench.open_run(pair[0]).compare(pair[1])


def test_an_honest_run_still_reports_and_compares_under_reports(plain_run, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(plain_run), "--format", "md"]) == 0
    assert main(["compare", str(plain_run), str(plain_run)]) == 0
    written = {p.relative_to(tmp_path).parts[:2] for p in _files(tmp_path) if p.is_file()}
    assert written == {("reports", "plain")}


def test_figure_file_names_from_task_names_stay_in_their_folder():
    from bench.reporting.report import figure_stems

    stems = figure_stems(["../../x", "pkg.mod:task", "pkg_mod_task", "/abs", "spiral"])
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+_", s) for s in stems.values())
    assert len(set(stems.values())) == len(stems)
    assert figure_stems(["../../x"]) == {"../../x": ""}  # one task: no prefix at all


# -- 2. the Markdown report shows user text as text --------------------------------------------

OUR_HEADINGS = ("3 variants on report", "The answer", "Task ", "Activations ranked",
                "Headline table", "Activations compared", "Figures", "Claims (", "The run", "Grid",
                "Trials by status", "Methods", "Provenance")  # the title first: what was compared


def _tables(md: str) -> list[list[str]]:
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_report_escapes_every_payload(payload_run):
    from bench.analysis.formatting import md_escape

    run_dir, md, _ = payload_run
    run = RunData.open(run_dir)
    assert (run.trials["status"] == "failed").any()  # the error message is in the report too
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert not re.search(r"(?<!\\)\]\(javascript:", md)
    for line in md.splitlines():
        if line.startswith("#"):
            assert line.lstrip("#").strip().startswith(OUR_HEADINGS), line
    # no row or cell injected: every row of a table has its header's number of cells
    for table in _tables(md):
        cells = [len(re.findall(r"(?<!\\)\|", row)) for row in table]
        assert len(set(cells)) == 1, table
    # and the payloads are shown, as text: in the description, the fixed settings, the
    # variant names (grid, headline, comparisons), the claim and the failed trial's error
    shown = md_escape(PAYLOAD)
    for prefix in ("", "note ", "v1 ", "claim ", "error "):
        assert md_escape(prefix + PAYLOAD) in md, prefix
    assert shown.startswith("&lt;script&gt;alert(1)&lt;/script&gt;")


def test_a_markdown_renderer_sees_no_html_link_heading_or_table_from_the_payload(payload_run):
    _, md, _ = payload_run
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    inline = [t for tok in tokens if tok.children for t in tok.children]
    kinds = {t.type for t in tokens} | {t.type for t in inline}
    assert not kinds & {"html_block", "html_inline", "link_open"}
    assert all(t.attrGet("src").startswith("figures/") for t in inline if t.type == "image")
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert all(h.startswith(OUR_HEADINGS) for h in headings), headings
    tables = sum(t.type == "table_open" for t in tokens)
    assert tables == len(_tables(md))  # each table block is the one table it looks like
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == sum(len(t) - 1 for t in _tables(md))  # no row from the payload


def test_html_report_escapes_every_payload(payload_run):
    _, _, html = payload_run
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the report's own sorting script
    assert "<img src=x" not in html and 'href="javascript:' not in html


def test_md_escape():
    from bench.analysis.formatting import md_escape

    assert md_escape("a\n# H") == "a # H"
    assert md_escape("# H").startswith("\\#") and md_escape("- x").startswith("\\-")
    assert md_escape("1. x") == "1\\. x" and md_escape("    code") == "code"
    assert md_escape("a | b") == "a \\| b" and md_escape("_x_y*z`") == "\\_x_y\\*z\\`"
    assert md_escape("<b>&") == "&lt;b&gt;&amp;" and md_escape("$x$") == "\\$x\\$"
    assert md_escape(LINK) == "\\[x\\](javascript:alert(1))"
    for number in ("-0.021", "+0.02", "0.95 ± 0.01", "[0.01, 0.02]", "[–, 1.2e-05]", "12"):
        assert md_escape(number) == number  # our numbers stay readable
    assert md_escape("[0.1, 0.2](javascript:x)").startswith("\\[")


# -- 3. "$" in a name is drawn as "$", and a figure that fails says why --------------------------

def test_dollar_names_draw_every_figure(dollar_run, tmp_path):
    written = render(dollar_run, tmp_path / "r")
    assert [p.name for p in written] == ["report.html", "report.md"]
    drawn = {p.stem for p in (tmp_path / "r" / "figures").iterdir()}
    assert {"fig1_loss", "fig1_accuracy", "fig2_heatmap", "fig5_timing",
            "fig7_decision_boundaries"} <= drawn
    md = (tmp_path / "r" / "report.md").read_text()
    assert "a \\$x^\\$ b" in md  # literal, not math, on GitHub too


def test_dollar_names_are_plain_text_in_every_matplotlib_text(dollar_run):
    run = bench.open_run(dollar_run)
    figs = bench.plots.all_figures(run)  # the notebook path: escaped once, not twice
    assert figs
    texts = []
    for fig in figs.values():
        fig.canvas.draw()  # draws every title, label, legend entry and tick label
        texts += [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    named = [t for t in texts if "x^" in t or "frac" in t]
    assert any("a \\$x^\\$ b" in t for t in named) and any("\\$\\frac{1}{0}\\$" in t for t in named)
    assert not any("\\\\$" in t for t in named)
    assert not any(matplotlib.cbook.is_math_text(t) for t in named)


def test_a_figure_that_fails_says_why(plain_run, tmp_path, monkeypatch):
    def broken(run, section):
        raise ValueError()  # an empty message, as some matplotlib errors have

    monkeypatch.setattr(bench_figures, "FIGURES", (broken,) + bench_figures.FIGURES[1:])
    with pytest.raises(Exception, match=r"fig0_lr_sensitivity .*ValueError\(\)"):
        render(plain_run, tmp_path / "r")


def test_a_figure_that_fails_to_save_says_why(plain_run, tmp_path, monkeypatch):
    def png(self):
        raise ValueError("\nx^\n  ^\nParseSyntaxException")  # mathtext's: starts with a newline

    monkeypatch.setattr(bench_figures.Figure, "png", png)
    with pytest.raises(Exception) as caught:
        render(plain_run, tmp_path / "r")
    first = str(caught.value).splitlines()[0]
    assert "fig1_loss" in first and "ValueError('\\nx^" in first


def test_bench_run_says_why_its_report_was_not_written(tmp_path, monkeypatch, capsys):
    def png(self):
        raise ValueError("\nx^\n  ^")

    monkeypatch.setattr(bench_figures.Figure, "png", png)
    suite = tmp_path / "tiny.toml"
    suite.write_text('name = "tiny"\n' + textwrap.dedent(DOLLAR_SUITE).replace(
        '"model.init" = ["default", "xavier_uniform"]', ""))
    status = main(["run", str(suite), "--workers", "1", "--out", str(tmp_path / "results"),
                   "--reports", str(tmp_path / "reports")])
    assert status == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("report not written"))
    assert "fig1_loss" in line and "ValueError('\\nx^" in line
    assert any(sections(RunData.open(p)) for p in (tmp_path / "results" / "tiny").iterdir())
