"""Model families (``[model] kind``): the cnn1d and the residual MLP against hand-written PyTorch
models, their keys' validation, every activation and init in every family, trial ids of the
plain MLP unchanged, and packing exact for both."""

import pytest
import torch
from torch import nn

import bench
from bench.errors import UserError
from bench.suite import expand
from bench.training import packing
from bench.training.activations import ACTIVATIONS
from bench.training.config import ModelConfig
from bench.training.loop import run_pack, run_trial
from bench.training.model import MLP, CNN1d, build_model, conv_lengths, layer_costs
from bench.training.packing import PackedModel, plan, worth_packing
from tests.helpers import assert_same_numbers, make_suite, one_spec, specs_of, user_module

REFERENCE_CNN = dict(kind="cnn1d", channels=[25, 25, 25], kernel=[5, 3, 3], stride=2, padding=1,
                     activation="relu")


def mnist1d_reference_cnn():
    """The MNIST-1D repository's ConvBase, as a Sequential (its layers in its order)."""
    return nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(25 * 5, 10))


# -- the cnn1d -----------------------------------------------------------------------------------

def test_reference_cnn_lengths_are_40_19_10_5():
    cfg = ModelConfig(**REFERENCE_CNN)
    assert cfg.stride == (2, 2, 2) and cfg.padding == (1, 1, 1) and cfg.in_channels == 1
    assert conv_lengths(cfg, 40) == [40, 19, 10, 5]
    assert build_model(cfg, 40, 10)[-1].in_features == 125
    assert layer_costs(cfg, 40, 10)[0] == (25 * 19, 25 * 5 * 19)


@pytest.mark.parametrize("seed", [0, 7])
def test_cnn1d_with_default_init_is_the_hand_written_reference(seed):
    torch.manual_seed(seed)
    mine = build_model(ModelConfig(**REFERENCE_CNN), 40, 10)
    torch.manual_seed(seed)
    ref = mnist1d_reference_cnn()
    assert isinstance(mine, CNN1d) and mine.unit == "channel"
    assert len(list(mine.parameters())) == len(list(ref.parameters())) == 8
    for a, b in zip(mine.parameters(), ref.parameters()):
        assert a.shape == b.shape and torch.equal(a, b)
    x = torch.randn(16, 40)
    torch.testing.assert_close(mine(x), ref(x.view(-1, 1, 40)), rtol=0, atol=0)
    assert mine.hidden_layers == [mine[0], mine[2], mine[4]]
    assert mine.hidden_linears is mine.hidden_layers  # the older name
    assert len(mine.hidden_activations) == 3


def test_in_channels_splits_the_flat_input_channel_major():
    cfg = ModelConfig(kind="cnn1d", in_channels=2, channels=[3], kernel=3, activation="tanh")
    torch.manual_seed(1)
    mine = build_model(cfg, 20, 4)
    torch.manual_seed(1)
    ref = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 8, 4))
    x = torch.randn(5, 20)
    torch.testing.assert_close(mine(x), ref(x.view(5, 2, 10)), rtol=0, atol=0)


def test_a_cnn1d_whose_layers_do_not_fit_its_input_fails_as_a_trial_saying_why():
    cfg = ModelConfig(kind="cnn1d", channels=[4, 4], kernel=5, stride=2, activation="relu")
    with pytest.raises(ValueError, match="conv layer 1 .* no positions"):
        build_model(cfg, 8, 3)
    with pytest.raises(ValueError, match="in_channels = 3"):
        build_model(cfg.model_copy(update={"in_channels": 3}), 8, 3)
    spec = one_spec(model='kind = "cnn1d"\nchannels = [4]\nkernel = 5\nactivation = "relu"')
    result = run_trial(spec)  # the spiral has 2 features
    assert result.status == "failed" and "no positions" in result.trial["error"]


# -- the residual MLP ----------------------------------------------------------------------------

