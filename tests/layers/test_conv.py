# SPDX-License-Identifier: MIT
"""SpikeSlabConv2d / SpikeSlabConv1d: moments by Monte Carlo over kernels, gBP by gradcheck, plain limits."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensemble_nets.layers import (
    ScaledConv2d,
    SpikeSlabConv1d,
    SpikeSlabConv2d,
    SpikeSlabLinear,
    is_spike_slab,
    spike_slab_layers,
)
from tests.common import _one_thread  # noqa: F401  (autouse: one intra-op thread for this module)


GEOMETRIES = [  # (stride, padding, dilation, groups, padding_mode)
    (1, 0, 1, 1, "zeros"),
    (2, 1, 1, 1, "zeros"),
    (1, 2, 2, 1, "zeros"),
    (2, 1, 1, 2, "zeros"),
    (1, "same", 1, 2, "reflect"),
]


def random_conv(cls=SpikeSlabConv2d, in_channels=4, out_channels=6, kernel_size=3, stride=1, padding=0,
                dilation=1, groups=1, padding_mode="zeros", bias=False, dtype=torch.float64, **kwargs):
    layer = cls(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                padding_mode=padding_mode, dtype=dtype, **kwargs)
    with torch.no_grad():  # every kind of connection: absent, deterministic, variable
        layer.pi.copy_(torch.rand_like(layer.pi))
        layer.pi[0].fill_(1.0)
        layer.pi[1].fill_(0.0)
        layer.m.copy_(torch.randn_like(layer.m))
        layer.xi.copy_(torch.rand_like(layer.xi) * 0.5)
        layer.xi[1].fill_(0.0)
        if bias:
            layer.bias.copy_(torch.randn_like(layer.bias))
    return layer


def sampled_outputs(layer, x, n_samples, chunk=2000):
    """Outputs of ``n_samples`` networks drawn from q (one shared kernel each): ``(S, *out_shape)``."""
    outs = []
    for start in range(0, n_samples, chunk):
        weights = layer.distribution().sample((min(chunk, n_samples - start),))  # (s, *weight_shape)
        outs.append(torch.func.vmap(lambda w: layer._apply_weight(x, w))(weights) / math.sqrt(layer.fan_in))
    return torch.cat(outs)


@pytest.mark.parametrize("stride, padding, dilation, groups, padding_mode", GEOMETRIES)
def test_moments_match_monte_carlo_over_sampled_kernels(stride, padding, dilation, groups, padding_mode):
    layer = random_conv(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    mean, var = layer.moments(x)
    n = 20_000
    outs = sampled_outputs(layer, x, n)  # (S, 2, 6, H', W')
    assert outs.shape[1:] == mean.shape
    se = (var / n).sqrt()
    assert ((outs.mean(0) - mean).abs() <= 6 * se + 1e-12).all()
    # the variance of a sample variance is (kurtosis - 1 + 2/(n-1)) var^2 / n; bound the kurtosis generously
    mc_var = outs.var(0)
    assert ((mc_var - var).abs() <= 6 * var * math.sqrt(8.0 / n) + 1e-12).all()
    assert (var[:, 0] == 0).all() and (mean[:, 0] == 0).all()  # channel 0: every connection absent


def test_conv1d_moments_match_monte_carlo():
    layer = random_conv(SpikeSlabConv1d, kernel_size=5, stride=2, padding=2, bias=True)
    x = torch.randn(3, 4, 11, dtype=torch.float64)
    mean, var = layer.moments(x)
    n = 20_000
    outs = sampled_outputs(layer, x, n) + layer.bias.view(-1, 1)
    assert ((outs.mean(0) - mean).abs() <= 6 * (var / n).sqrt() + 1e-12).all()
    assert ((outs.var(0) - var).abs() <= 6 * var * math.sqrt(8.0 / n) + 1e-12).all()


def test_training_pass_has_the_moments_per_position():
    """The noisy pass: eps fresh per example, channel and position; mean and variance as moments(x) + floor."""
    layer = random_conv(stride=2, padding=1, groups=2, floor=1e-3).train()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64).expand(20_000, -1, -1, -1)
    out = layer(x)
    mean, var = layer.moments(x[:1])
    var = var + layer.floor / layer.fan_in
    assert ((out.mean(0) - mean[0]).abs() <= 6 * (var[0] / x.shape[0]).sqrt()).all()
    assert ((out.var(0) / var[0] - 1).abs() <= 0.06).all()
    # positions are independent in the pass (the documented approximation)
    assert abs(torch.corrcoef(out[:, 2, :2, 0].t())[0, 1]) < 0.05


@pytest.mark.parametrize("gbp", ["manual", "autograd"])
def test_gradcheck_float64(gbp):
    layer = random_conv(in_channels=2, out_channels=4, kernel_size=2, stride=2, padding=1, groups=2, floor=1e-6,
                        gbp=gbp)
    with torch.no_grad():
        layer.pi.clamp_(0.1, 0.9)
        layer.xi.add_(0.05)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, pi, m, xi):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)  # the same eps at every call
            return torch.func.functional_call(layer, {"pi": pi, "m": m, "xi": xi}, (x,))

    params = [p.detach().clone().requires_grad_() for p in (layer.pi, layer.m, layer.xi)]
    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("stride, padding, dilation, groups, padding_mode",
                         [*GEOMETRIES, ((2, 1), (1, 2), 1, 1, "zeros"), (1, "same", 2, 1, "zeros"),
                          (1, "valid", 1, 1, "zeros")])
def test_manual_gbp_matches_autograd(stride, padding, dilation, groups, padding_mode):
    """The hand-written backward (default) against autograd through the same pass: same h, same gradients."""
    layer = random_conv(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode,
                        bias=True, floor=1e-4).train()
    x = torch.randn(3, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    results = {}
    for gbp in ("manual", "autograd"):
        layer.gbp = gbp
        layer.zero_grad(), x.grad.zero_() if x.grad is not None else None
        torch.manual_seed(5)  # the same eps for both
        h = layer(x)
        h.sin().sum().backward()  # a loss with a different weight on every output
        results[gbp] = [h.detach().clone(), x.grad.clone(), *(p.grad.clone() for p in layer.parameters())]
    assert len(results["manual"]) == 6  # h, x, pi, m, xi, bias
    for manual, auto in zip(results["manual"], results["autograd"]):
        assert torch.allclose(manual, auto, rtol=1e-10, atol=1e-12)
    assert results["manual"][2].abs().max() > 0  # pi got a gradient (rand pi, so inside (0, 1))


def test_manual_gbp_skips_the_input_gradient_of_a_first_layer():
    """No gradient for x (the first layer): only weight gradients, still equal to autograd's."""
    layer = random_conv(in_channels=1, out_channels=3, kernel_size=3).train()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    grads = {}
    for gbp in ("manual", "autograd"):
        layer.gbp = gbp
        layer.zero_grad()
        torch.manual_seed(0)
        layer(x).square().sum().backward()
        grads[gbp] = [p.grad.clone() for p in (layer.pi, layer.m, layer.xi)]
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(grads["manual"], grads["autograd"]))
    with pytest.raises(ValueError, match="gbp must be one of"):
        layer.gbp = "numeric"
    with pytest.raises(ValueError, match="for SpikeSlabConv2d"):
        layer.gbp = "compiled"


