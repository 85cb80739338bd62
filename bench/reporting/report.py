"""``bench report``: a run folder -> one self-contained HTML file and a Markdown file with PNGs.

The report reads only the run folder (tables, manifest, stored weights). Its numbers come from
``summary``, its figures from ``figures``; this module formats them into tables and renders the
two templates in ``bench/reporting/templates``. Both formats hold the same content.
"""

from __future__ import annotations

import base64
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from bench import schema
from bench.analysis.formatting import (
    DASH,
    estimate,
    interval,
    md_escape,
    p_value,
    setting_text,
    short,
    signed,
)
from bench.analysis.sections import sections
from bench.analysis.statistics import CONFIDENCE
from bench.analysis.summary import BY_COLUMN, Comparison, Section, evaluated, tuned_keys
from bench.analysis.tables import Cell, Table
from bench.errors import UserError
from bench.results.names import check_run_names
from bench.results.reader import RunData, hashable, show
from bench.results.writer import atomic_write_bytes
from bench.version import __version__

FORMATS = ("html", "md")
METHODS = (
    f"Each cell is the mean over seeds ± the half-width of its two-sided {CONFIDENCE:.0%} Student "
    "t-interval (a single seed shows the value alone). Non-finite values (a diverged loss) and "
    "targets never reached are left out of a mean; the seed count says how many remained. "
    "Comparisons use Welch's two-sided t-test on the seeds of two settings that differ in one key "
    "only; the p-values of one table are Holm-corrected together, and a difference is called at "
    "α = 0.05. With fewer than two seeds on a side there is no test, and the table says so. "
    "Bands and error bars in the figures are the same t-intervals."
)


@dataclass
class RenderedFigure:
    name: str
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class SectionView:
    task: str
    findings: list[str]
    headline: Table
    comparisons: Table | None
    ranking: list[str]
    figures: list[RenderedFigure]
    main_metric: str
    notes: list[str] = field(default_factory=list)   # said under the headline table
    n_called: int = 0
    rankings: list = field(default_factory=list)     # of RankingView: a tuned run's answer
    left_out: list[str] = field(default_factory=list)  # one line per figure with nothing to show


# -- header ---------------------------------------------------------------------------------------

def _description(run: RunData) -> str:
    text = (run.manifest.get("suite") or {}).get("text") or ""
    try:
        return str(tomllib.loads(text).get("description", ""))
    except tomllib.TOMLDecodeError:
        return ""


_PLURALS = {"model.activation": "activations", "model.init": "inits", "train.lr": "learning rates",
            "train.accumulation_steps": "accumulation steps", "train.device": "devices",
            "variant": "variants", "task.kind": "tasks", "model.hidden": "widths",
            "train.optimizer": "optimizers", "train.batch_size": "batch sizes"}


def title(run: RunData) -> str:
    """What the run compared, in words: "4 activations × 2 inits × 3 accumulation steps on
    spiral, 5 seeds each" (a tuned run names what was tuned). The run id is provenance."""
    frame = evaluated(run)  # what trained: a swept device whose trials were skipped was not compared
    frame = frame if len(frame) else run.trials
    tuned = tuned_keys(run)
    counts = {k: len(run.levels(k, frame)) for k in run.varied_keys if k not in ("task.kind", *tuned)}
    axes = [f"{n} {_PLURALS.get(k, short(k) + ' values')}" for k, n in counts.items() if n > 1]
    tasks = [show(v) for v in run.levels("task.kind", frame)] if "task.kind" in frame else []
    seeds = len(run.levels("seed", frame))
    what = " × ".join(axes) or "one setting"
    on = f" on {', '.join(tasks)}" if tasks else ""
    at = f", each at its tuned {', '.join(short(k) for k in tuned)}" if tuned else ""
    return f"{what}{on}{at}, {seeds} seed{'s' if seeds != 1 else ''} each"


def _status_line(run: RunData) -> str:
    counts = Counter(run.trials["status"])
    parts = ", ".join(f"{n} {s}" for s, n in counts.most_common())
    return f"{len(run.trials)} trials ({parts})"