def test_residual_mlp_adds_the_input_of_each_equal_width_hidden_layer():
    cfg = ModelConfig(hidden=[100, 100], residual=True, activation="relu")
    torch.manual_seed(3)
    mine = build_model(cfg, 40, 10)
    torch.manual_seed(3)
    plain = build_model(ModelConfig(hidden=[100, 100], activation="relu"), 40, 10)
    # The MNIST-1D reference MLP's modules and init: residual changes the forward pass only.
    assert mine.skips == {1} and not plain.skips
    for a, b in zip(mine.state_dict().items(), plain.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1])
    x = torch.randn(8, 40)
    l0, l1, head = mine[0], mine[2], mine[4]
    h0 = torch.relu(l0(x))
    want = head(h0 + torch.relu(l1(h0)))
    torch.testing.assert_close(mine(x), want, rtol=0, atol=0)
    torch.testing.assert_close(plain(x), head(torch.relu(l1(h0))), rtol=0, atol=0)


def test_residual_skips_only_between_consecutive_hidden_layers_of_equal_width():
    model = MLP(ModelConfig(hidden=[5, 8, 8, 8, 4], residual=True, activation="tanh"), 5, 3)
    assert model.skips == {2, 3}  # never the first layer, though it is 5 -> 5 wide


# -- validation ----------------------------------------------------------------------------------

BASE = """
[task]
kind = "spiral"
points_per_class = 20
[model]
{model}
[train]
optimizer = "adam"
lr = 0.01
epochs = 1
"""


def error(model: str) -> str:
    with pytest.raises(UserError) as info:
        make_suite(BASE.format(model=model))
    return str(info.value)


@pytest.mark.parametrize("model, expected", [
    ('hidden = [8]\nchannels = [4]\nactivation = "relu"',
     ["test.toml: [model] channels", "does not apply to kind = 'mlp'", "hidden, init, kind",
      "residual"]),
    ('kind = "cnn1d"\nhidden = [8]\nchannels = [4]\nkernel = 1\nactivation = "relu"',
     ["test.toml: [model] hidden", "does not apply to kind = 'cnn1d'", "channels",
      "in_channels", "kernel", "padding", "stride"]),
    ('kind = "cnn1d"\nresidual = false\nchannels = [4]\nkernel = 1\nactivation = "relu"',
     ["[model] residual", "does not apply to kind = 'cnn1d'"]),
    ('kind = "cnn1d"\nchannels = [4]\nkernel = 1\nnegative_slope = 0.1\nstride = [1, 1]\n'
     'activation = "relu"', ["[model] stride", "2 values for 1 conv layers"]),
    ('kind = "cnn1d"\nchannels = [4]\nactivation = "relu"',
     ["[model] kernel", "required key for kind = 'cnn1d' is missing"]),
    ('kind = "cnn1d"\nkernel = 3\nactivation = "relu"', ["[model] channels", "required"]),
    ('kind = "cnn1d"\nchannels = []\nkernel = 3\nactivation = "relu"',
     ["[model] channels", "one or more conv layers"]),
    ('kind = "cnn1d"\nchannels = [2]\nkernel = 0\nactivation = "relu"',
     ["[model] kernel", "at least 1"]),
    ('kind = "cnn1d"\nchannels = [2]\nkernel = 1\npadding = -1\nactivation = "relu"',
     ["[model] padding", "at least 0"]),
    ('activation = "relu"', ["[model] hidden", "required key for kind = 'mlp'"]),
    ('hidden = [8, 4]\nresidual = true\nactivation = "relu"',
     ["[model] residual", "hidden = [8, 4] has none", "equal width"]),
    ('kind = "rnn"\nhidden = [8]\nactivation = "relu"', ["[model] kind", "mlp, cnn1d"]),
])
def test_keys_of_another_family_and_bad_values_are_one_line_errors(model, expected):
    message = error(model)
    for part in expected:
        assert part in message
    assert all(line.startswith("test.toml: ") for line in message.splitlines())


def test_a_swept_key_that_does_not_apply_names_where_it_was_set():
    message = error('hidden = [8]\nactivation = "relu"\n[sweep]\n"model.kernel" = [3, 5]')
    assert "[sweep] 'model.kernel'" in message and "does not apply to kind = 'mlp'" in message