def test_full_kernel_conv_is_the_linear_layer():
    """A kernel that covers the whole image is a SpikeSlabLinear over C*k*k features: same noisy pass."""
    conv = random_conv(in_channels=3, out_channels=5, kernel_size=4).train()
    linear = SpikeSlabLinear(48, 5, dtype=torch.float64).train()
    with torch.no_grad():
        for name in ("pi", "m", "xi"):
            getattr(linear, name).copy_(getattr(conv, name).flatten(1))  # (5, 3*4*4)
    x = torch.rand(7, 3, 4, 4, dtype=torch.float64)
    torch.manual_seed(1)
    h_conv = conv(x)  # (7, 5, 1, 1)
    torch.manual_seed(1)
    h_linear = linear(x.flatten(1))
    assert torch.allclose(h_conv.flatten(1), h_linear)
    h_conv.square().sum().backward(), h_linear.square().sum().backward()  # autograd vs the hand-written gBP
    for name in ("pi", "m", "xi"):
        assert torch.allclose(getattr(conv, name).grad.flatten(1), getattr(linear, name).grad)


@pytest.mark.parametrize("stride, padding, dilation, groups, padding_mode", GEOMETRIES)
def test_deterministic_layer_is_a_scaled_conv(stride, padding, dilation, groups, padding_mode):
    layer = random_conv(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=padding_mode, bias=True, floor=0.0).train()
    with torch.no_grad():
        layer.pi.zero_(), layer.xi.zero_()
    plain = nn.Conv2d(4, 6, 3, stride, padding, dilation, groups, True, padding_mode, dtype=torch.float64)
    with torch.no_grad():
        plain.weight.copy_(layer.m / math.sqrt(layer.fan_in))
        plain.bias.copy_(layer.bias)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    assert layer.fan_in == 4 // groups * 9
    assert torch.allclose(layer(x), plain(x))
    assert torch.allclose(layer.plain_module()(x), plain(x))
    scaled = ScaledConv2d(4, 6, 3, stride, padding, dilation, groups, True, padding_mode=padding_mode,
                          dtype=torch.float64)
    with torch.no_grad():
        scaled.weight.copy_(layer.m), scaled.bias.copy_(layer.bias)
    assert torch.allclose(scaled(x), plain(x))