def _provenance(run: RunData) -> Table:
    m, machine = run.manifest, run.manifest.get("machine") or {}
    suite = m.get("suite") or {}
    rows = [
        ("run", f"{run.run_id} ({m.get('state', 'unknown state')})"),
        ("started / finished", f"{m.get('started_at', '?')} / {m.get('finished_at', DASH)}"),
        ("host", f"{machine.get('host', '?')}: {machine.get('platform', '?')}"),
        ("CPU", f"{machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores)"),
        ("GPU", ", ".join(machine.get("gpus") or []) or "none"),
        ("versions", f"Python {machine.get('python', '?')}, torch {machine.get('torch', '?')}"
                     f"{', CUDA ' + machine['torch_cuda'] if machine.get('torch_cuda') else ''}, "
                     f"numpy {machine.get('numpy', '?')}, pandas {machine.get('pandas', '?')}"),
        ("execution", f"{m.get('executor', '?')}: {m.get('workers', '?')} workers × "
                      f"{m.get('threads', '?')} threads"
                      f"{' on ' + m['scheduler'] if m.get('scheduler') else ''}; "
                      f"{len(m.get('sessions') or [])} session(s)"),
        ("packing", _packing(run)),
        ("code", f"actbench {m.get('bench_version', '?')}, git {machine.get('git_commit') or 'unknown'}"),
        ("suite", f"{suite.get('source', '?')} (sha256 {str(suite.get('sha256', '?'))[:12]}…)"),
    ]
    return Table(["", ""], [[Cell(k), Cell(v)] for k, v in rows])


def _packing(run: RunData) -> str:
    """Which trials trained in packs: their time and memory columns are shares of a pack's."""
    trials = run.trials
    if "pack_size" not in trials or not (trials["pack_size"].fillna(1) > 1).any():
        return "none: every trial trained alone"
    packed = trials[trials["pack_size"].fillna(1) > 1]
    by_device = ", ".join(f"{n} on {device}" for device, n in
                          packed.groupby("train.device").size().items())
    sizes = ", ".join(str(int(v)) for v in sorted(packed["pack_size"].unique()))
    return (f"{len(packed)} of {len(trials)} trials ({by_device}) trained in packs of {sizes} "
            "seeds; their time and memory columns are the pack's divided by its size")


def _grid(run: RunData) -> Table:
    rows = [[Cell(key), Cell(", ".join(show(v) for v in run.levels(key)))] for key in run.varied_keys]
    rows.append([Cell("seed"), Cell(", ".join(show(v) for v in run.levels("seed")))])
    return Table(["swept key", "values"], rows)


def _fixed(run: RunData) -> str:
    return "; ".join(f"{k} = {show(v)}" for k, v in run.fixed.items() if v is not None)


def _label(run: RunData, row) -> str:
    return f"{setting_text(run.varied_keys, run.point(row))}, seed {row['seed']}"


def _statuses(run: RunData) -> tuple[Table, list[str]]:
    counts = Counter(run.trials["status"])
    table = Table(["status", "trials"], [[Cell(s), Cell(str(n), n)] for s, n in counts.most_common()],
                  [False, True])
    notes = list(run.notes)  # the folder's own state first: set-aside parts, an unfinished run
    skipped = run.trials[run.trials["status"] == schema.SKIPPED]
    for reason, group in skipped.groupby("error", dropna=False, sort=False):
        where = {k: sorted({show(v) for v in group[k]}) for k in run.varied_keys}
        common = ", ".join(f"{short(k)} = {v[0]}" for k, v in where.items()
                           if len(v) == 1 and len(run.levels(k)) > 1)
        notes.append(f"{len(group)} trials skipped ({common or 'various settings'}): {reason}")
    for _, row in run.trials[run.trials["status"] == schema.FAILED].iterrows():
        notes.append(f"failed: {_label(run, row)}: {row['error']}")
    for _, row in run.trials[run.trials["status"] == schema.DIVERGED].iterrows():
        notes.append(f"diverged: {_label(run, row)}: {row['error']}")
    return table, notes


# -- sections -------------------------------------------------------------------------------------

def _constant_zero(section: Section) -> list:
    """Metrics that are exactly 0 in every trial: a column of zeros says less than a sentence."""
    out = []
    for m in section.metrics:
        values = section.frame[m.column].dropna()
        if m.kind == "fraction" and len(values) and (values == 0).all():
            out.append(m)
    return out


