"""Suite parsing, defaults, grid expansion and the messages for bad input."""

import pytest

from bench.errors import UserError
from bench.suite import expand
from tests.helpers import make_suite

BASE = """
[task]
kind = "spiral"
[model]
hidden = [100]
activation = "relu"
[train]
optimizer = "adam"
lr = 1e-3
epochs = 10
"""


def error(body: str) -> str:
    with pytest.raises(UserError) as info:
        make_suite(body)
    return str(info.value)


def test_defaults_from_design():
    (spec,) = expand(make_suite(BASE))
    assert spec.seed == 0
    assert spec.model.init == "default"
    t = spec.train
    assert (t.weight_decay, t.batch_size, t.accumulation_steps, t.lr_scaling, t.device,
            t.log_every) == (0.0, "full", 1, "none", "cpu", 10)
    assert spec.config["train.batch_size"] == "full"
    assert spec.config["model.hidden"] == [100]


def test_grid_is_sweep_times_variants_times_seeds():
    suite = make_suite("seeds = [0, 1, 2]\n" + BASE + """
[sweep]
"model.activation" = ["sigmoid", "tanh"]
"model.hidden" = [[2, 2], [3, 3], []]
"train.lr" = [1e-3, 1e-2]
[[variant]]
name = "adam"
[[variant]]
name = "sgd"
"train.optimizer" = "sgd"
"train.momentum" = 0.9
""")
    specs = expand(suite)
    assert len(suite.points) == 2 * 3 * 2 * 2
    assert len(specs) == len(suite.points) * 3
    assert len({s.trial_id for s in specs}) == len(specs)
    assert {s.model.hidden for s in specs} == {(2, 2), (3, 3), ()}
    sgd = [s for s in specs if s.variant == "sgd"]
    assert {s.train.optimizer for s in sgd} == {"sgd"} and {s.train.momentum for s in sgd} == {0.9}


def test_variant_pinning_a_swept_key_runs_each_point_once():
    suite = make_suite(BASE + """
[sweep]
"model.activation" = ["relu", "tanh"]
[[variant]]
name = "linear"
"model.activation" = "identity"
[[variant]]
name = "mlp"
""")
    assert [(p.variant, p.model.activation) for p in suite.points] == [
        ("linear", "identity"), ("mlp", "relu"), ("mlp", "tanh")]


def test_trial_id_is_stable_and_depends_on_config_and_seed():
    a = expand(make_suite("seeds = [0, 1]\n" + BASE))
    b = expand(make_suite("seeds = [0, 1]\n" + BASE.replace("lr = 1e-3", "lr = 0.001")))
    c = expand(make_suite("seeds = [0, 1]\n" + BASE.replace("epochs = 10", "epochs = 11")))
    assert [s.trial_id for s in a] == [s.trial_id for s in b]
    assert a[0].trial_id != a[1].trial_id
    assert {s.trial_id for s in a}.isdisjoint({s.trial_id for s in c})


def test_int_is_accepted_where_a_float_is_expected():
    (spec,) = expand(make_suite(BASE.replace("lr = 1e-3", "lr = 1")))
    assert spec.train.lr == 1.0 and isinstance(spec.config["train.lr"], float)


