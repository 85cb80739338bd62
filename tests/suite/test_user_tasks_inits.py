"""User-defined inits and tasks: named by import path (with keyword arguments) or registered by
an installed package; the same numbers as the functions give when called by hand; every
mistake caught before a trial runs, naming the key and the path."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import bench
from bench.execution.run import RunOptions, run_suite
from bench.results.reader import RunData
from bench.suite import expand
from bench.training import inits, tasks
from bench.training.loop import run_pack, run_trial
from bench.training.packing import plan
from bench.training.tasks import make_task
from tests.helpers import make_suite, one_spec, user_module

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from examples.my_tasks import moons, scaled_normal, sine  # noqa: E402

MOONS = 'kind = "examples.my_tasks:moons"\npoints = 120'
SCALED = '{ fn = "examples.my_tasks:scaled_normal", gain = 1.5 }'
TRAIN = 'optimizer = "adam"\nlr = 0.01\nepochs = 10'


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # `examples` as the README runs it, from the root
    inits.resolve.cache_clear()
    tasks.resolve_task.cache_clear()
    yield
    inits.resolve.cache_clear()
    tasks.resolve_task.cache_clear()


# -- inits ----------------------------------------------------------------------------------

def _by_hand(seed: int, widths: list[int], init) -> list[nn.Linear]:
    """What the trial must build: data first from the seed, then Linear layers in forward
    order, then ``init`` on each, input side first."""
    torch.manual_seed(seed)
    make_task(one_spec().task)
    layers = [nn.Linear(a, b) for a, b in zip(widths, widths[1:])]
    with torch.no_grad():
        for layer in layers:
            init(layer)
    return layers


def test_an_init_by_import_path_with_arguments_gives_the_weights_it_draws_by_hand():
    spec = one_spec(model=f"hidden = [8, 8]\nactivation = \"relu\"\ninit = {SCALED}",
                    train='optimizer = "sgd"\nlr = 0.1\nepochs = 0', seed=3)
    assert (spec.model.init, spec.model.init_args) == ("examples.my_tasks:scaled_normal",
                                                       '{"gain": 1.5}')
    result = run_trial(spec)
    assert result.trial["model.init"] == "examples.my_tasks:scaled_normal"
    layers = _by_hand(3, [2, 8, 8, 3], lambda layer: scaled_normal(layer.weight, layer, gain=1.5))
    stored = list(result.state_dict.values())
    for i, layer in enumerate(layers):
        torch.testing.assert_close(stored[2 * i], layer.weight, rtol=0, atol=0)
        assert (stored[2 * i + 1] == 0).all()  # the function zeroes the biases
    # another gain is another trial
    assert spec.trial_id != one_spec(model="hidden = [8, 8]\nactivation = \"relu\"\ninit = "
                                     "{ fn = \"examples.my_tasks:scaled_normal\", gain = 1.0 }",
                                     train='optimizer = "sgd"\nlr = 0.1\nepochs = 0',
                                     seed=3).trial_id


def test_an_init_that_returns_a_tensor_is_copied_in_and_biases_stay_as_built(tmp_path,
                                                                              monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch
        def eye(weight, layer, scale=1.0):
            return scale * torch.eye(*weight.shape)
        """, "ret_init")
    result = run_trial(one_spec(model=f'hidden = [8]\nactivation = "relu"\ninit = '
                                f'{{ fn = "{name}:eye", scale = 0.5 }}',
                                train='optimizer = "sgd"\nlr = 0.1\nepochs = 0'))
    layers = _by_hand(0, [2, 8, 3], lambda layer: None)  # PyTorch's default, then the init
    stored = list(result.state_dict.values())
    torch.testing.assert_close(stored[0], 0.5 * torch.eye(8, 2))
    torch.testing.assert_close(stored[1], layers[0].bias)  # not touched: as PyTorch built it


