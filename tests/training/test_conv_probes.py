"""Probes on conv layers against plain PyTorch on the same weights: a channel is one unit over
all its positions (dead or saturated for every sample at every position), the activation and
backprop statistics are over samples x positions x channels."""

import math

import pytest
import torch
from torch import nn

from bench.suite import expand
from bench.training.activations import ACTIVATIONS, SATURATION_MARGIN, resolve
from bench.training.config import ModelConfig
from bench.training.model import build_model
from bench.training.packing import PackedModel
from bench.training.probes import LayerProbe, LayerStats
from tests.helpers import make_suite, user_module

CONV = dict(kind="cnn1d", channels=[6, 5], kernel=[3, 2], stride=[1, 2], padding=[1, 0])


def hand_made(activation, seed=0, biases=((1, -100.0), (3, -100.0)), later=((2, -100.0),)):
    """A cnn1d on 12 inputs whose channels ``biases`` (layer 0) and ``later`` (layer 1) have a
    bias far from 0: -100 makes a ReLU channel dead at every position, +100 a tanh channel
    saturated."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(activation=activation, **CONV), 12, 3)
    with torch.no_grad():
        for c, b in biases:
            model[0].bias[c] = b
        for c, b in later:
            model[2].bias[c] = b
    return model


def probed(model, activation, x, y, chunks=1, metered=False):
    model.zero_grad()
    probe = LayerProbe(model, ACTIVATIONS[activation], metered=metered)
    for xb, yb in zip(x.tensor_split(chunks), y.tensor_split(chunks)):
        (nn.functional.cross_entropy(model(xb), yb, reduction="sum") / len(x)).backward()
    probe.close()
    return probe.rows(epoch=0)


def by_hand(model, x, y):
    """Pre-activations (with their gradients) and outputs of each conv layer, by a plain
    forward pass on the model's own weights."""
    model.zero_grad()
    h = x.view(len(x), 1, -1)
    pre, post = [], []
    for conv, act in zip(model.hidden_layers, model.hidden_activations):
        z = nn.functional.conv1d(h, conv.weight, conv.bias, conv.stride, conv.padding)
        z.retain_grad()
        h = act(z)
        pre.append(z)
        post.append(h)
    logits = nn.functional.linear(h.flatten(1), model[-1].weight, model[-1].bias)
    nn.functional.cross_entropy(logits, y).backward()
    return pre, post


