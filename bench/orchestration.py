"""``bench perf --orchestration``: what the harness costs around the trials, as a ratio.

The same init-only spiral trials (``epochs = 0``: data, model, one evaluation with the probes)
are run two ways, each as a whole fresh process, so start-up is in the figure: ``python -m
bench run SUITE --no-report`` at each worker count, and a plain loop that draws the same data
and builds the same models with actbench's own functions, evaluates them once and stores
nothing. Two sizes give the start-up (the smaller run) and the marginal cost per trial (the
difference over the extra trials), for both; a process that only imports what ``bench run``
imports gives the start-up past the imports. Run in one command, interleaved, best of
``repeats``: the machines here are shared and noisy, so only the ratios are meant to be read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
name = "orchestration"
seeds = {seeds}
[task]
kind = "spiral"
[model]
hidden = [100]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.01
epochs = 0
[sweep]
"model.activation" = ["relu", "tanh"]
"""

# The plain loop: the same trials (bench.suite.expand), the same data and models, one forward
# pass each under no_grad; no probes, no tables, no weights, no processes.
PLAIN = """
import sys, torch, torch.nn.functional as F
from bench.suite import load_suite, expand
from bench.training import draw_trial
torch.set_num_threads(1)
for spec in expand(load_suite(sys.argv[1])):
    data, model = draw_trial(spec)
    with torch.no_grad():
        float(F.cross_entropy(model(data.x_train), data.y_train))
"""

IMPORTS = "import bench.cli, bench.execution.run"


def _timed(argv: list[str], cwd: Path) -> float:
    # The child imports the same actbench as this process, installed or not.
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def orchestration(sizes=(50, 400), workers=(1, 2), repeats: int = 1) -> list[dict]:
    """Per trial count: the plain loop's wall time and actbench's at each worker count (whole
    processes, best of ``repeats``), the marginal cost per trial between the sizes, and for
actbench the smaller run's time past its imports."""
    best: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory(prefix="actbench-orchestration-") as tmp:
        tmp = Path(tmp)
        suites = {}
        for n in sizes:
            path = tmp / f"s{n}.toml"
            path.write_text(SUITE.format(seeds=list(range((n + 1) // 2))))
            suites[n] = path
        for r in range(repeats):
            t = _timed([sys.executable, "-c", IMPORTS], tmp)
            best["imports"] = min(best.get("imports", float("inf")), t)
            for n in sizes:
                t = _timed([sys.executable, "-c", PLAIN, str(suites[n])], tmp)
                best[("plain", n)] = min(best.get(("plain", n), float("inf")), t)
                for w in workers:
                    out = tmp / f"out-{n}-{w}-{r}"
                    t = _timed([sys.executable, "-m", "bench", "run", str(suites[n]),
                                "--workers", str(w), "--no-report", "--out", str(out)], tmp)
                    best[(w, n)] = min(best.get((w, n), float("inf")), t)
    trials = {n: 2 * ((n + 1) // 2) for n in sizes}
    rows = []
    for how in ("plain", *workers):
        row = {"how": "plain loop" if how == "plain" else f"actbench, {how} worker(s)"}
        for n in sizes:
            row[f"{trials[n]} trials s"] = best[(how, n)]
        lo, hi = min(sizes), max(sizes)
        row["ms per trial"] = 1e3 * (best[(how, hi)] - best[(how, lo)]) / (trials[hi] - trials[lo])
        rows.append(row)
    plain = rows[0]
    for row in rows[1:]:
        row["vs plain"] = {k: row[k] / plain[k] for k in row if k.endswith(" s")}
        # What the smaller run costs beyond importing actbench: the start-up goal's measure.
        row["past imports s"] = row[f"{trials[lo]} trials s"] - best["imports"]
    plain["past imports s"] = float("nan")
    return rows


def main(repeats: int, console) -> int:
    from rich.table import Table

    console.print("orchestration: init-only spiral trials (epochs = 0), whole processes "
                  f"(start-up included), best of {repeats}; the plain loop draws the same data "
                  "and models and evaluates them once, storing nothing", soft_wrap=True)
    rows = orchestration(repeats=repeats)
    table = Table()
    columns = [c for c in rows[0] if c not in ("how", "vs plain")]
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    table.add_column("vs plain", justify="right")
    for row in rows:
        ratio = ", ".join(f"{v:.2f}x" for v in row.get("vs plain", {}).values())
        table.add_row(row["how"], *(_cell(row[c], c) for c in columns), ratio or "—")
    console.print(table)
    first = next(c for c in columns if c.endswith("trials s"))
    console.print(f"importing what bench run imports, alone: "
                  f"{rows[1][first] - rows[1]['past imports s']:.2f} s; 'past imports' is the "
                  f"{first.split()[0]}-trial run less that")
    return 0


def _cell(value: float, column: str) -> str:
    if value != value:
        return "—"
    return f"{value:.2f}" if column.endswith(" s") else f"{value:.1f}"