def _headline(section: Section) -> Table:
    columns = [short(k) for k in section.keys] + ["seeds"]
    numeric = [False] * len(section.keys) + [True]
    units = {}
    zero = _constant_zero(section)
    metrics = [m for m in section.metrics if m not in zero]
    for m in metrics:
        unit, scale = m.unit(section.frame[m.column])
        units[m.column] = scale
        columns.append(f"{m.label} ({unit})" if unit else m.label)
        numeric.append(True)
    bests = {m.column: m.best([r.estimates[m.column].mean for r in section.rows]) for m in metrics}
    rows = []
    for i, r in enumerate(section.rows):
        seeds = f"{r.seeds}" + (f" ({r.diverged} diverged)" if r.diverged else "")
        cells = [Cell(show(r.point[k]), _sortable(r.point[k])) for k in section.keys]
        cells.append(Cell(seeds, r.seeds))
        for m in metrics:
            est = r.estimates[m.column]
            text = estimate(est, units[m.column])
            if m.column == "epochs_to_target" and r.reached:
                reached, ran = r.reached
                text = "not reached" if reached == 0 else (
                    text if reached == ran else f"{text} ({reached}/{ran} reached)")
            cells.append(Cell(text, est.mean if math.isfinite(est.mean) else None,
                              best=i in bests[m.column]))
        rows.append(cells)
    return Table(columns, rows, numeric)


def _sortable(value):
    value = hashable(value)
    return value if isinstance(value, (int, float)) else show(value)


def _comparisons(section: Section) -> Table | None:
    if not any(c.diff.n_a and c.diff.n_b for c in section.comparisons):
        return None  # no pair with numbers on both sides (every seed diverged, say)
    main = section.main
    unit, scale = main.unit(section.frame[main.column])
    others = [k for k in section.keys if k != "model.activation"]
    d_unit = main.diff_unit or unit
    columns = [short(k) for k in others] + ["a", "b", f"a − b ({d_unit})" if d_unit else "a − b",
                                            "95% CI", "seeds", "detectable", "p (Welch)",
                                            "p (Holm)", "verdict"]
    rows = []
    for c in section.comparisons:
        mdd = c.diff.detectable()
        rows.append([Cell(show(c.context[k]), _sortable(c.context[k])) for k in others] + [
            Cell(show(c.a)), Cell(show(c.b)), Cell(signed(c.diff.diff * scale, 3), c.diff.diff),
            Cell(interval(c.diff.low, c.diff.high, scale)),
            Cell(f"{c.diff.n_a} vs {c.diff.n_b}"),
            Cell(f"{mdd * scale:.3g}" if math.isfinite(mdd) else DASH, _num(mdd)),
            Cell(p_value(c.diff.p), _num(c.diff.p)),
            Cell(p_value(c.p_holm), _num(c.p_holm)), Cell(c.verdict(main), best=_called(c))])
    numeric = [False] * len(others) + [False, False, True, True, True, True, True, True, False]
    return Table(columns, rows, numeric)


@dataclass
class RankingView:
    title: str
    table: Table
    notes: list[str]


def _rankings(run: RunData, section: Section) -> list[RankingView]:
    """The first table of a tuned run: each setting at its pick, by the test metric."""
    from bench.analysis.ranking import rankings

    out = []
    for r in rankings(run, section):
        unit, scale = r.metric.unit(section.frame[r.metric.column])
        head = [short(k) for k in r.keys] + [f"{short(k)} (tuned)" for k in r.tuned]
        label = f"{r.metric.label} ({unit})" if unit else r.metric.label
        columns = ["rank"] + head + [label, "seeds"]
        if r.second:
            s_unit, s_scale = r.second.unit(section.frame[r.second.column])
            columns.append(f"{r.second.label} ({s_unit})" if s_unit else r.second.label)
        columns += [f"{r.tune_metric} at the pick (tuning seeds)", "behind the best",
                    "detectable", "p (Holm)", "verdict"]
        d_unit = r.metric.diff_unit or unit
        rows = []
        for i, row in enumerate(r.rows, 1):
            cells = [Cell(str(i), i)]
            cells += [Cell(show(row.setting.get(k)), _sortable(row.setting.get(k))) for k in r.keys]
            cells += [Cell(show(row.picked.get(k)) + (" (edge)" if row.at_edge else ""),
                           _sortable(row.picked.get(k))) for k in r.tuned]
            cells += [Cell(estimate(row.main, scale), _num(row.main.mean), best=i == 1),
                      Cell(str(row.main.n), row.main.n)]
            if r.second:
                cells.append(Cell(estimate(row.second, s_scale), _num(row.second.mean)))
            t_unit, t_scale = (BY_COLUMN[r.tune_metric].unit(section.frame[r.metric.column])
                               if r.tune_metric in BY_COLUMN else ("", 1.0))
            cells.append(Cell(estimate(row.tuning, t_scale) if row.tuning else DASH))
            d = row.vs_best
            if d is None:
                cells += [Cell(DASH), Cell(DASH), Cell(DASH)]
            else:
                behind = d.diff if r.metric.better == "max" else -d.diff
                mdd = d.detectable()
                cells += [Cell(f"{behind * scale:.3g}{' ' + d_unit if d_unit else ''}", behind),
                          Cell(f"{mdd * scale:.3g}" if math.isfinite(mdd) else DASH, _num(mdd)),
                          Cell(p_value(row.p_holm), _num(row.p_holm))]
            cells.append(Cell(row.verdict(r.metric), best=i == 1))
            rows.append(cells)
        numeric = [True] + [False] * len(head) + [True, True] + ([True] if r.second else []) + [
            True, True, True, True, False]
        title = (f"Each setting at its tuned {', '.join(short(k) for k in r.tuned)}, ranked by "
                 f"{r.metric.label} over {r.seeds} evaluation seeds ({r.device})")
        out.append(RankingView(title, Table(columns, rows, numeric), r.notes))
    return out