def test_a_user_init_packs_and_each_member_is_its_own_trial():
    suite = make_suite(f"""
        seeds = [0, 1, 2]
        [task]
        kind = "spiral"
        points_per_class = 30
        [model]
        hidden = [8]
        activation = "relu"
        init = {SCALED}
        [train]
        {TRAIN.replace(chr(10), chr(10) + '        ')}
        """)
    specs = expand(suite)
    assert [len(u) for u in plan(specs, "on")] == [3]
    for got, spec in zip(run_pack(specs), specs):
        want = run_trial(spec)
        assert got.trial["pack_size"] == 3
        assert got.trial["final_loss"] == pytest.approx(want.trial["final_loss"], rel=1e-5)
    # a table with fn alone is the name: the same trial
    plain = one_spec(model='hidden = [8]\nactivation = "relu"\ninit = "xavier_uniform"')
    table = one_spec(model='hidden = [8]\nactivation = "relu"\ninit = { fn = "xavier_uniform" }')
    assert plain.trial_id == table.trial_id and table.model.init_args == ""


@pytest.mark.parametrize("body, value, expected", [
    ("", '"no_such_init_mod:f"', "cannot import 'no_such_init_mod'"),
    ("X = 1\n", '"{m}:X"', "not a function f(weight, layer"),
    ("def f(weight, layer):\n    raise RuntimeError('boom')\n", '"{m}:f"', "RuntimeError: boom"),
    ("def f(weight):\n    pass\n", '"{m}:f"', "TypeError"),
    ("import torch\ndef f(weight, layer):\n    return torch.zeros(2)\n", '"{m}:f"',
     "weight's shape (4, 3)"),
    ("def f(weight, layer):\n    weight.fill_(float('nan'))\n", '"{m}:f"', "non-finite"),
    ("def f(weight, layer):\n    pass\n", '{{ fn = "{m}:f", gain = 2 }}',
     "unexpected keyword argument 'gain'"),
    ("", '"xavier_uniformm"', "did you mean 'xavier_uniform'"),
    ("", '{{ fn = "xavier_uniform", gain = 2 }}', "built-in init 'xavier_uniform' takes no"),
    ("def f(weight, layer, gain=1.0):\n    raise ValueError('gain must be >= 0')\n",
     '{{ fn = "{m}:f", gain = -1.0 }}', "ValueError: gain must be >= 0"),
    ("", '"xavier_uniform"\ninit_args = "5"', "are not a table of keyword arguments"),
])
def test_a_bad_init_fails_before_any_trial_with_key_and_path(tmp_path, monkeypatch, body,
                                                             value, expected):
    name = user_module(tmp_path, monkeypatch, body, "bad_inits")
    value = value.format(m=name)
    with pytest.raises(bench.UserError) as info:
        one_spec(model=f'hidden = [4]\nactivation = "relu"\ninit = {value}')
    assert info.value.key == "model.init" and "[model] init" in str(info.value)
    assert expected in str(info.value)
    if ":" in value:
        assert value.split('"')[1] in str(info.value)  # the import path
    assert "Traceback" not in str(info.value)


def test_a_user_init_leaves_the_trials_random_stream_alone(tmp_path, monkeypatch):
    # The check at load draws a Linear(3, 4) and runs the function; neither may shift the
    # numbers of a trial in which the init is first resolved (a fresh worker process).
    name = user_module(tmp_path, monkeypatch, """
        def noisy(weight, layer):
            weight.normal_()
        """, "noisy_init")
    model = f'hidden = [8]\nactivation = "relu"\ninit = "{name}:noisy"'
    spec = one_spec(model=model, train='optimizer = "sgd"\nlr = 0.1\nepochs = 0')
    inits.resolve.cache_clear()  # as in a worker that has not seen the init yet
    first = run_trial(spec).state_dict
    again = run_trial(spec).state_dict  # resolved already
    layers = _by_hand(0, [2, 8, 3], lambda layer: layer.weight.normal_())
    for key, weight in first.items():
        torch.testing.assert_close(weight, again[key], rtol=0, atol=0)
    torch.testing.assert_close(list(first.values())[0], layers[0].weight, rtol=0, atol=0)


# -- tasks ----------------------------------------------------------------------------------

