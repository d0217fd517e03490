# SPDX-License-Identifier: MIT
import copy
import io
import math

import pytest
import torch
from torch import nn

from ensemble_nets.layers import ScaledLinear, SpikeSlabLinear, mean_field_preactivation
from tests.common import make_layer


def test_moments_match_monte_carlo_over_weight_samples():
    layer = make_layer(40, 5)
    x = torch.rand(3, 40, dtype=torch.float64)
    mean, var = layer.moments(x)
    weights = layer.distribution().sample((20000,))  # (S, out, in)
    h = torch.einsum("soi,bi->sbo", weights, x) / math.sqrt(40)  # (S, B, out)
    mc_mean, mc_var = h.mean(0), h.var(0)
    std_err = (var / 20000).sqrt()
    assert torch.all((mc_mean - mean).abs() < 5 * std_err)
    assert torch.allclose(mc_var, var, rtol=0.05)


def test_moments_formula():
    layer = make_layer(20, 3)
    x = torch.randn(4, 20, dtype=torch.float64)
    mean, var = layer.moments(x)
    pi, m, xi = layer.pi, layer.m, layer.xi
    assert torch.allclose(mean, x @ ((1 - pi) * m).t() / math.sqrt(20))
    assert torch.allclose(var, x.square() @ ((1 - pi) * (xi + pi * m * m)).t() / 20)


def test_training_forward_samples_have_the_moments():
    layer = make_layer(25, 4, floor=0.0).train()
    x = torch.rand(1, 25, dtype=torch.float64).expand(40000, 25)
    h = layer(x)
    mean, var = layer.moments(x[:1])
    assert torch.allclose(h.mean(0), mean[0], atol=5 * (var[0] / 40000).sqrt().max().item())
    assert torch.allclose(h.var(0), var[0], rtol=0.05)


@pytest.mark.parametrize("pi_value", [0.0, 1.0, None])
def test_manual_gbp_equals_autograd(pi_value):
    n_in, n_out = 12, 5
    pi = None if pi_value is None else torch.full((n_out, n_in), pi_value, dtype=torch.float64)
    layer = make_layer(n_in, n_out, pi=pi)
    x = torch.randn(6, n_in, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(6, n_out, dtype=torch.float64)
    target = torch.randn(6, n_out, dtype=torch.float64)

    def grads(kind):
        from ensemble_nets.layers.spike_slab import _MeanFieldFunction

        params = [x, layer.pi, layer.m, layer.xi]
        if kind == "manual":
            h = _MeanFieldFunction.apply(x, layer.pi, layer.m, layer.xi, eps, 1e-8)
        else:
            h = mean_field_preactivation(x, layer.pi, layer.m, layer.xi, eps, 1e-8)
        loss = ((h - target) ** 2).sum()
        return h, torch.autograd.grad(loss, params)

    h_manual, g_manual = grads("manual")
    h_auto, g_auto = grads("autograd")
    assert torch.allclose(h_manual, h_auto)
    for a, b in zip(g_manual, g_auto):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_manual_gbp_gradcheck():
    from ensemble_nets.layers.spike_slab import _MeanFieldFunction

    layer = make_layer(6, 3)
    x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x, pi, m, xi: _MeanFieldFunction.apply(x, pi, m, xi, eps, 1e-3), (x, layer.pi, layer.m, layer.xi)
    )


def test_gradients_match_design_formulas():
    """dL/dm, dL/dxi, dL/dpi of DESIGN.md section 2, written out element by element."""
    layer = make_layer(8, 3)
    a = torch.rand(5, 8, dtype=torch.float64)
    eps = torch.randn(5, 3, dtype=torch.float64)
    h = mean_field_preactivation(a, layer.pi, layer.m, layer.xi, eps, 0.0)
    delta_out = torch.randn_like(h)  # dL/dh
    (h * delta_out).sum().backward()
    pi, m, xi = layer.pi.detach(), layer.m.detach(), layer.xi.detach()
    mu, var = (1 - pi) * m, (1 - pi) * (xi + pi * m * m)
    big_delta = (a.square() @ var.t()).sqrt()  # (B, out)
    r = (delta_out * eps / big_delta)  # delta_i eps_i / Delta_i
    c = 1 / math.sqrt(8)
    a_, a2 = a[:, None, :], a.square()[:, None, :]
    d, r_ = delta_out[:, :, None], r[:, :, None]
    grad_m = ((1 - pi) * d * a_ + pi * mu * r_ * a2).sum(0) * c
    grad_xi = ((1 - pi) * r_ / 2 * a2).sum(0) * c
    grad_pi = -(m * d * a_ + (xi + (2 * pi - 1) * m * m) * r_ / 2 * a2).sum(0) * c
    assert torch.allclose(layer.m.grad, grad_m)
    assert torch.allclose(layer.xi.grad, grad_xi)
    assert torch.allclose(layer.pi.grad, grad_pi)


