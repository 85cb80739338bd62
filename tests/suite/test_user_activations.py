"""User-defined activations: named by import path (with keyword arguments) or registered by an
installed package; probed like the built-ins; every mistake caught before a trial runs."""

import math
from pathlib import Path

import pytest
import torch

import bench
from bench.plugins import registered
from bench.suite import expand
from bench.training.activations import resolve
from bench.training.loop import run_trial
from bench.training.model import MLP
from bench.training.packing import plan
from bench.training.tasks import make_task
from tests.helpers import make_suite, one_spec, user_module

ROOT = Path(__file__).resolve().parents[2]
SWISH = '"examples.my_activations:swish"'
TRAIN = 'optimizer = "adam"\nlr = 0.01\nepochs = 10'


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # `examples` as the README runs it, from the root
    resolve.cache_clear()
    yield
    resolve.cache_clear()


def test_a_function_by_import_path_gives_the_builtins_numbers():
    mine = run_trial(one_spec(model=f"hidden = [8, 8]\nactivation = {SWISH}", train=TRAIN)).trial
    silu = run_trial(one_spec(model='hidden = [8, 8]\nactivation = "silu"', train=TRAIN)).trial
    assert mine["status"] == "ok" and mine["model.activation"] == "examples.my_activations:swish"
    assert mine["final_loss"] == silu["final_loss"]  # swish at beta = 1 is SiLU, op for op


def test_a_module_class_with_keyword_arguments():
    act = '{ fn = "examples.my_activations:ParametricSwish", beta = 2.0 }'
    spec = one_spec(model=f"hidden = [8]\nactivation = {act}", train=TRAIN)
    assert spec.model.activation_args == '{"beta": 2.0}'
    result = run_trial(spec)
    assert result.trial["status"] == "ok" and result.trial["model.activation_args"] == '{"beta": 2.0}'
    beta = [v for k, v in result.state_dict.items() if k.endswith("beta")]
    assert beta and float(beta[0]) != 2.0  # a learnable parameter: trained with the weights
    assert spec.trial_id != one_spec(model='hidden = [8]\nactivation = '
                                     '{ fn = "examples.my_activations:ParametricSwish", beta = 1.0 }',
                                     train=TRAIN).trial_id


def test_user_activations_train_one_at_a_time_not_packed():
    suite = make_suite(f"""
        seeds = [0, 1, 2]
        [task]
        kind = "spiral"
        points_per_class = 30
        [model]
        hidden = [8]
        activation = {SWISH}
        [train]
        {TRAIN.replace(chr(10), chr(10) + '        ')}
        """)
    assert [len(u) for u in plan(expand(suite), "on")] == [1, 1, 1]


def test_dead_and_saturated_follow_the_documented_definitions(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch
        def clip(x):
            \"\"\"max(0, min(x, 0.1)): dead below 0, flat above 0.1\"\"\"
            return torch.clamp(x, 0.0, 0.1)
        """, "user_acts")
    spec = one_spec(model=f'hidden = [16, 16]\nactivation = "{name}:clip"',
                    train='optimizer = "sgd"\nlr = 0.1\nepochs = 0')
    rows = {r["layer"]: r for r in run_trial(spec).layers}
    torch.manual_seed(spec.seed)
    data = make_task(spec.task)
    model = MLP(spec.model, 2, 3)
    h = data.x_train
    for layer, linear in enumerate(model.hidden_linears):
        pre = linear(h).detach()
        out = torch.clamp(pre, 0.0, 0.1)
        slope = ((pre > 0) & (pre < 0.1)).float()  # the clamp's derivative, by hand
        dead = (out == 0).all(0).float().mean().item()
        saturated = (slope.abs() < 1e-3).all(0).float().mean().item()
        assert rows[layer]["dead_fraction"] == pytest.approx(dead)
        assert rows[layer]["saturated_fraction"] == pytest.approx(saturated)
        h = out
    assert any(r["saturated_fraction"] > 0 for r in rows.values())  # the cases occur
    assert any(r["saturated_fraction"] > r["dead_fraction"] for r in rows.values())


@pytest.mark.parametrize("body, path, expected", [
    ("", "no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    ("import torch\n", "{m}:missing", "has no 'missing'"),
    ("PI = 3.14\n", "{m}:PI", "neither an nn.Module class nor a function"),
    ("import torch\ndef total(x):\n    return x.sum()\n", "{m}:total", "its input's shape"),
    ("def broken(x):\n    raise RuntimeError('boom')\n", "{m}:broken", "RuntimeError: boom"),
    ("raise ImportError('a missing dependency')\n", "{m}:f", "a missing dependency"),
])
def test_a_bad_activation_fails_before_any_trial_with_key_and_path(tmp_path, monkeypatch, body,
                                                                   path, expected):
    name = user_module(tmp_path, monkeypatch, body, name="bad_acts")
    path = path.format(m=name)
    with pytest.raises(bench.UserError) as info:
        one_spec(model=f'hidden = [4]\nactivation = "{path}"')
    assert info.value.key == "model.activation"
    assert path in str(info.value) and expected in str(info.value)
    assert "[model] activation" in str(info.value)


def test_a_package_can_register_names_by_entry_point(tmp_path, monkeypatch, capsys):
    dist = tmp_path / "acts_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acts-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[actbench.activations]\nmyswish = examples.my_activations:swish\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registered("actbench.activations")["myswish"] == ("examples.my_activations:swish",
                                                             "acts-plugin")
    row = run_trial(one_spec(model='hidden = [8]\nactivation = "myswish"', train=TRAIN)).trial
    assert row["status"] == "ok" and not math.isnan(row["final_loss"])
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "myswish" in out and "acts-plugin" in out