def test_plain_mlp_trial_ids_are_those_stored_before_model_kinds():
    # computed before the model keys existed: stored runs keep their ids
    assert one_spec().trial_id == "b97baad5e4fe8a72"
    spec = one_spec(model='hidden = [100, 100]\nactivation = "tanh"\ninit = "xavier_uniform"',
                    seed=3)
    assert spec.trial_id == "57213fefb45c887a"
    explicit = one_spec(model='kind = "mlp"\nresidual = false\nhidden = [100, 100]\n'
                              'activation = "tanh"\ninit = "xavier_uniform"', seed=3)
    assert explicit.trial_id == spec.trial_id and explicit.config == spec.config
    residual = one_spec(model='residual = true\nhidden = [100, 100]\nactivation = "tanh"\n'
                              'init = "xavier_uniform"', seed=3)
    assert residual.trial_id != spec.trial_id


def test_one_int_for_every_layer_is_the_same_trial_as_the_list():
    a = one_spec(model='kind = "cnn1d"\nchannels = [4, 4]\nkernel = 1\nstride = 1\n'
                       'activation = "relu"')
    b = one_spec(model='kind = "cnn1d"\nchannels = [4, 4]\nkernel = [1, 1]\nstride = [1, 1]\n'
                       'padding = [0, 0]\nin_channels = 1\nactivation = "relu"')
    assert a.trial_id == b.trial_id and a.config["model.kernel"] == [1, 1]
    assert a.config["model.hidden"] is None and a.config["model.residual"] is None


# -- every activation and init in every family ---------------------------------------------------

FAMILIES = {
    "mlp": dict(hidden=[6, 6]),
    "residual mlp": dict(hidden=[6, 6], residual=True),
    "cnn1d": dict(kind="cnn1d", channels=[3, 2], kernel=[3, 2], stride=[1, 2], padding=[1, 0]),
}