def test_deterministic_layer_is_scaled_linear():
    zeros = torch.zeros(4, 9, dtype=torch.float64)
    layer = make_layer(9, 4, pi=zeros, xi=zeros, floor=0.0).train()
    x = torch.randn(3, 9, dtype=torch.float64)
    expected = x @ layer.m.t() / 3.0
    assert torch.allclose(layer(x), expected)
    plain = ScaledLinear(9, 4, dtype=torch.float64)
    with torch.no_grad():
        plain.weight.copy_(layer.m)
    assert torch.allclose(plain(x), expected)


def test_absent_connections_output_zero():
    ones = torch.ones(4, 9, dtype=torch.float64)
    layer = make_layer(9, 4, pi=ones).train()
    out = layer(torch.randn(3, 9, dtype=torch.float64))
    assert torch.count_nonzero(out.abs() > 1e-3) == 0
    layer.eval_mode = "sample"
    assert torch.count_nonzero(layer.eval()(torch.randn(3, 9, dtype=torch.float64))) == 0


@pytest.mark.parametrize("pi_value", [0.0, 1.0])
def test_no_nan_gradient_at_deterministic_boundary(pi_value):
    layer = make_layer(10, 3, pi=torch.full((3, 10), pi_value), xi=torch.zeros(3, 10), dtype=torch.float32)
    x = torch.rand(8, 10)
    for gbp in ("manual", "autograd"):
        layer.gbp = gbp
        layer.zero_grad()
        layer(x).square().sum().backward()
        for p in (layer.pi, layer.m, layer.xi):
            assert torch.isfinite(p.grad).all()


def test_eval_modes():
    layer = make_layer(10, 3).eval()
    x = torch.randn(2, 10, dtype=torch.float64)
    layer.eval_mode = "mean"
    assert torch.allclose(layer(x), layer.moments(x)[0])
    layer.eval_mode = "mean_field"
    assert not torch.allclose(layer(x), layer(x))
    with pytest.raises(ValueError, match="eval_mode must be one of"):
        layer.eval_mode = "median"


def test_sample_weight_follows_q():
    n = 200
    layer = make_layer(n, n, pi=torch.full((n, n), 0.3, dtype=torch.float64),
                       m=torch.full((n, n), 2.0, dtype=torch.float64), xi=torch.full((n, n), 0.25, dtype=torch.float64))
    w = layer.sample_weight(torch.Generator().manual_seed(1))
    present = w != 0
    assert abs(1 - present.double().mean().item() - 0.3) < 0.01
    assert abs(w[present].mean().item() - 2.0) < 0.01
    assert abs(w[present].var().item() - 0.25) < 0.01
    w2 = layer.sample_weight(torch.Generator().manual_seed(1))
    assert torch.equal(w, w2)


def test_weight_property_is_mean_weight():
    layer = make_layer(5, 2)
    assert torch.allclose(layer.weight, (1 - layer.pi) * layer.m)


def test_project_clips_and_counts():
    layer = make_layer(4, 2)
    with torch.no_grad():
        layer.pi[0, 0], layer.pi[1, 1], layer.xi[0, 2] = -0.5, 1.5, -0.1
    moved = layer.project_()
    assert moved.item() == 3
    assert layer.pi.min() >= 0 and layer.pi.max() <= 1 and layer.xi.min() >= 0
    assert layer.pi[0, 0] == 0 and layer.pi[1, 1] == 1 and layer.xi[0, 2] == 0
    assert layer.project_().item() == 0


def test_state_dict_round_trip_and_sequential():
    torch.manual_seed(3)
    layer = SpikeSlabLinear(6, 4, bias=True)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other = SpikeSlabLinear(6, 4, bias=True)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("pi", "m", "xi", "bias"):
        assert torch.equal(getattr(layer, name), getattr(other, name))
    net = nn.Sequential(layer, nn.ReLU(), SpikeSlabLinear(4, 2))
    assert net(torch.randn(3, 6)).shape == (3, 2)
    assert set(net.state_dict()) == {"0.pi", "0.m", "0.xi", "0.bias", "2.pi", "2.m", "2.xi"}


def test_to_moves_and_casts_everything():
    layer = SpikeSlabLinear(6, 4, bias=True).to(torch.float64)
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    layer = layer.to("cpu")
    assert all(p.device.type == "cpu" for p in layer.parameters())
    copied = copy.deepcopy(layer)
    assert torch.equal(copied.m, layer.m)


def test_reference_initialization():
    torch.manual_seed(0)
    layer = SpikeSlabLinear(784, 300)
    assert torch.all(layer.pi == 0)
    assert 0 <= layer.xi.min() and layer.xi.max() <= 0.01 and abs(layer.xi.mean().item() - 0.005) < 2e-4
    assert abs(layer.m.std().item() - math.sqrt(2 / 784)) < 1e-3


def test_wrong_width_and_bad_options_raise_clear_errors():
    layer = SpikeSlabLinear(10, 3)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(\.\.\., 10\)"):
        layer(torch.randn(2, 11))
    with pytest.raises(ValueError, match="pi_init"):
        SpikeSlabLinear(3, 2, pi_init=1.5)
    with pytest.raises(ValueError, match="gbp must be one of"):
        SpikeSlabLinear(3, 2, gbp="numpy")
    with pytest.raises(ValueError, match="in_features"):
        SpikeSlabLinear(0, 2)


