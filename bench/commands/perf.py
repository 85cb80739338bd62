"""``bench perf``: the harness measured (overhead, scaling, packing, orchestration; bench/perf.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.commands.common import positive
from bench.errors import UserError
from bench.provenance import cuda_unavailable_reason
from bench.suite import load_suite
from bench.suite.locate import resolve_suite


class Perf:
    """Measure the harness itself."""

    name = "perf"

    def add_to(self, sub, raw) -> None:
        perf = sub.add_parser("perf", help="measure the harness: instrumentation overhead; with "
                                           "--scaling SUITE the executors' throughput; with --pack "
                                           "trial packing against one trial at a time")
        perf.add_argument("--epochs", type=positive, default=300,
                          help="epochs each timed training runs (default: 300)")
        perf.add_argument("--repeats", type=positive, default=5,
                          help="times each case is timed; the best is kept (default: 5)")
        perf.add_argument("--threads", type=positive, default=1,
                          help="intra-op threads of each timed training (default: 1)")
        perf.add_argument("--scaling", type=Path, metavar="SUITE.toml",
                          help="time SUITE (its CPU points, --epochs each) with 1 worker x 1 and x 2 "
                               "threads and with --workers N, best of --repeats")
        perf.add_argument("--workers", type=positive, default=2,
                          help="with --scaling: the worker processes of the parallel case "
                               "(default: 2)")
        perf.add_argument("--cluster", metavar="local[:N]",
                          help="with --scaling: also time the suite on a Dask LocalCluster")
        perf.add_argument("--pack", action="store_true",
                          help="time --seeds trials one at a time against one pack of them")
        perf.add_argument("--orchestration", action="store_true",
                          help="time 50 and 400 init-only trials through `bench run` (1 and 2 "
                               "workers, whole processes) against a plain loop: start-up and cost "
                               "per trial (best of --repeats)")
        perf.add_argument("--seeds", type=positive, default=6, help="pack size for --pack")
        perf.add_argument("--device", default="cpu", help="device for --pack (cpu, cuda)")

    def locate(self, args: argparse.Namespace) -> None:
        if args.scaling is not None:
            args.scaling = resolve_suite(args.scaling)

    def __call__(self, args: argparse.Namespace, console: Console) -> int:
        from bench.perf import main as perf_main
        from bench.perf import pack_main, scaling_main
        if args.pack:
            reason = cuda_unavailable_reason(args.device)
            if reason:
                raise UserError(f"--device {args.device}: {reason}")
            return pack_main(args.epochs, args.repeats, args.threads, args.seeds,
                             args.device, console)
        if args.orchestration:
            from bench.orchestration import main as orchestration_main
            return orchestration_main(args.repeats, console)
        if args.scaling:
            return scaling_main(load_suite(args.scaling), args.epochs, args.repeats,
                                args.workers, console, args.cluster)
        return perf_main(args.epochs, args.repeats, args.threads)