def test_a_task_with_a_seed_argument_gets_the_trials_seed_and_its_split(tmp_path):
    suite = make_suite(f"""
        seeds = [4, 5]
        [task]
        {MOONS.replace(chr(10), chr(10) + '        ')}
        [model]
        hidden = [16]
        activation = "relu"
        [train]
        {TRAIN.replace(chr(10), chr(10) + '        ')}
        [sweep]
        "task.noise" = [0.05, 0.2]
        """)
    assert suite.points[0].task.problem == "classification" and suite.points[0].task.has_test_split
    store = run_suite(suite, RunOptions(out=tmp_path / "results", workers=1))
    run = RunData.open(store.dir, trust_code=True)
    assert (run.trials.status == "ok").all() and len(run.trials) == 4
    assert run.varied_keys == ["task.noise"]
    assert set(run.trials["task.points"]) == {120}
    for _, row in run.trials.iterrows():
        x, y, xt, yt, kind = moons(points=120, noise=row["task.noise"], seed=int(row["seed"]))
        data = run.task_data(row)
        torch.testing.assert_close(data.x_train, x, rtol=0, atol=0)
        torch.testing.assert_close(data.y_test, yt, rtol=0, atol=0)
        model = run.model(row)
        with torch.no_grad():
            test_acc = (model(xt).argmax(1) == yt).float().mean().item()
        assert test_acc == pytest.approx(row["final_test_accuracy"], abs=1e-6)
    assert run.trials["final_test_accuracy"].notna().all()


def test_a_regression_task_drawn_from_the_global_rng_is_the_trials_data():
    spec = one_spec(task='kind = "examples.my_tasks:sine"\npoints = 50\nnoise = 0.1',
                    model='hidden = [16]\nactivation = "tanh"', train=TRAIN, seed=7)
    assert spec.task.problem == "regression" and not spec.task.has_test_split
    result = run_trial(spec)
    assert result.trial["status"] == "ok" and math.isnan(result.trial["final_accuracy"])
    torch.manual_seed(7)  # as the trial does: data first, from the seed
    x, y, _ = sine(points=50, noise=0.1)
    model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    model.load_state_dict({k.replace("hidden_", ""): v for k, v in result.state_dict.items()})
    with torch.no_grad():
        mse = nn.functional.mse_loss(model(x), y).item()
    assert mse == pytest.approx(result.trial["final_loss"], rel=1e-5)