def test_check_constraints_names_the_problem():
    layer = make_layer(3, 2)
    layer.check_constraints()
    with torch.no_grad():
        layer.pi[0, 0] = 1.2
    with pytest.raises(ValueError, match=r"pi must lie in \[0, 1\]"):
        layer.check_constraints()


def test_manual_gbp_refuses_double_backward():
    layer = make_layer(6, 3).train()
    x = torch.rand(4, 6, dtype=torch.float64)
    (grad_m,) = torch.autograd.grad(layer(x).square().sum(), layer.m, create_graph=True)
    with pytest.raises(RuntimeError):
        grad_m.sum().backward()
    layer.gbp = "autograd"  # the documented route to second derivatives
    (grad_m,) = torch.autograd.grad(layer(x).square().sum(), layer.m, create_graph=True)
    grad_m.sum().backward()
    assert torch.isfinite(layer.m.grad).all()


def test_decayed_parameters_follow_decay_pi():
    assert SpikeSlabLinear(3, 2).decayed_parameters == ("m", "xi")
    assert SpikeSlabLinear(3, 2, decay_pi=True).decayed_parameters == ("pi", "m", "xi")
    with pytest.raises(ValueError, match="finite"):
        SpikeSlabLinear(3, 2, m_std=float("nan"))


def test_gbp_with_some_parameters_frozen_matches_autograd():
    """The gBP computes what is asked: a frozen pi gets no gradient, the others are unchanged."""
    from ensemble_nets.layers.spike_slab import _MeanFieldFunction

    layer = make_layer(9, 4)
    layer.pi.requires_grad_(False)
    x = torch.rand(5, 9, dtype=torch.float64)
    eps = torch.randn(5, 4, dtype=torch.float64)
    manual = torch.autograd.grad(_MeanFieldFunction.apply(x, layer.pi, layer.m, layer.xi, eps, 1e-8).sum(),
                                 (layer.m, layer.xi))
    auto = torch.autograd.grad(mean_field_preactivation(x, layer.pi, layer.m, layer.xi, eps, 1e-8).sum(),
                               (layer.m, layer.xi))
    for a, b in zip(manual, auto):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_projection_counts_per_run_and_clips_exactly():
    from ensemble_nets.layers.base import project_counts_

    pi = torch.tensor([[[-0.5, 0.0, 1.0, 1.5], [2.5, 0.3, -0.0, 1.0 + 1e-7]],
                       [[0.2, 0.4, 0.6, 0.8], [3.7, -2.0, 1.0, 0.0]]])
    xi = torch.tensor([[[-0.1, 0.0, -0.0, 0.2], [0.5, -1e-30, 3.0, 0.0]],
                       [[0.1, 0.1, 0.1, 0.1], [-7.0, 0.0, 0.0, 0.0]]])
    expected = ((pi < 0) | (pi > 1)).flatten(1).sum(1) + (xi < 0).flatten(1).sum(1)
    pi_clipped, xi_clipped = pi.clamp(0, 1), xi.clamp(min=0)
    moved = project_counts_(pi, xi, n_runs=2)
    assert moved.tolist() == expected.tolist() == [6, 3]
    assert torch.equal(pi, pi_clipped) and torch.equal(xi, xi_clipped)  # exactly 0 and 1 on the boundary
    assert ((pi == 0) | (pi == 1)).sum() == 11  # the boundary values the categories test for equality


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own imports (torch.jit)
def test_compiled_gbp_matches_manual_and_gradcheck():
    """gbp="compiled" (torch.compile'd kernels): same forward, gradients and projection as the eager gBP."""
    import shutil

    pytest.importorskip("torch._inductor")
    if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    from ensemble_nets.layers.spike_slab import _MeanFieldFunction

    layer = make_layer(7, 3)
    x = torch.rand(4, 7, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(4, 3, dtype=torch.float64)
    params = (x, layer.pi, layer.m, layer.xi)
    assert torch.autograd.gradcheck(lambda *a: _MeanFieldFunction.apply(*a, eps, 1e-3, True), params)
    g = torch.randn(4, 3, dtype=torch.float64)
    compiled = torch.autograd.grad(_MeanFieldFunction.apply(*params, eps, 1e-8, True), params, g)
    auto = torch.autograd.grad(mean_field_preactivation(*params, eps, 1e-8), params, g)
    for a, b in zip(compiled, auto):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # the whole layer, and its projection
    eager, fused = make_layer(7, 3), make_layer(7, 3, gbp="compiled")
    fused.load_state_dict(eager.state_dict())
    torch.manual_seed(5)
    h_eager = eager.train()(x.detach())
    torch.manual_seed(5)
    assert torch.allclose(fused.train()(x.detach()), h_eager)
    with torch.no_grad():
        for layer in (eager, fused):
            layer.pi[0, :3] = torch.tensor([-0.5, 1.5, 1.0], dtype=torch.float64)
            layer.xi[1, :2] = torch.tensor([-0.1, 0.0], dtype=torch.float64)
    assert eager.project_().item() == fused.project_().item() == 3
    assert torch.equal(eager.pi, fused.pi) and torch.equal(eager.xi, fused.xi)