def _trains(model: nn.Module, n_in: int = 10) -> None:
    x = torch.randn(7, n_in)
    out = model(x)
    assert out.shape == (7, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_builtin_activation_in_every_family(family, activation):
    _trains(build_model(ModelConfig(activation=activation, **FAMILIES[family]), 10, 3))


@pytest.mark.parametrize("family", FAMILIES)
def test_user_activations_in_every_family(family, tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch
        from torch import nn

        def cube(x, scale=1.0):
            return scale * x ** 3

        class Swish(nn.Module):
            def __init__(self, beta=1.0):
                super().__init__()
                self.beta = nn.Parameter(torch.tensor(float(beta)))

            def forward(self, x):
                return x * torch.sigmoid(self.beta * x)
        """, "family_acts")
    for act in (f'{{ fn = "{name}:cube", scale = 0.5 }}', f'{{ fn = "{name}:Swish", beta = 2 }}'):
        keys = "\n".join(f"{k} = {_toml(v)}" for k, v in FAMILIES[family].items())
        (spec,) = expand(make_suite("[task]\nkind = \"spiral\"\npoints_per_class = 10\n"
                                    f"[model]\n{keys}\nactivation = {act}\n[train]\n"
                                    "optimizer = \"sgd\"\nlr = 0.1\nepochs = 3\n"))
        _trains(build_model(spec.model, 10, 3))
        if family == "cnn1d":
            continue  # the spiral's 2 features are too few for these kernels
        result = run_trial(spec)
        assert result.status == "ok", result.trial["error"]


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


INIT_REFERENCE = {
    "xavier_uniform": lambda w: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w: nn.init.xavier_normal_(w),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": lambda w: nn.init.orthogonal_(w),
}


@pytest.mark.parametrize("name", sorted(INIT_REFERENCE))
def test_every_init_on_conv_weights_is_torch_nn_init_with_pytorchs_fans(name):
    torch.manual_seed(0)
    ref = mnist1d_reference_cnn()
    layers = [m for m in ref if isinstance(m, (nn.Conv1d, nn.Linear))]
    for layer in layers:  # build everything, then re-init input side first, as for the MLP
        INIT_REFERENCE[name](layer.weight)
    torch.manual_seed(0)
    mine = build_model(ModelConfig(init=name, **REFERENCE_CNN), 40, 10)
    for a, b in zip(mine.hidden_layers + [mine[-1]], layers):
        assert torch.equal(a.weight, b.weight)
        assert torch.count_nonzero(a.bias) == 0


@pytest.mark.parametrize("name, variance", [
    ("default", lambda fi, fo: 1 / (3 * fi)),
    ("xavier_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("kaiming_normal", lambda fi, fo: 2 / fi),
])
def test_conv_init_variances_use_fans_over_the_kernel(name, variance):
    cfg = ModelConfig(kind="cnn1d", channels=[64, 64], kernel=[7, 5], init=name,
                      activation="relu")
    torch.manual_seed(0)
    conv = build_model(cfg, 40, 3).hidden_layers[1]
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    assert (fan_in, fan_out) == (64 * 5, 64 * 5)
    assert conv.weight.var().item() == pytest.approx(variance(fan_in, fan_out), rel=0.05)


def test_a_user_init_gets_conv_weights(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch

        def constant(weight, layer, value=0.1):
            torch.nn.init.constant_(weight, value * weight.shape[0])
        """, "family_inits")
    (spec,) = expand(make_suite(f"""
        [task]
        kind = "spiral"
        points_per_class = 10
        [model]
        kind = "cnn1d"
        channels = [3]
        kernel = 2
        activation = "relu"
        init = {{ fn = "{name}:constant", value = 0.5 }}
        [train]
        optimizer = "sgd"
        lr = 0.1
        epochs = 1
        """))
    model = build_model(spec.model, 2, 3)
    assert torch.equal(model[0].weight, torch.full((3, 1, 2), 1.5))
    assert torch.equal(model[-1].weight, torch.full((3, 3), 1.5))


# -- trials and runs -----------------------------------------------------------------------------

DIGITS_CNN = ('kind = "cnn1d"\nchannels = [6, 5]\nkernel = [5, 3]\nstride = 2\npadding = 1\n'
              'activation = "relu"')


def test_a_cnn1d_trial_trains_and_records_its_channels():
    spec = one_spec(task='kind = "digits"\ntest_fraction = 0.25', model=DIGITS_CNN,
                    train='optimizer = "adam"\nlr = 0.01\nepochs = 4\nbatch_size = 128\n'
                          'log_every = 2')
    result = run_trial(spec)
    assert result.status == "ok", result.trial["error"]
    assert result.trial["final_accuracy"] > 0.5  # it learns
    assert {r["unit"] for r in result.layers} == {"channel"}
    assert sorted({r["layer"] for r in result.layers}) == [0, 1]
    assert sorted({r["epoch"] for r in result.layers}) == [0, 2, 4]
    final = [r for r in result.layers if r["epoch"] == 4]
    assert result.trial["dead_fraction"] == pytest.approx(
        sum(r["dead_fraction"] for r in final) / 2)
    model = build_model(spec.model, 64, 10)
    assert result.trial["n_params"] == sum(p.numel() for p in model.parameters())
    assert result.state_dict.keys() == model.state_dict().keys()


def test_a_run_of_both_families_stores_reloads_and_reports(tmp_path):
    suite = bench.load_suite("""
        name = "families"
        seeds = [0, 1]
        [task]
        kind = "spiral"
        points_per_class = 30
        [model]
        activation = "relu"
        [train]
        optimizer = "adam"
        lr = 0.02
        epochs = 6
        log_every = 3
        [[variant]]
        name = "mlp"
        "model.hidden" = [8, 8]
        "model.residual" = true
        [[variant]]
        name = "cnn"
        "model.kind" = "cnn1d"
        "model.channels" = [4, 3]
        "model.kernel" = [2, 1]
        "model.padding" = [1, 0]
        """.replace("\n        ", "\n"))
    run = bench.run(suite, workers=1, out=tmp_path)
    trials = run.trials
    assert set(trials["status"]) == {"ok"} and len(trials) == 4
    assert set(trials["model.kind"]) == {"mlp", "cnn1d"}
    units = run.layers.merge(trials[["trial_id", "model.kind"]])
    assert set(zip(units["model.kind"], units["unit"])) == {("mlp", "neuron"),
                                                            ("cnn1d", "channel")}
    data = bench.open_run(run.dir)._data  # RunData: the models as the report rebuilds them
    x = torch.randn(5, 2)
    for _, row in trials.iterrows():
        model = data.model(row)
        assert model is not None and model(x).shape == (5, 3)
        assert type(model).__name__ == ("CNN1d" if row["model.kind"] == "cnn1d" else "MLP")
    (md,) = run.report(format="md", out=tmp_path / "report")  # figures take either family
    assert "Spiral: decision boundaries" in md.read_text()


# -- packing -------------------------------------------------------------------------------------

SPIRAL = 'kind = "spiral"\npoints_per_class = 40'
DIGITS = 'kind = "digits"\ntest_fraction = 0.25'

PACK_CASES = {
    "cnn1d, full batch, adam, relu": (
        DIGITS, DIGITS_CNN, 'optimizer = "adam"\nlr = 0.01\nepochs = 6\nlog_every = 3\n'
                            'weight_decay = 1e-4'),
    "cnn1d, mini-batches with accumulation, sgd momentum, tanh, two input channels": (
        DIGITS, 'kind = "cnn1d"\nin_channels = 2\nchannels = [4, 4]\nkernel = 3\nstride = [2, 1]'
                '\nactivation = "tanh"\ninit = "xavier_uniform"',
        'optimizer = "sgd"\nlr = 0.05\nmomentum = 0.9\nepochs = 2\nbatch_size = 100\n'
        'accumulation_steps = 2'),
    "cnn1d, sigmoid, ragged accumulation": (
        SPIRAL, 'kind = "cnn1d"\nchannels = [5]\nkernel = 2\npadding = 1\nactivation = "sigmoid"',
        'optimizer = "adamw"\nlr = 0.05\nepochs = 10\naccumulation_steps = 7\nlog_every = 5'),
    "residual mlp, adam, relu": (
        SPIRAL, 'hidden = [12, 12, 12]\nresidual = true\nactivation = "relu"',
        'optimizer = "adam"\nlr = 0.01\nepochs = 20\nlog_every = 4'),
    "residual mlp, mini-batches, leaky_relu, regression": (
        'kind = "cubic"', 'hidden = [16, 16]\nresidual = true\nactivation = "leaky_relu"',
        'optimizer = "sgd"\nlr = 0.05\nepochs = 5\nbatch_size = 16'),
}


@pytest.mark.parametrize("case", PACK_CASES, ids=list(PACK_CASES))
def test_a_pack_of_either_family_matches_its_trials_run_one_at_a_time(case):
    specs = specs_of(*PACK_CASES[case])
    packed = run_pack(specs)
    for spec, result in zip(specs, packed):
        assert result.trial["pack_size"] == 3 and result.status == "ok", result.trial["error"]
        assert_same_numbers(result, run_trial(spec))
    assert len({r.trial["final_loss"] for r in packed}) == 3  # each member its own


def test_packed_cnn_keeps_each_members_weights_under_the_models_keys():
    cfg = ModelConfig(**REFERENCE_CNN)
    models = []
    for seed in range(4):
        torch.manual_seed(seed)
        models.append(build_model(cfg, 40, 10))
    pack = PackedModel(models)
    assert pack.members == 4 and pack.unit == "channel" and len(pack.hidden_layers) == 3
    assert pack.member_params() == sum(p.numel() for p in models[0].parameters())
    for p, model in enumerate(models):
        for key, value in pack.member_state_dict(p).items():
            assert torch.equal(value, model.state_dict()[key])
    x = torch.randn(4, 9, 40)
    out = pack(x)
    for p, model in enumerate(models):
        torch.testing.assert_close(out[p], model(x[p]), rtol=1e-5, atol=1e-6)


def test_plan_packs_both_families_and_auto_weighs_the_conv_layers():
    specs = expand(make_suite("""
        seeds = [0, 1, 2]
        [task]
        kind = "digits"
        [model]
        activation = "relu"
        [train]
        optimizer = "adam"
        lr = 0.01
        epochs = 1
        batch_size = 32
        [[variant]]
        name = "cnn"
        "model.kind" = "cnn1d"
        "model.channels" = [8, 8]
        "model.kernel" = 3
        [[variant]]
        name = "res"
        "model.hidden" = [32, 32]
        "model.residual" = true
        [[variant]]
        name = "wide-cnn"
        "model.kind" = "cnn1d"
        "model.channels" = [64, 64]
        "model.kernel" = 3
        """))
    assert [len(u) for u in plan(specs, "on")] == [3, 3, 3]
    # auto: a cnn1d as an MLP, by the values and multiply-adds of its largest layer per
    # micro-batch; one beyond the limits trains alone, and so does the rest of the device's grid
    # (timings stay comparable)
    cnn, res, wide = specs[0], specs[3], specs[6]
    assert worth_packing(cnn) and worth_packing(res) and not worth_packing(wide)
    assert [len(u) for u in plan(specs, "auto")] == [1] * 9
    assert [len(u) for u in plan(specs[:6], "auto")] == [3, 3]
    assert layer_costs(cnn.model, 64, 10)[:2] == [(8 * 62, 8 * 3 * 62), (8 * 60, 8 * 8 * 3 * 60)]
    # 32 samples x 64 x 64 x 3 x 60 = 23.6M multiply-adds in the second conv layer
    assert 32 * layer_costs(wide.model, 64, 10)[1][1] > packing.AUTO_MAX_LAYER_MACS
    # the MNIST-1D reference CNN with its batches of 100: within both limits
    reference = one_spec(task='kind = "bench.perf:mnist1d_shaped"\nn = 400',
                         model=REFERENCE_MODEL,
                         train='optimizer = "adam"\nlr = 0.01\nepochs = 1\nbatch_size = 100')
    assert worth_packing(reference)


REFERENCE_MODEL = ('kind = "cnn1d"\nchannels = [25, 25, 25]\nkernel = [5, 3, 3]\nstride = 2\n'
                   'padding = 1\nactivation = "relu"')


def test_the_reference_cnn_packs_five_seeds_exactly():
    # The MNIST-1D suite's pack: five seeds of the reference CNN, batches of 100, on data of
    # MNIST-1D's shape. SGD with momentum: Adam at lr 1e-2 turns float rounding in a gradient
    # that is nearly 0 into a step of up to lr, so its runs drift apart within a few epochs,
    # a pack from its members as much as one trial on one thread from the same on two.
    specs = specs_of('kind = "bench.perf:mnist1d_shaped"\nn = 600', REFERENCE_MODEL,
                     'optimizer = "sgd"\nlr = 0.05\nmomentum = 0.9\nbatch_size = 100\n'
                     'epochs = 3\nlog_every = 1', seeds=range(5))
    packed = run_pack(specs)
    for spec, result in zip(specs, packed):
        assert result.trial["pack_size"] == 5 and result.status == "ok", result.trial["error"]
        assert_same_numbers(result, run_trial(spec))
    assert len({r.trial["final_loss"] for r in packed}) == 5


def test_a_packed_cnn_keeps_its_conv_layers_member_first_and_channels_last():
    """The speed of a packed cnn1d on the CPU rests on one layout: every conv layer's output,
    activation and gradient is a contiguous (P, n, length, channels), so the next layer's
    windows are strided views of it and no copy is made between layers (PackedConv1d). The
    members' outputs and gradients are their models' own."""
    models = []
    for seed in range(5):
        torch.manual_seed(seed)
        models.append(build_model(ModelConfig(**REFERENCE_CNN), 40, 10))
    pack = PackedModel(models)
    seen = []

    def hook(layer):
        def record(module, inputs, output):
            seen.append((layer, "input", inputs[0]))
            seen.append((layer, "output", output))
            inputs[0].register_hook(lambda g: seen.append((layer, "input's gradient", g)))
            output.register_hook(lambda g: seen.append((layer, "output's gradient", g)))
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(pack.hidden_activations)]
    x = torch.randn(5, 32, 40)
    out = pack(x)
    out.square().sum().backward()
    for h in handles:
        h.remove()
    assert len(seen) == 12
    lengths = [19, 10, 5]  # the reference CNN's: 40 -> 19 -> 10 -> 5, 25 channels each
    for layer, what, t in seen:
        assert t.shape == (5, 32, lengths[layer], 25), (layer, what)
        # The one copy: the head flattens channels first, as a member's nn.Flatten does, so the
        # gradient reaching the last activation is the flatten's transposed view.
        if (layer, what) != (2, "output's gradient"):
            assert t.is_contiguous(), (layer, what)
    for p, model in enumerate(models):
        want = model(x[p])
        want.square().sum().backward()
        torch.testing.assert_close(out[p], want, rtol=1e-5, atol=1e-6)
        for (key, packed), param in zip(pack.named_parameters(), model.parameters()):
            torch.testing.assert_close(packed.grad[p], param.grad, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, key=key: f"{key}: {m}")