def test_the_dict_form_and_arrays_are_accepted(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import numpy as np
        def blobs(n=40):
            rng = np.random.default_rng(0)
            x = np.concatenate([rng.normal(-2, 1, (n, 3)), rng.normal(2, 1, (n, 3))])
            y = np.repeat([0, 1], n)
            return {"x_train": x, "y_train": y, "kind": "classification"}
        """, "dict_task")
    spec = one_spec(task=f'kind = "{name}:blobs"\nn = 30', train=TRAIN)
    data = make_task(spec.task, spec.seed)
    assert data.x_train.dtype == torch.float32 and data.x_train.shape == (60, 3)
    assert data.y_train.dtype == torch.long and data.out_features == 2 and data.x_test is None
    assert run_trial(spec).trial["final_accuracy"] > 0.9


BAD_TASKS = [
    ("", "no_such_task_mod:f", {}, "task.kind", "cannot import 'no_such_task_mod'"),
    ("X = 3\n", "{m}:X", {}, "task.kind", "not a function returning"),
    ("def f():\n    raise ValueError('no data')\n", "{m}:f", {}, "task.kind",
     "ValueError: no data"),
    ("def f():\n    return 1\n", "{m}:f", {}, "task.kind", "returned int"),
    ("import torch\ndef f():\n    return torch.zeros(4, 2), torch.zeros(4).long(), 'ranking'\n",
     "{m}:f", {}, "task.kind", "kind 'ranking'; valid choices: classification, regression"),
    ("import torch\ndef f():\n    return torch.zeros(4), torch.zeros(4).long(), 'classification'\n",
     "{m}:f", {}, "task.kind", "x_train has shape (4,)"),
    ("import torch\ndef f():\n    return torch.zeros(4, 2), torch.zeros(4), 'classification'\n",
     "{m}:f", {}, "task.kind", "integer labels"),
    ("import torch\ndef f():\n    return torch.zeros(4, 2), torch.zeros(3, 1), 'regression'\n",
     "{m}:f", {}, "task.kind", "y_train has 3 samples, x_train 4"),
    ("import torch\ndef f():\n    return (torch.zeros(4, 2), torch.zeros(4, 1), torch.zeros(2, 3),"
     " torch.zeros(2, 1), 'regression')\n", "{m}:f", {}, "task.kind", "x_test has 3 features"),
    ("import torch\ndef f():\n    return torch.zeros(4, 2), torch.zeros(4).long(), 'classification'\n",
     "{m}:f", {}, "task.kind", "at least two classes"),
    ("import torch\ndef f(points=10):\n    return torch.zeros(4, 2), torch.zeros(4, 1), 'regression'\n",
     "{m}:f", {"pionts": 5}, "task.pionts", "takes no argument 'pionts'; valid keys: points"),
    ("import torch\ndef f(seed=0):\n    return torch.zeros(4, 2), torch.zeros(4, 1), 'regression'\n",
     "{m}:f", {"seed": 5}, "task.seed", "set the suite's seeds"),
    ("", "spirall", {}, "task.kind", "did you mean 'spiral'"),
    ("import torch\ndef f():\n    return (torch.zeros(4, 2), torch.zeros(4, 1), torch.zeros(0, 2),"
     " torch.zeros(0, 1), 'regression')\n", "{m}:f", {}, "task.kind", "return None for no held-out"),
    ("def f(table=None):\n    pass\n", "{m}:f", {"table": "{ a = 1 }"}, "task.table",
     "strings, numbers, booleans or lists"),
]


@pytest.mark.parametrize("body, path, args, key, expected", BAD_TASKS)
def test_a_bad_task_fails_before_any_trial_with_key_and_path(tmp_path, monkeypatch, body, path,
                                                             args, key, expected):
    name = user_module(tmp_path, monkeypatch, body, "bad_tasks")
    path = path.format(m=name)
    table = f'kind = "{path}"' + "".join(f"\n{k} = {v}" for k, v in args.items())
    with pytest.raises(bench.UserError) as info:
        one_spec(task=table)
    message = str(info.value)
    assert info.value.key == key and expected in message, message
    assert f"[task] {key.split('.')[1]}" in message
    if ":" in path:
        assert path in message


def test_a_swept_task_argument_the_function_lacks_names_the_sweep(tmp_path, monkeypatch):
    with pytest.raises(bench.UserError) as info:
        make_suite(f"""
            [task]
            {MOONS}
            [model]
            hidden = [4]
            activation = "relu"
            [train]
            optimizer = "sgd"
            lr = 0.1
            epochs = 1
            [sweep]
            "task.nosie" = [0.1, 0.2]
            """)
    assert info.value.key == "task.nosie" and "[sweep] 'task.nosie'" in str(info.value)
    assert "noise" in info.value.choices


@pytest.mark.parametrize("task, model, named", [
    ('kind = "nowhere_pkg.tasks:moons"', 'activation = "relu"', "[task] kind"),
    ('kind = "spiral"', 'activation = "relu"\ninit = "nowhere_pkg.inits:lecun"', "[model] init"),
    ('kind = "spiral"', 'activation = "nowhere_pkg.acts:Swish"', "[model] activation"),
])
def test_the_cli_refuses_user_code_it_cannot_import_with_exit_2_and_writes_nothing(
        tmp_path, capsys, task, model, named):
    from bench.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\n[task]\n{task}\n[model]\nhidden = [4]\n{model}\n'
                     '[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 1\n')
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nowhere_pkg" in err and named in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_packages_register_inits_and_tasks_by_entry_point(tmp_path, monkeypatch, capsys):
    dist = tmp_path / "my_plugin-0.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.2\n")
    (dist / "entry_points.txt").write_text(
        "[actbench.inits]\nlecun = examples.my_tasks:scaled_normal\n"
        "[actbench.tasks]\nmoons = examples.my_tasks:moons\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = one_spec(task='kind = "moons"\npoints = 100',
                    model='hidden = [8]\nactivation = "relu"\ninit = "lecun"', train=TRAIN)
    row = run_trial(spec).trial
    assert row["status"] == "ok" and row["task.kind"] == "moons" and row["model.init"] == "lecun"
    assert not math.isnan(row["final_test_accuracy"])
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lecun" in out and "moons" in out and out.count("my-plugin") == 2


def test_the_python_api_builds_a_suite_with_a_user_task_and_init(tmp_path):
    suite = bench.make_suite(
        "mine", task={"kind": "examples.my_tasks:moons", "points": 100},
        model={"hidden": [8], "activation": "relu",
               "init": {"fn": "examples.my_tasks:scaled_normal", "gain": 1.0}},
        train={"optimizer": "adam", "lr": 0.01, "epochs": 5}, seeds=[0])
    (spec,) = expand(suite)
    assert spec.task.kind == "examples.my_tasks:moons" and spec.model.init_args == '{"gain": 1.0}'


# -- functions given directly (a notebook's cells) -------------------------------------------

def _in_main(monkeypatch, fn, name: str):
    """``fn`` as if a notebook cell had defined it: a top-level name of ``__main__``."""
    fn.__module__, fn.__qualname__, fn.__name__ = "__main__", name, name
    monkeypatch.setattr(sys.modules["__main__"], name, fn, raising=False)
    return fn


def test_a_notebook_function_runs_in_process_and_a_redefinition_is_seen(tmp_path, monkeypatch,
                                                                        capsys):
    def swish(x, beta=1.0):
        return x * torch.sigmoid(beta * x)

    _in_main(monkeypatch, swish, "nb_swish")
    kwargs = dict(task={"kind": "spiral", "points_per_class": 30},
                  model={"hidden": [8], "activation": "relu"},
                  train={"optimizer": "adam", "lr": 0.01, "epochs": 5}, seeds=[0, 1])
    suite = bench.make_suite("nb", sweep={"model.activation": ["silu", swish]}, **kwargs,
                             expect=[{"where": {"model.activation": swish},
                                      "vs": {"model.activation": "silu"},
                                      "metric": "final_loss", "min": -1e-6, "max": 1e-6}])
    assert suite.points[1].model.activation == "__main__:nb_swish"
    run = bench.run(suite, workers=2, out=tmp_path)  # 2 workers could not import it
    assert "run in this process" in capsys.readouterr().err
    assert run.manifest["executor"] == "serial" and (run.trials.status == "ok").all()
    claims = run.check()
    assert claims.passed and [c.verdict for c in claims] == ["pass"]  # swish(beta=1) is SiLU
    # the cell run again with another body: the next run uses the new function
    swish = _in_main(monkeypatch, lambda x, beta=1.0: torch.relu(x), "nb_swish")
    again = bench.run(bench.make_suite("nb", sweep={"model.activation": ["relu", swish]},
                                       **kwargs), out=tmp_path)
    by_act = again.trials.groupby("model.activation")["final_loss"].mean()
    assert by_act["__main__:nb_swish"] == pytest.approx(by_act["relu"], rel=1e-6)


def test_notebook_functions_for_init_and_task_and_their_mistakes(tmp_path, monkeypatch):
    def blobs(n=30, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.cat([torch.randn(n, 2, generator=g) - 2, torch.randn(n, 2, generator=g) + 2])
        return x, torch.repeat_interleave(torch.arange(2), n), "classification"

    def halved(weight, layer):
        return weight / 2

    task, init = _in_main(monkeypatch, blobs, "nb_blobs"), _in_main(monkeypatch, halved, "nb_half")
    suite = bench.make_suite("nb2", task={"kind": task, "n": 20},
                             model={"hidden": [8], "activation": "relu", "init": init},
                             train={"optimizer": "adam", "lr": 0.01, "epochs": 5})
    run = bench.run(suite, out=tmp_path)
    row = run.trials.iloc[0]
    assert row["status"] == "ok" and row["task.kind"] == "__main__:nb_blobs"
    assert row["model.init"] == "__main__:nb_half" and row["task.n"] == 20
    with pytest.raises(bench.UserError, match="a lambda or a function defined inside"):
        bench.make_suite("bad", task={"kind": "spiral"}, train={"optimizer": "sgd", "lr": 0.1,
                         "epochs": 1}, model={"hidden": [4], "activation": lambda x: x})
    with pytest.raises(bench.UserError, match="Dask workers cannot import"):
        bench.run(suite, out=tmp_path, cluster="local:1")


def test_a_user_tasks_seeds_pack_when_their_data_agree_and_run_alone_when_not(tmp_path,
                                                                              monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch
        def rare(n=40, seed=0):
            \"\"\"three classes for even seeds, two for odd ones\"\"\"
            x = torch.randn(n, 2)
            y = torch.arange(n) % (3 if seed % 2 == 0 else 2)
            return x, y, "classification"
        """, "rare_task")
    for kind, sizes in ((MOONS, [3, 3, 3]), (f'kind = "{name}:rare"', [1, 1, 1])):
        specs = expand(make_suite(f"""
            seeds = [0, 1, 2]
            [task]
            {kind.replace(chr(10), chr(10) + '            ')}
            [model]
            hidden = [8]
            activation = "relu"
            [train]
            {TRAIN.replace(chr(10), chr(10) + '            ')}
            """))
        assert [len(u) for u in plan(specs, "on")] == [3]  # planned as one pack
        got = run_pack(specs)
        assert [g.status for g in got] == ["ok"] * 3 and [g.trial["pack_size"] for g in got] == sizes
        for g, spec in zip(got, specs):
            assert g.trial["final_loss"] == pytest.approx(run_trial(spec).trial["final_loss"],
                                                          rel=1e-5)