@pytest.mark.parametrize("body, expected", [
    # unknown names: the key, the value, a did-you-mean and the valid choices
    (BASE.replace('"relu"', '"rleu"'),
     ["test.toml", "[model] activation", "'rleu'", "did you mean 'relu'", "leaky_relu, relu"]),
    (BASE.replace('"adam"', '"adma"'), ["[train] optimizer", "'adma'", "did you mean 'adam'",
                                         "adam, adamw, sgd"]),
    (BASE.replace('kind = "spiral"', 'kind = "spirals"'),
     ["[task] kind", "'spirals'", "did you mean 'spiral'", "cubic, digits, mnist1d, spiral"]),
    (BASE + 'init = "xavier"\n', ["[train] init", "unknown key"]),
    (BASE.replace('activation = "relu"', 'activation = "relu"\ninit = "xavir_uniform"'),
     ["[model] init", "'xavir_uniform'", "did you mean 'xavier_uniform'"]),
    # unknown keys
    (BASE.replace("epochs = 10", "epochs = 10\nlearning_rate = 0.1"),
     ["[train] learning_rate", "unknown key", "valid keys:", "lr"]),
    (BASE.replace('activation = "relu"', 'activaton = "relu"'),
     ["[model] activaton", "did you mean 'activation'"]),
    ("colour = 1\n" + BASE, ["colour", "unknown key"]),
    # wrong types
    (BASE.replace("lr = 1e-3", 'lr = "fast"'), ["[train] lr", "'fast'"]),
    (BASE.replace("epochs = 10", "epochs = 10.5"), ["[train] epochs", "10.5"]),
    (BASE.replace("hidden = [100]", "hidden = 100"), ["[model] hidden", "100", "list"]),
    (BASE.replace("epochs = 10", 'epochs = 10\nbatch_size = "all"'),
     ["[train] batch_size", "'all'", "full"]),
    (BASE.replace("epochs = 10", 'epochs = 10\nlr_scaling = "lineer"'),
     ["[train] lr_scaling", "'lineer'", "did you mean 'linear'", "none, linear, sqrt"]),
    (BASE.replace("epochs = 10", 'epochs = 10\ndevice = "gpu"'), ["[train] device", "'gpu'", "cuda:N"]),
    (BASE.replace("epochs = 10", "epochs = 10\nmomentum = 0.9"), ["[train]", "momentum", "sgd only"]),
    (BASE.replace("epochs = 10", "epochs = -1"), ["[train] epochs", "-1"]),
    (BASE.replace("epochs = 10", ""), ["[train] epochs", "required"]),
    # sweep and variant keys name where they were set
    (BASE + '[sweep]\n"model.activation" = ["relu", "swish"]\n',
     ['[sweep] \'model.activation\'', "'swish'", "valid choices"]),
    (BASE + '[sweep]\n"model.actvation" = ["relu"]\n',
     ['[sweep] \'model.actvation\'', "did you mean 'activation'"]),
    (BASE + '[sweep]\n"modle.activation" = ["relu"]\n', ["'modle.activation'", "did you mean 'model'"]),
    (BASE + '[sweep]\n"train.lr" = 0.1\n', ["sweep", "train.lr", "list"]),
    (BASE + '[sweep]\n"train.lr" = []\n', ["'train.lr'", "empty"]),
    (BASE + '[[variant]]\nname = "x"\n"train.optimizer" = "sgdd"\n',
     ["[[variant]] 'x' 'train.optimizer'", "'sgdd'", "did you mean 'sgd'"]),
    (BASE + '[[variant]]\n"train.lr" = 0.1\n', ["[[variant]] #1", "name"]),
    ("seeds = []\n" + BASE, ["seeds"]),
    ("seeds = [1, 1]\n" + BASE, ["seeds", "repeats"]),
    (BASE.replace("[train]", "[train\n"), ["test.toml", "not valid TOML", "line"]),
    # targets the task cannot have
    (BASE.replace('"spiral"', '"cubic"') + 'target = { metric = "accuracy", value = 0.9 }\n',
     ["[train] target", "'accuracy'", "classification", "regression"]),
    (BASE + 'target = { metric = "test_loss", value = 0.1 }\n', ["'test_loss'", "held-out"]),
    (BASE + 'target = { metric = "acc", value = 0.1 }\n', ["[train] target.metric", "'acc'",
                                                            "did you mean 'accuracy'"]),
])
def test_bad_input_names_file_key_value_and_choices(body, expected):
    message = error(body)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_user_error_carries_one_line_per_problem():
    message = error(BASE.replace('"relu"', '"rleu"').replace('"adam"', '"adma"'))
    assert len(message.splitlines()) == 2