def _picks(run: RunData) -> Table | None:
    """Every setting's pick: its candidates' validation means, and the warnings."""
    tuning = run.manifest.get("tuning") or {}
    picks = [p for p in tuning.get("picks", []) if p.get("tuned")]
    if not picks:
        return None
    keys = tuning.get("keys", [])
    values = []
    for p in picks:
        for c in p.get("candidates", []):
            values.append(tuple(show(c["values"].get(k)) for k in keys))
    values = list(dict.fromkeys(values))
    columns = ["setting"] + [", ".join(v) for v in values] + ["pick", "note"]
    rows = []
    for p in picks:
        means = {tuple(show(c["values"].get(k)) for k in keys): c for c in p.get("candidates", [])}
        chosen = tuple(show((p.get("values") or {}).get(k)) for k in keys)
        cells = [Cell(p.get("setting", ""))]
        for v in values:
            c = means.get(v)
            text = DASH if not c or c.get("mean") is None else f"{c['mean']:.4g}"
            if c and c.get("diverged_or_failed"):
                text += f" ({c['diverged_or_failed']} bad)"
            cells.append(Cell(text, c.get("mean") if c else None, best=v == chosen))
        notes = [n for n in ([("at the edge of the grid" if p.get("at_edge") else ""),
                              ("a tie" if p.get("tie") else ""), p.get("note", "")]) if n]
        cells += [Cell(", ".join(chosen) if p.get("values") else "none"), Cell("; ".join(notes))]
        rows.append(cells)
    return Table(columns, rows, [False] + [True] * len(values) + [False, False])


def _num(x: float):
    return x if math.isfinite(x) else None


def _called(c: Comparison) -> bool:
    return c.diff.testable and math.isfinite(c.p_holm) and c.p_holm < 0.05


# -- rendering ------------------------------------------------------------------------------------

def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bench.reporting", "templates"),
                             autoescape=jinja2.select_autoescape(["html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["md"] = md_escape
    return env


def parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"unknown report format {bad[0] if bad else text!r}; valid choices: "
                        f"{', '.join(FORMATS)} (comma-separated, e.g. html,md)", key="--format")
    return formats


def default_out(run: RunData, root: Path = Path("reports")) -> Path:
    """reports/<suite>/<run-id>/, once both names are checked to be plain folder names: a
    doctored manifest (a suite name of ``../../X``) is a UserError, never a path outside root."""
    check_run_names(run)
    return root / run.suite_name / run.run_id


def figure_stems(tasks: list[str]) -> dict[str, str]:
    """The file-name prefix of each task's figures where a run has several tasks: the task's
    name (a user task's import path, read from the trials table) with everything but letters,
    digits, '_' and '-' replaced, so that no figure file lands outside figures/; made unique."""
    if len(tasks) < 2:
        return dict.fromkeys(tasks, "")
    stems, taken = {}, set()
    for task in tasks:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(task)).strip("_") or "task"
        unique, n = stem, 1
        while unique in taken:
            n += 1
            unique = f"{stem}_{n}"
        taken.add(unique)
        stems[task] = unique + "_"
    return stems


def _draw(fig, task: str) -> RenderedFigure:
    """A figure as the report holds it: a drawing error (matplotlib can raise one with an empty
    or multi-line message) names the figure and keeps the exception's repr."""
    from bench.reporting.figures import FigureError

    try:
        png = fig.png()
    except UserError:
        raise
    except Exception as exc:
        raise FigureError(f"figure {fig.name} of task {task!r} could not be drawn: "
                          f"{exc!r}") from exc
    return RenderedFigure(fig.name, fig.title, fig.caption, png)