def test_a_run_of_a_builtin_and_a_user_task_reads_back_exactly(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import numpy as np
        def typed(points=30, scale=1.0, noise=0.0):
            assert isinstance(points, int) and isinstance(scale, float)
            x = np.random.uniform(-1, 1, (points, 1))  # numpy's RNG: seeded by the trial
            return x, scale * x ** 2, "regression"
        """, "typed_task")
    suite = make_suite(f"""
        seeds = [0, 1]
        [task]
        kind = "cubic"
        points = 20
        [model]
        hidden = [8]
        activation = "tanh"
        [train]
        {TRAIN.replace(chr(10), chr(10) + '        ')}
        [[variant]]
        name = "cubic"
        [[variant]]
        name = "mine"
        "task.kind" = "{name}:typed"
        "task.scale" = 2.0
        """)
    store = run_suite(suite, RunOptions(out=tmp_path / "results", workers=1))
    run = RunData.open(store.dir, trust_code=True)
    assert (run.trials.status == "ok").all()
    for _, row in run.trials.iterrows():
        data = run.task_data(row)  # drawn again: the same data as the trial's
        assert run.model(row) is not None
        with torch.no_grad():
            mse = nn.functional.mse_loss(run.model(row)(data.x_train), data.y_train).item()
        assert mse == pytest.approx(row["final_loss"], rel=1e-5)
    mine = run.trials[run.trials.variant == "mine"]
    assert mine["final_loss"].nunique() == 2  # numpy drew other data for the other seed
    # a key that holds a number in one grid point and a string in another is refused at load
    with pytest.raises(bench.UserError, match="'task.noise' is a number, e.g. 0.3; a string"):
        make_suite(suite.text.split("\n", 1)[1].replace('"task.scale" = 2.0',
                                                        '"task.noise" = "high"'))


def test_claims_of_a_notebook_run_are_checked_where_its_function_is_gone(tmp_path, monkeypatch):
    def double(x):
        return 2 * torch.relu(x)

    fn = _in_main(monkeypatch, double, "nb_double")
    run = bench.run(bench.make_suite(
        "gone", task={"kind": "spiral", "points_per_class": 20},
        model={"hidden": [4], "activation": fn}, train={"optimizer": "sgd", "lr": 0.1, "epochs": 2},
        expect=[{"where": {"model.activation": fn}, "metric": "final_loss", "min": 0.0}]),
        out=tmp_path)
    monkeypatch.delattr(sys.modules["__main__"], "nb_double")  # as in `bench check` elsewhere
    claims = bench.open_run(run.dir).check()
    assert claims.passed and len(claims) == 1


def test_a_task_in_an_inline_table_is_the_flat_table():
    inline = one_spec(task='kind = { fn = "examples.my_tasks:moons", points = 90, noise = 0.2 }')
    flat = one_spec(task='kind = "examples.my_tasks:moons"\npoints = 90\nnoise = 0.2')
    assert inline.trial_id == flat.trial_id and inline.config["task.points"] == 90
    with pytest.raises(bench.UserError, match="needs fn") as info:
        one_spec(task="kind = { points = 90 }")
    assert info.value.key == "task.kind"


def test_checking_a_user_task_leaves_the_trials_random_streams_alone(tmp_path, monkeypatch):
    import random

    import numpy as np

    name = user_module(tmp_path, monkeypatch, """
        import random
        import numpy as np
        import torch
        def noisy(points=10):
            x = np.random.uniform(-1, 1, (points, 1)) + random.random() + torch.rand(1).item()
            return x, x ** 2, "regression"
        """, "rng_task")

    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    tasks.resolve_task.cache_clear()
    spec = one_spec(task=f'kind = "{name}:noisy"\npoints = 10')  # checked: drawn once
    assert spec.task.problem == "regression"
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1] and (np.random.get_state()[1] == states[2]).all()
    # and the trial's draw follows the seed, numpy's and Python's included
    torch.manual_seed(3)
    first = make_task(spec.task, 3).x_train
    torch.manual_seed(3)
    torch.testing.assert_close(make_task(spec.task, 3).x_train, first, rtol=0, atol=0)
    torch.manual_seed(4)
    assert not torch.equal(make_task(spec.task, 4).x_train, first)


ANYARG = """
    import torch
    def anyarg(n=10, v=None, w=None):
        x = torch.linspace(-1, 1, n)[:, None]
        return x, x ** 2, "regression"
    """
REST = '[model]\nhidden = [4]\nactivation = "relu"\n[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 1\n'


@pytest.mark.parametrize("task, extra, expected", [
    ('kind = { fn = "{m}:anyarg", n = 7 }\nn = 9', "", "n given both in the inline table"),
    ('kind = { fn = "{m}:anyarg", kind = "x" }', "", "kind cannot be an argument"),
    ('kind = "{m}:anyarg"\nv = 1979-05-27', "", "strings, numbers, booleans"),
    ('kind = { fn = "{m}:anyarg", v = 1979-05-27 }', "", "strings, numbers, booleans"),
    ('kind = "{m}:anyarg"\nv = [1, "a"]', "", "a list mixes kinds"),
    ('kind = "{m}:anyarg"', '[sweep]\n"task.v" = [[1, 2], ["a"]]', "a list of numbers"),
    ('kind = "{m}:anyarg"', '[sweep]\n"task.v" = [true, 1]', "a boolean"),
    ('kind = ["{m}:anyarg"]', "", "is not a known task"),
])
def test_task_arguments_that_cannot_be_a_column_are_refused_at_load(tmp_path, monkeypatch, task,
                                                                    extra, expected):
    name = user_module(tmp_path, monkeypatch, ANYARG, "anyarg_task")
    with pytest.raises(bench.UserError, match=expected):
        make_suite(f"[task]\n{task.replace('{m}', name)}\n{REST}{extra}\n")


def test_a_swept_argument_wins_over_the_inline_tables(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, ANYARG, "anyarg_task")
    suite = make_suite(f'[task]\nkind = {{ fn = "{name}:anyarg", n = 7 }}\n{REST}'
                       '[sweep]\n"task.n" = [10, 20]\n')
    assert [p.task.kwargs["n"] for p in suite.points] == [10, 20]
    # the same arguments spelled two ways are one trial
    plain = one_spec(model='hidden = [4]\nactivation = "relu"\ninit = "xavier_uniform"')
    empty = one_spec(model='hidden = [4]\nactivation = "relu"\ninit = "xavier_uniform"\n'
                     'init_args = "{}"')
    assert plain.trial_id == empty.trial_id


def test_a_seed_whose_draw_fails_fails_alone_in_a_pack(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch
        def odd_fails(n=20, seed=0):
            if seed % 2:
                raise RuntimeError("no data for odd seeds")
            x = torch.randn(n, 2)
            return x, (x[:, 0] > 0).long(), "classification"
        """, "odd_task")
    specs = expand(make_suite(f'seeds = [0, 1, 2]\n[task]\nkind = "{name}:odd_fails"\n{REST}'))
    assert [len(u) for u in plan(specs, "on")] == [3]
    assert [r.status for r in run_pack(specs)] == ["ok", "failed", "ok"]


def test_compare_shows_an_absent_key_at_its_old_value_only_where_the_task_had_it():
    from types import SimpleNamespace

    import pandas as pd

    from bench.analysis.compare import values_by_variant

    def run(kinds):
        return SimpleNamespace(trials=pd.DataFrame({"task.kind": kinds, "variant": ""}))

    assert values_by_variant(run(["spiral"]), "task.test_fraction") == {"": "0"}
    assert values_by_variant(run(["spiral", "mod:moons"]), "task.test_fraction") == {
        "": "(absent)"}
    assert values_by_variant(run(["mod:moons"]), "model.init_args") == {"": ""}
