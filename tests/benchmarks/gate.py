"""`tox -e bench`: time the speed guards, save the run, and compare it with the baseline.

    python tests/benchmarks/gate.py [--threshold 150] [pytest options...]

The first run on a machine has nothing to compare with: it is saved as the baseline, and the
gate passes. Every later run is saved too, and fails when a benchmark's median exceeds the
baseline's by more than ``--threshold`` percent. To take a new baseline, delete
``.benchmarks/`` (or pass ``--benchmark-compare=NNNN`` to compare with run NNNN).

150% (a median over 2.5x its baseline) is what this project's 2-core VM needs: over four
unchanged runs a median grew by up to 2.26x over the baseline's (1.55x typical spread), even
with malloc's thresholds fixed (tox.ini). On a quiet machine pass a lower one, e.g.
``tox -e bench -- --threshold 20``.
"""

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / ".benchmarks"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=150.0,
                        help="percent a median may grow over the baseline's (default 150)")
    args, rest = parser.parse_known_args(argv)
    from pytest_benchmark.utils import get_machine_id

    # pytest-benchmark keeps one folder per machine id (OS, Python, bits) and resolves
    # --benchmark-compare=NNNN in this machine's folder only: the baseline must come from there
    saved = sorted((STORAGE / get_machine_id()).glob("*.json"))
    options = [str(Path(__file__).parent), "-q", "--benchmark-enable", "--benchmark-autosave",
               f"--benchmark-storage=file://{STORAGE}", "--benchmark-columns=median,iqr,rounds",
               "--benchmark-sort=name"]
    if saved:  # against the baseline, the first saved run: a slow run saved later is no new norm
        baseline = saved[0].name.split("_", 1)[0]
        options += [f"--benchmark-compare={baseline}",
                    f"--benchmark-compare-fail=median:{args.threshold:g}%"]
    else:
        print(f"no saved benchmark run in {STORAGE}: this run becomes the baseline", flush=True)
    sys.path.insert(0, str(ROOT))  # `tests.helpers` is imported as a package from the root
    return pytest.main(options + rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
