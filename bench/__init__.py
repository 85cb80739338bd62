"""actbench: how activations, inits, learning rates and accumulation change training.

The Python API (bench/api.py), loaded on first use so that ``python -m bench`` and trial
workers import only what they need:

    bench.load_suite(path_or_toml_text) -> Suite     bench.make_suite(name, task=..., ...)
    bench.run(suite, workers=..., out=...) -> Run    bench.open_run(run_dir) -> Run
    bench.plots.curves(run), ...                     bench.UserError: every user mistake
"""

from bench.version import __version__

_API = ("load_suite", "make_suite", "run", "open_run", "Run", "Claims")
__all__ = [*_API, "UserError", "expand", "plots", "__version__"]


def __getattr__(name: str):
    if name in _API:
        from bench import api
        return getattr(api, name)
    if name == "UserError":
        from bench.errors import UserError
        return UserError
    if name == "expand":
        from bench.suite import expand
        return expand
    if name == "plots":
        import importlib
        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
