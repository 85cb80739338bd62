"""Dead and saturated definitions on hand-made tensors; probe statistics against autograd."""

import math

import pytest
import torch
from torch import nn

from bench.training.activations import ACTIVATIONS
from bench.training.config import ModelConfig
from bench.training.model import MLP
from bench.training.probes import LayerProbe, LayerStats, Moments


def stats(name, outputs, chunks=1):
    s = LayerStats(ACTIVATIONS[name])
    for chunk in torch.as_tensor(outputs, dtype=torch.float32).tensor_split(chunks):
        s.add_output(chunk.unsqueeze(0))  # member first: one member
    return s


def dead(name, outputs, chunks=1):
    s = stats(name, outputs, chunks)
    (fraction,) = s.fraction_false(s.alive)
    return fraction


def saturated(name, outputs, chunks=1):
    s = stats(name, outputs, chunks)
    (fraction,) = s.fraction_false(s.unsaturated)
    return fraction


def test_relu_dead_means_zero_for_every_sample():
    # units: always 0 | 0 then positive | tiny positive once | always positive
    out = [[0.0, 0.0, 0.0, 1.0],
           [0.0, 2.0, 0.0, 1.0],
           [0.0, 0.0, 1e-7, 3.0]]
    assert dead("relu", out) == pytest.approx(1 / 4)
    assert dead("relu", out, chunks=3) == pytest.approx(1 / 4)


def test_leaky_relu_dead_means_negative_for_every_sample():
    out = [[-0.01, -0.02, 0.0, 5.0],
           [-0.03, 1.00, -0.1, 5.0]]
    # unit 0 negative for all; unit 2 is 0 once (not negative): alive
    assert dead("leaky_relu", out) == pytest.approx(1 / 4)


def test_other_activations_are_dead_only_when_exactly_zero_for_every_sample():
    assert dead("tanh", [[0.0, 0.0], [0.0, 1e-3]]) == pytest.approx(1 / 2)
    assert dead("sigmoid", [[0.5], [0.01]]) == 0.0


def test_sigmoid_saturation_within_001_of_a_bound_for_every_sample():
    out = [[0.005, 0.995, 0.005, 0.5, 0.0100001],
           [0.002, 0.999, 0.995, 0.5, 0.5]]
    # unit 0: always near 0; unit 1: always near 1; unit 2: near 0 then near 1 (still
    # saturated: each sample is within 0.01 of a bound); unit 3 never; unit 4: 0.0100001 is not
    # within 0.01 of 0 (|0.0100001 - 0| > 0.01)
    assert saturated("sigmoid", out) == pytest.approx(3 / 5)
    assert saturated("sigmoid", out, chunks=2) == pytest.approx(3 / 5)


def test_tanh_saturation_is_abs_above_099():
    out = [[0.995, -0.9999, 0.98], [0.991, -0.995, 0.999]]
    assert saturated("tanh", out) == pytest.approx(2 / 3)


def test_saturation_is_undefined_for_unbounded_activations():
    assert math.isnan(saturated("relu", [[1.0]]))


def test_moments_merge_across_chunks_exactly():
    x = torch.randn(1000, dtype=torch.float64) * 0.01 + 0.99  # mean dwarfs the spread
    m = Moments()
    for chunk in x.tensor_split(7):
        m.add(chunk.unsqueeze(0))
    assert m.mean == [pytest.approx(x.mean().item(), rel=1e-12)]
    assert m.std == [pytest.approx(x.std().item(), rel=1e-9)]


def test_probe_rows_match_autograd():
    torch.manual_seed(0)
    model = MLP(ModelConfig(hidden=(6, 5), activation="relu"), 3, 2)
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    probe = LayerProbe(model, ACTIVATIONS["relu"])
    nn.functional.cross_entropy(model(x), y).backward()
    probe.close()
    rows = probe.rows(epoch=0)

    # Reference: the pre-activations by hand, with retain_grad.
    model.zero_grad()
    pre, h = [], x
    for linear, act in zip(model.hidden_linears, model.hidden_activations):
        z = linear(h)
        z.retain_grad()
        pre.append(z)
        h = act(z)
    nn.functional.cross_entropy(model[-1](h), y).backward()
    for row, z, linear in zip(rows, pre, model.hidden_linears):
        a = torch.relu(z)
        assert row["dead_fraction"] == pytest.approx(((z <= 0).all(0)).float().mean().item())
        assert row["activation_mean"] == pytest.approx(a.mean().item(), rel=1e-5)
        assert row["activation_std"] == pytest.approx(a.std().item(), rel=1e-5)
        assert row["backprop_grad_std"] == pytest.approx(z.grad.std().item(), rel=1e-5)
        assert row["weight_grad_norm"] == pytest.approx(linear.weight.grad.norm().item(), rel=1e-5)
    assert [r["layer"] for r in rows] == [0, 1]


def test_probe_detaches_its_hooks():
    model = MLP(ModelConfig(hidden=(4,), activation="relu"), 2, 2)
    probe = LayerProbe(model, ACTIVATIONS["relu"])
    probe.close()
    model(torch.randn(3, 2)).sum().backward()
    assert probe.stats[0].out.n == 0


def test_saturation_bounds_are_strict_as_design_says():
    # |tanh| > 0.99 and sigmoid < 0.01 or > 0.99: exactly 0.99 / 0.01 is not saturated
    assert saturated("tanh", [[0.99], [-0.99]]) == 0.0
    assert saturated("sigmoid", [[0.99], [0.01]]) == 0.0
    assert saturated("tanh", [[0.9901], [-0.9901]]) == 1.0


@pytest.mark.parametrize("metered", [True, False])
@pytest.mark.parametrize("chunks", [1, 7])
def test_rows_do_not_depend_on_chunking_or_buffering(metered, chunks, monkeypatch):
    """Micro-batches reduced one by one, or buffered and reduced together, agree."""
    monkeypatch.setattr(LayerProbe, "BUFFER_VALUES", 500)  # forces several flushes
    torch.manual_seed(0)
    model = MLP(ModelConfig(hidden=(6, 5), activation="sigmoid"), 3, 2)
    x, y = torch.randn(90, 3), torch.randint(0, 2, (90,))

    def rows(n_chunks, metered_):
        model.zero_grad()
        probe = LayerProbe(model, ACTIVATIONS["sigmoid"], metered=metered_)
        for xb, yb in zip(x.tensor_split(n_chunks), y.tensor_split(n_chunks)):
            (nn.functional.cross_entropy(model(xb), yb, reduction="sum") / 90).backward()
        probe.close()
        return probe.rows(epoch=0)

    reference = rows(1, True)
    for got, want in zip(rows(chunks, metered), reference):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
