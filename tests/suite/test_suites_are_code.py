"""A suite is code: a ``[task] kind``, an activation or an init may be any importable function.
Only ``bench run`` itself imports and calls it; ``--dry-run`` lists every import path the suite
would load and imports none of it, ``bench list`` and reading a run import none of it, and what
a user wrote is printed as written (no rich markup, no emoji codes)."""

import sys
import textwrap

import pytest

import bench
from bench.cli import main
from bench.suite import expand, load_suite
from bench.training import activations, inits, tasks
from tests.helpers import user_module

TRAIN = '[train]\noptimizer = "sgd"\nlr = 0.1\nepochs = 1\n'


@pytest.fixture(autouse=True)
def _fresh_resolvers():
    for resolver in (activations.resolve, inits.resolve, tasks.resolve_task):
        resolver.cache_clear()
    yield
    for resolver in (activations.resolve, inits.resolve, tasks.resolve_task):
        resolver.cache_clear()


def _suite(tmp_path, body: str, name: str = "code"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\n' + textwrap.dedent(body))
    return path


def _marker_module(tmp_path, monkeypatch, name: str, marker) -> str:
    """A module whose import leaves ``marker`` behind, with an activation, an init and a task."""
    return user_module(tmp_path, monkeypatch, f"""
        import pathlib
        import torch
        pathlib.Path({str(marker)!r}).write_text("imported")

        def act(x):
            return torch.relu(x)

        def init(weight, layer):
            torch.nn.init.normal_(weight)

        def blobs(n=30, label="a"):
            x = torch.randn(n, 2)
            return x, (x[:, 0] > 0).long(), "classification"
        """, name=name)


# -- --dry-run ------------------------------------------------------------------------------

def test_dry_run_lists_a_shell_command_task_kind_and_does_not_run_it(tmp_path, capsys):
    ran = tmp_path / "ran"
    path = _suite(tmp_path, f"""
        [task]
        kind = "subprocess:getoutput"
        cmd = "touch {ran}"
        [model]
        hidden = [4]
        activation = "relu"
        """ + TRAIN)
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "user code this suite imports and runs" in out
    assert "subprocess:getoutput (task.kind)" in out
    assert not ran.exists() and not (tmp_path / "out").exists()


def test_bench_run_still_checks_user_code_before_training(tmp_path, capsys):
    """The full check stays where it is needed: one clear error before anything trains
    (it calls the function once, which is why --dry-run does not)."""
    path = _suite(tmp_path, """
        [task]
        kind = "subprocess:getoutput"
        cmd = "true"
        [model]
        hidden = [4]
        activation = "relu"
        """ + TRAIN)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'subprocess:getoutput' returned str" in err and "[task] kind" in err
    assert not (tmp_path / "out").exists()


def test_dry_run_imports_no_user_module(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    mod = _marker_module(tmp_path, monkeypatch, "side_effect_mod", marker)
    path = _suite(tmp_path, f"""
        seeds = [0, 1]
        [task]
        kind = "{mod}:blobs"
        n = 40
        [model]
        hidden = [4]
        activation = "{mod}:act"
        init = "{mod}:init"
        [sweep]
        "model.activation" = ["relu", "{mod}:act"]
        [[expect]]
        where = {{ "model.activation" = "{mod}:act" }}
        metric = "final_accuracy"
        min = 0.0
        """ + TRAIN)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not marker.exists() and mod not in sys.modules
    assert f"{mod}:act (model.activation)" in out
    assert f"{mod}:init (model.init)" in out
    assert f"{mod}:blobs (task.kind)" in out
    assert "imported and ran none of it" in out
    assert "2 grid points x 2 seeds = 4 trials" in out
    assert "packing: decided when the run starts" in out  # auto would draw the user task


def test_a_suite_without_user_code_says_nothing_about_it(tmp_path, capsys):
    path = _suite(tmp_path, """
        [task]
        kind = "spiral"
        points_per_class = 20
        [model]
        hidden = [4]
        activation = "relu"
        """ + TRAIN)
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "user code" not in capsys.readouterr().out


@pytest.mark.parametrize("model, task, expected", [
    ('activation = "rleu"', 'kind = "spiral"', "(did you mean 'relu'?)"),
    ('activation = "not a module:f"', 'kind = "spiral"', "is not an import path"),
    ('activation = { fn = "relu", beta = 1 }', 'kind = "spiral"', "takes no arguments"),
    ('activation = "relu"\ninit = "xavier"', 'kind = "spiral"', "(did you mean 'xavier_normal'?)"),
    ('activation = "relu"', 'kind = "no_such_mod_q:f"\nseed = 3', "the trial's seed is passed"),
    ('activation = "relu"', 'kind = "moonz"', "is not a known task"),
])
def test_dry_run_still_refuses_what_needs_no_import(tmp_path, capsys, model, task, expected):
    path = _suite(tmp_path, f"[task]\n{task}\n[model]\nhidden = [4]\n{model}\n" + TRAIN)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_suite_read_without_user_code_cannot_be_trained(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    mod = _marker_module(tmp_path, monkeypatch, "unread_task_mod", marker)
    path = _suite(tmp_path, f'[task]\nkind = "{mod}:blobs"\n[model]\nhidden = [4]\n'
                            'activation = "relu"\n' + TRAIN)
    suite = load_suite(path, user_code=False)
    assert not suite.user_code_checked and not marker.exists()
    with pytest.raises(ValueError, match="without importing or running its user code"):
        _ = suite.points[0].task.resolved
    full = load_suite(path)  # the same trials, checked
    assert full.user_code_checked and marker.exists()
    assert ([s.trial_id for s in expand(full)]
            == [s.trial_id for s in expand(suite)])


def _plugin(tmp_path, monkeypatch, mod: str) -> None:
    dist = tmp_path / "code_plugin-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: code-plugin\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(f"[actbench.activations]\nmarked = {mod}:act\n"
                                           f"[actbench.tasks]\nmarked_blobs = {mod}:blobs\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_dry_run_names_a_registered_plugin_and_its_package_without_importing_it(
        tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    mod = _marker_module(tmp_path, monkeypatch, "plugin_side_effect_mod", marker)
    _plugin(tmp_path, monkeypatch, mod)
    path = _suite(tmp_path, '[task]\nkind = "marked_blobs"\n[model]\nhidden = [4]\n'
                            'activation = "marked"\n' + TRAIN)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"marked = {mod}:act (model.activation; registered by package code-plugin)" in out
    assert f"marked_blobs = {mod}:blobs (task.kind; registered by package code-plugin)" in out
    assert not marker.exists() and mod not in sys.modules


def test_bench_list_imports_no_plugin(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    mod = _marker_module(tmp_path, monkeypatch, "listed_side_effect_mod", marker)
    _plugin(tmp_path, monkeypatch, mod)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "marked" in out and "code-plugin" in out
    assert not marker.exists() and mod not in sys.modules


# -- messages print what the user wrote -------------------------------------------------------

@pytest.mark.parametrize("dry_run", [True, False])
def test_markup_and_emoji_codes_in_a_bad_value_are_printed_as_written(tmp_path, capsys, dry_run):
    path = _suite(tmp_path, '[task]\nkind = "spiral"\n[model]\nhidden = [4]\n'
                            'activation = ":smile: [bold]x[/]"\n' + TRAIN)
    argv = ["run", str(path), "--out", str(tmp_path / "out")] + (["--dry-run"] if dry_run else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ":smile: [bold]x[/]" in err and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in err
    assert "[model] activation" in err and "Traceback" not in err


def test_dry_run_grid_cells_keep_markup_and_emoji_codes(tmp_path, monkeypatch, capsys):
    mod = _marker_module(tmp_path, monkeypatch, "labels_mod", tmp_path / "imported")
    path = _suite(tmp_path, f"""
        [task]
        kind = "{mod}:blobs"
        [model]
        hidden = [4]
        activation = "relu"
        [sweep]
        "task.label" = [":smile:", "[bold]b[/]", "[/]"]
        """ + TRAIN)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ":smile:" in out and "[bold]b[/]" in out and "[/]" in out
    assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in out


# -- reading a run --------------------------------------------------------------------------

def test_a_run_is_checked_and_reported_where_its_user_code_is_gone(tmp_path, monkeypatch,
                                                                    capsys):
    marker = tmp_path / "imported"
    mod = _marker_module(tmp_path, monkeypatch, "gone_later_mod", marker)
    path = _suite(tmp_path, f"""
        [task]
        kind = "{mod}:blobs"
        [model]
        hidden = [4]
        activation = "{mod}:act"
        [[expect]]
        where = {{ "model.activation" = "{mod}:act" }}
        metric = "final_loss"
        min = 0.0
        """ + TRAIN.replace("epochs = 1", "epochs = 2"))
    run = bench.run(str(path), workers=1, out=tmp_path / "out")
    # the module now fails at import, after leaving its marker: reading the run must not import it
    marker.unlink()
    (tmp_path / f"{mod}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r})"
                                        ".write_text('imported')\nraise ImportError('gone')\n")
    sys.modules.pop(mod, None)
    assert main(["check", str(run.dir)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    assert not marker.exists()
    (tmp_path / f"{mod}.py").unlink()
    sys.modules.pop(mod, None)
    assert main(["report", str(run.dir), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.md").is_file()