def test_parameters_are_shaped_like_the_conv_weight_and_state_dict_round_trips():
    layer = random_conv(groups=2, bias=True)
    assert layer.pi.shape == layer.m.shape == layer.xi.shape == nn.Conv2d(4, 6, 3, groups=2).weight.shape
    copy = SpikeSlabConv2d(4, 6, 3, groups=2, bias=True, dtype=torch.float64)
    copy.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {"pi", "m", "xi", "bias"}
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    layer.eval_mode = copy.eval_mode = "mean"
    assert torch.equal(layer.eval()(x), copy.eval()(x))
    assert is_spike_slab(layer)
    model = nn.Sequential(layer, nn.ReLU(), nn.Flatten(), SpikeSlabLinear(54, 2))
    assert [name for name, _ in spike_slab_layers(model)] == ["0", "3"]


def test_absent_kernels_output_zero_and_project_counts():
    layer = SpikeSlabConv2d(2, 3, 3, pi_init=1.0).eval()
    layer.eval_mode = "sample"
    assert torch.count_nonzero(layer.eval()(torch.randn(2, 2, 5, 5))) == 0
    with torch.no_grad():
        layer.pi[0, 0, 0, 0] = 1.5
        layer.xi[1, 1, 1, 1] = -0.1
    assert layer.project_().item() == 2
    layer.check_constraints()


@pytest.mark.parametrize("make", [lambda: SpikeSlabLinear(6, 4), lambda: SpikeSlabConv2d(2, 4, 3, padding=1)],
                         ids=["linear", "conv2d"])
def test_sample_mode_draws_one_network_per_eval(make):
    layer = make()
    x = torch.randn(5, 6) if isinstance(layer, SpikeSlabLinear) else torch.randn(5, 2, 4, 4)
    layer.eval_mode = "sample"
    layer.eval()
    first = layer(x)
    assert torch.equal(layer(x), first)  # the same member at every forward
    assert torch.equal(layer(x[:2]), first[:2])
    assert torch.allclose(layer.plain_module(layer._drawn)(x), first, atol=1e-6)
    second = layer.eval()(x)
    assert not torch.allclose(second, first)  # eval() draws a new member
    drawn = layer.resample(torch.Generator().manual_seed(7))
    again = layer.sample_weight(torch.Generator().manual_seed(7))
    assert torch.equal(drawn, again)
    assert torch.allclose(layer(x), layer.plain_module(again)(x), atol=1e-6)
    layer.train()
    assert layer._drawn is None
    layer.double()
    layer.eval()
    assert layer(x.double()).dtype == torch.float64


def test_bad_input_and_options_raise_clear_errors():
    layer = SpikeSlabConv2d(1, 4, 5)
    with pytest.raises(ValueError, match='shape="image"'):
        layer(torch.rand(3, 784))
    with pytest.raises(ValueError, match="C=1 channels"):
        layer(torch.rand(3, 2, 28, 28))
    with pytest.raises(ValueError, match="divisible by groups"):
        SpikeSlabConv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding must be"):
        SpikeSlabConv2d(1, 4, 3, padding="full")
    with pytest.raises(ValueError, match="stride 1"):
        SpikeSlabConv2d(1, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size"):
        SpikeSlabConv2d(1, 4, (3, 3, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        SpikeSlabConv2d(1, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="eval_mode"):
        SpikeSlabConv2d(1, 4, 3, eval_mode="median")
    with pytest.raises(ValueError, match='shape="flat"'):
        SpikeSlabLinear(784, 4)(torch.rand(2, 1, 28, 28))