def data(n=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_relu_channels_made_dead_are_dead_and_the_stats_match_pytorch():
    model = hand_made("relu")
    x, y = data()
    rows = probed(model, "relu", x, y)
    pre, post = by_hand(model, x, y)
    assert [r["unit"] for r in rows] == ["channel", "channel"]
    assert rows[0]["dead_fraction"] == pytest.approx(2 / 6)  # the two made dead
    assert rows[1]["dead_fraction"] >= 1 / 5 - 1e-6  # the one made dead, and any other
    for row, z, a, conv in zip(rows, pre, post, model.hidden_layers):
        dead = (a <= 0).all(2).all(0)  # per channel: every sample, every position
        assert row["dead_fraction"] == pytest.approx(dead.float().mean().item())
        assert row["activation_mean"] == pytest.approx(a.mean().item(), rel=1e-5)
        assert row["activation_std"] == pytest.approx(a.std().item(), rel=1e-5)
        assert row["weight_grad_norm"] == pytest.approx(conv.weight.grad.norm().item(), rel=1e-5)
        assert row["backprop_grad_std"] == pytest.approx(z.grad.std().item(), rel=1e-5)
        assert math.isnan(row["saturated_fraction"])


def test_a_channel_alive_at_one_position_only_is_alive():
    # channel 0: zero everywhere but one position of one sample; channel 1: zero everywhere
    a = torch.zeros(4, 2, 7)
    a[2, 0, 5] = 0.3
    s = LayerStats(ACTIVATIONS["relu"], positions=True)
    for chunk in a.tensor_split(2):
        s.add_output(chunk.unsqueeze(0))
    assert s.fraction_false(s.alive) == [0.5]


@pytest.mark.parametrize("activation, bound", [("tanh", 1.0), ("sigmoid", 1.0)])
def test_saturated_channels_match_pytorch(activation, bound):
    model = hand_made(activation, biases=((0, 100.0), (4, -100.0)), later=((1, 100.0),))
    x, y = data()
    rows = probed(model, activation, x, y)
    pre, post = by_hand(model, x, y)
    lo, hi = ACTIVATIONS[activation].bounds
    for row, z, a in zip(rows, pre, post):
        near = ((a - lo) < SATURATION_MARGIN) | ((hi - a) < SATURATION_MARGIN)
        saturated = near.all(2).all(0).float().mean().item()
        assert row["saturated_fraction"] == pytest.approx(saturated)
        assert row["activation_mean"] == pytest.approx(a.mean().item(), rel=1e-5)
        assert row["activation_std"] == pytest.approx(a.std().item(), rel=1e-5)
        assert row["backprop_grad_std"] == pytest.approx(z.grad.std().item(), rel=1e-4)
    assert rows[0]["saturated_fraction"] == pytest.approx(2 / 6)
    assert rows[1]["saturated_fraction"] >= 1 / 5 - 1e-6


def test_leaky_relu_channels_are_dead_when_negative_everywhere():
    model = hand_made("leaky_relu")
    x, y = data()
    rows = probed(model, "leaky_relu", x, y)
    _, post = by_hand(model, x, y)
    for row, a in zip(rows, post):
        assert row["dead_fraction"] == pytest.approx((a < 0).all(2).all(0).float().mean().item())
    assert rows[0]["dead_fraction"] == pytest.approx(2 / 6)


def test_a_user_activations_saturation_comes_from_its_slope(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, """
        import torch

        def soft_clip(x):
            return torch.tanh(x)
        """, "conv_user_acts")
    keys = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in CONV.items())
    (spec,) = expand(make_suite(f"[task]\nkind = \"spiral\"\n[model]\n{keys}\n"
                                f"activation = \"{name}:soft_clip\"\n[train]\n"
                                "optimizer = \"sgd\"\nlr = 0.1\nepochs = 1\n"))
    act = resolve(spec.model.activation)
    torch.manual_seed(0)
    model = build_model(spec.model, 12, 3)
    with torch.no_grad():
        model[0].bias[2] = 100.0  # tanh'(100) = 0 at every position
    x, y = data()
    probe = LayerProbe(model, act)
    nn.functional.cross_entropy(model(x), y).backward()
    probe.close()
    rows = probe.rows(0)
    assert rows[0]["saturated_fraction"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("metered", [True, False])
@pytest.mark.parametrize("chunks", [1, 7])
def test_conv_rows_do_not_depend_on_chunking_or_buffering(metered, chunks, monkeypatch):
    monkeypatch.setattr(LayerProbe, "BUFFER_VALUES", 700)  # forces several flushes
    model = hand_made("sigmoid", biases=((0, 100.0),), later=())
    x, y = data(90)
    reference = probed(model, "sigmoid", x, y, 1, True)
    for got, want in zip(probed(model, "sigmoid", x, y, chunks, metered), reference):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_packs_conv_rows_are_each_members_own(activation):
    seeds = [0, 1, 2]
    members = [hand_made(activation, seed=s, biases=((s, -100.0 if activation == "relu" else 100.0),),
                         later=()) for s in seeds]
    pack = PackedModel(members)
    xs = [data(40, seed=10 + s) for s in seeds]
    probe = LayerProbe(pack, ACTIVATIONS[activation])
    out = pack(torch.stack([x for x, _ in xs]))
    losses = [nn.functional.cross_entropy(out[p], xs[p][1]) for p in range(3)]
    sum(losses).backward()
    probe.close()
    packed_rows = probe.member_rows(0)
    for p, model in enumerate(members):
        alone = probed(model, activation, *xs[p])
        assert len(packed_rows[p]) == len(alone) == 2
        for got, want in zip(packed_rows[p], alone):
            assert got.keys() == want.keys()
            for key, value in want.items():
                if isinstance(value, float) and math.isnan(value):
                    assert math.isnan(got[key]), key
                else:
                    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_mlp_rows_say_their_units_are_neurons():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=[4, 4], residual=True, activation="relu"), 12, 3)
    x, y = data()
    rows = probed(model, "relu", x, y)
    assert [r["unit"] for r in rows] == ["neuron", "neuron"]
    # a residual layer's probe reads the layer's own units, act(Linear(h)), not h + act(...)
    h0 = torch.relu(model[0](x))
    a1 = torch.relu(model[2](h0))
    assert rows[1]["activation_mean"] == pytest.approx(a1.mean().item(), rel=1e-5)