def _claims(run: RunData) -> tuple[Table | None, str]:
    """The suite's [[expect]] claims as `bench check` judges them (or why they cannot be)."""
    from bench.analysis.check import check, describe_point

    try:
        results = check(run)
    except UserError as exc:
        return None, f"The suite's claims cannot be checked on this run: {exc}"
    if not results:
        return None, ""
    rows = [[Cell(str(r.index), r.index), Cell(r.text()), Cell(r.claim.metric),
             Cell(describe_point(r)), Cell(r.bound()), Cell(r.verdict, best=r.verdict == "pass"),
             Cell(r.warning or ("the 95% interval clears the bound" if r.points else DASH))]
            for r in results]
    failed = sum(r.verdict == "fail" for r in results)
    note = (f"{len(results) - failed} of {len(results)} claims hold" if not failed
            else f"{failed} of {len(results)} claims FAIL")
    loose = sum(bool(r.warning) for r in results if r.verdict != "not checked")
    if loose:
        note += f"; {loose} rest on too few seeds (the interval crosses the bound)"
    return Table(["#", "claim", "metric", "value (worst point)", "bound", "verdict", "seeds enough?"],
                 rows, [True, False, False, False, False, False, False]), note


def build(run: RunData) -> dict:
    """Everything both templates show, computed once."""
    from bench.reporting.figures import figures  # matplotlib is imported only when a report is drawn

    status, status_notes = _statuses(run)
    claims, claims_note = _claims(run)
    views = []
    secs = sections(run)
    stems = figure_stems([s.task for s in secs])
    for section in secs:
        withheld = len(run.left_out)
        left_out: list[str] = []
        rendered = [_draw(f, section.task) for f in figures(run, section, left_out)]
        for f in rendered:
            f.name = stems[section.task] + f.name
        notes = [f"{m.label}: 0 in every trial, so the column is left out."
                 for m in _constant_zero(section)] + run.left_out[withheld:]  # untrusted code
        said = {f.text for f in section.findings}  # the ranking's headline is a finding too
        views.append(SectionView(section.task, section.findings, _headline(section),
                                 _comparisons(section),
                                 [r for r in section.ranking if r not in said], rendered,
                                 section.main.label, notes,
                                 sum(_called(c) for c in section.comparisons),
                                 _rankings(run, section), left_out))
    return {
        "title": title(run),
        "suite": run.suite_name,
        "run_id": run.run_id,
        "status_line": _status_line(run),
        "n_failed": int((run.trials["status"] == schema.FAILED).sum()),
        "description": _description(run),
        "provenance": _provenance(run),
        "grid": _grid(run),
        "fixed": _fixed(run),
        "status": status,
        "status_notes": status_notes,
        "claims": claims,
        "claims_note": claims_note,
        "sections": views,
        "picks": _picks(run),
        "tuning": run.manifest.get("tuning") or {},
        "methods": METHODS,
        "n_trials": len(run.trials),
        "n_ran": len(run.ran),
        "version": __version__,
    }


def render(run_dir: Path, out: Path | None = None, formats=FORMATS,
           trust_code: bool | frozenset[str] = False) -> list[Path]:
    """Write the report of ``run_dir`` into ``out`` (default reports/<suite>/<run-id>/). The
    figures that rebuild models with user code the folder names are drawn only with
    ``trust_code`` (True, or the names trusted); else a note says what was left out."""
    run = RunData.open(Path(run_dir), trust_code=trust_code)
    check_run_names(run)  # before any path is built, --out or not: the folder is doctored
    out = Path(out) if out is not None else default_out(run)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the report folder: {exc.strerror}", source=str(out)) from None
    context = build(run)
    env = _env()
    written = []
    if "md" in formats:
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for view in context["sections"]:
            for fig in view.figures:
                atomic_write_bytes(fig_dir / f"{fig.name}.png", fig.png)
        text = env.get_template("report.md.j2").render(**context)
        atomic_write_bytes(out / "report.md", text.encode())
        written.append(out / "report.md")
    if "html" in formats:
        text = env.get_template("report.html.j2").render(**context)
        atomic_write_bytes(out / "report.html", text.encode())
        written.insert(0, out / "report.html")
    return written
