"""What many tests share: suites from text, one trial's spec, user modules on the path, and
``python -m bench`` as a shell starts it. Imported by name (``from tests.helpers import ...``);
conftest.py holds only the fixtures pytest applies itself."""

import math
import textwrap

import pandas as pd
import pytest
import tomli_w
import torch

from bench.suite import expand, parse_suite


def make_suite(body: str, name: str = "t"):
    """A suite from TOML text; ``body`` holds everything but the name."""
    return parse_suite(f'name = "{name}"\n' + textwrap.dedent(body), source="test.toml")


def one_spec(task: dict | str = None, model: dict | str = None, train: dict | str = None,
             seed: int = 0):
    """One trial's spec. Each table is a dict (``{"kind": "spiral", "points_per_class": 50}``)
    or, for a table that is easier to read as TOML, its text; a small spiral, an 8-unit ReLU
    net and 5 epochs of SGD unless told."""
    tables = {"task": task or {"kind": "spiral", "points_per_class": 50},
              "model": model or {"hidden": [8], "activation": "relu"},
              "train": train or {"optimizer": "sgd", "lr": 0.1, "epochs": 5}}
    body = f"seeds = [{seed}]\n" + "".join(
        f"[{name}]\n{table if isinstance(table, str) else tomli_w.dumps(table)}\n"
        for name, table in tables.items())
    (spec,) = expand(make_suite(body))
    return spec


def user_module(tmp_path, monkeypatch, body: str, name: str) -> str:
    """Write ``body`` as module ``name`` in ``tmp_path`` and make it importable (fresh)."""
    import sys

    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return name


# `python -m bench` as a shell starts it: Ctrl-C (SIGINT) delivered and handled. A child of the
# test process would otherwise inherit whatever signal state the test session has, and a
# SIGINT ignored or blocked there would make an interrupt test see a run that ignores Ctrl-C.
CTRL_C_AS_IN_A_SHELL = (
    "import runpy, signal, sys; "
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['bench', *sys.argv[1:]]; "
    "runpy.run_module('bench', run_name='__main__', alter_sys=True)")


def bench_command(*args) -> list[str]:
    """The argv of ``python -m bench ARGS`` with SIGINT as a terminal delivers it."""
    import sys

    return [sys.executable, "-c", CTRL_C_AS_IN_A_SHELL, *map(str, args)]


# The trials columns a packed trial must share with the same trial run alone.
PACKED_COLUMNS = ["status", "final_loss", "final_accuracy", "best_loss", "epochs_to_target",
           "dead_fraction", "saturated_fraction", "grad_norm", "n_params", "diverged_epoch",
           "final_test_loss", "final_test_accuracy"]


def specs_of(task, model, train, seeds=(0, 1, 2)):
    """One spec per seed of the same trial (a pack's members)."""
    return [one_spec(task=task, model=model, train=train, seed=s) for s in seeds]


def assert_same_numbers(packed, alone):
    """One packed result against the same trial run alone."""
    for key in PACKED_COLUMNS:
        a, b = packed.trial.get(key), alone.trial.get(key)
        if isinstance(b, float) and not math.isnan(b):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), key
        elif isinstance(b, float):
            assert math.isnan(a), key
        else:
            assert a == b, key
    for table in ("curves", "layers"):
        got, want = pd.DataFrame(getattr(packed, table)), pd.DataFrame(getattr(alone, table))
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want, rtol=1e-5, atol=1e-6)
    assert packed.state_dict.keys() == alone.state_dict.keys()
    for key, weight in alone.state_dict.items():
        torch.testing.assert_close(packed.state_dict[key], weight, rtol=1e-5, atol=1e-6)
