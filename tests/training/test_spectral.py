# SPDX-License-Identifier: MIT
"""Spectral parametrization: the stated spectral norms at init, exact step sizes, the derived multipliers."""
import math

import pytest
import torch
from torch import nn

from ensemble_nets.layers import ScaledLinear, SpikeSlabLinear
from ensemble_nets.models import MLP, EnsembleMLP
from ensemble_nets.training.spectral import (
    XI_LR_SCALE,
    SpectralSGD,
    effective_noise,
    effective_weight,
    lr_multipliers,
    make_parametrized_optimizer,
    spectral_init_,
    spectral_layers,
    spectral_param_groups,
)

SHAPES = [(128, 256), (256, 128), (512, 32), (32, 512)]  # (n_in, n_out)
LAYERS = {"linear": lambda i, o: nn.Linear(i, o, bias=False), "scaled": lambda i, o: ScaledLinear(i, o),
          "spike_slab": lambda i, o: SpikeSlabLinear(i, o)}


def _spec(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.detach(), ord=2).item()


def _bai_yin(n_in: int, n_out: int) -> float:
    """||W||_2 / sqrt(n_out/n_in) of a Gaussian matrix with the spectral init: 1 + sqrt(min/max)."""
    return 1.0 + math.sqrt(min(n_in, n_out) / max(n_in, n_out))


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("n_in,n_out", SHAPES)
def test_spectral_init_norm(kind, n_in, n_out):
    layer = LAYERS[kind](n_in, n_out)
    spectral_init_(nn.Sequential(layer), shrink="all")
    ratio = _spec(effective_weight(layer)) / math.sqrt(n_out / n_in)
    assert ratio == pytest.approx(_bai_yin(n_in, n_out), rel=0.15)


@pytest.mark.parametrize("n_in,n_out", SHAPES)
def test_spectral_init_spike_slab_fluctuation_norm(n_in, n_out):
    """The weight fluctuation sqrt(var / n_in) eps has the mean weight's spectral scale (xi_ratio = 2)."""
    layer = SpikeSlabLinear(n_in, n_out)
    spectral_init_(nn.Sequential(layer), shrink="all")
    ratio = _spec(effective_noise(layer, torch.Generator().manual_seed(1))) / math.sqrt(n_out / n_in)
    assert ratio == pytest.approx(_bai_yin(n_in, n_out), rel=0.15)
    assert (layer.pi == 0).all() and (layer.xi >= 0).all()


def test_spectral_init_shrink_modes_differ_only_in_the_input_layer():
    model = MLP((784, 64, 64, 10), w_std=0.05)
    spectral_init_(model, shrink="not_input")
    stds = [layer.weight.std().item() for layer in model.linear_layers]
    assert stds[0] == pytest.approx(1.0, rel=0.05)  # fan-in init: raw std 1 in the input layer
    assert stds[1] == pytest.approx(1.0, rel=0.05)
    assert stds[2] == pytest.approx(math.sqrt(10 / 64), rel=0.2)
    spectral_init_(model, shrink="all")
    assert model.linear_layers[0].weight.std().item() == pytest.approx(math.sqrt(64 / 784), rel=0.05)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_normalized_step_has_the_spectral_norm_exactly(kind):
    n_in, n_out, lr = 96, 48, 0.3
    layer = LAYERS[kind](n_in, n_out)
    model = nn.Sequential(layer)
    spectral_init_(model)
    before = effective_weight(layer).detach().clone()
    opt = make_parametrized_optimizer(model, "spectral", lr, "normalized")
    assert isinstance(opt, SpectralSGD)
    model(torch.randn(32, n_in)).square().mean().backward()
    if kind == "spike_slab":  # only m moves: ||d mean||_2 exactly; xi and pi checked below
        layer.pi.grad = layer.xi.grad = None
    opt.step()
    step = _spec(effective_weight(layer) - before) / math.sqrt(n_out / n_in)
    assert step == pytest.approx(lr, rel=1e-4)


def test_normalized_step_of_xi_and_pi():
    n_in, n_out, lr = 96, 48, 0.1
    layer = SpikeSlabLinear(n_in, n_out, pi_init=0.3)
    model = nn.Sequential(layer)
    spectral_init_(model, shrink="all")
    xi0, pi0 = layer.xi.detach().clone(), layer.pi.detach().clone()
    opt = make_parametrized_optimizer(model, "spectral", lr, "normalized", shrink="all")
    model(torch.randn(32, n_in)).square().mean().backward()
    opt.step()
    c = math.sqrt(n_out / n_in)
    assert _spec(layer.xi - xi0) == pytest.approx(lr * XI_LR_SCALE * c * c * math.sqrt(n_in * n_out), rel=1e-4)
    assert _spec(layer.pi - pi0) == pytest.approx(lr * math.sqrt(n_out) / c, rel=1e-4)


def _first_xi_step(width: int, lr: float):
    """A hidden layer width -> width, one Adam step of xi alone on one positive input: (dV, ||dN||_2, a)."""
    torch.manual_seed(width)
    layer = SpikeSlabLinear(width, width)
    model = nn.Sequential(layer)
    spectral_init_(model, shrink="all")
    with torch.no_grad():
        layer.xi.add_(lr)  # every xi stays >= 0 after a step of -lr: no projection needed
    a = 0.5 + torch.rand(1, width)  # O(1) coordinates, none near 0 (Adam's first step is then lr sign(G))
    var0 = layer.weight_variance.detach().clone()
    opt = make_parametrized_optimizer(model, "spectral", lr, "adam", shrink="all")
    model(a).sum().backward()
    layer.pi.grad = layer.m.grad = None
    opt.step()
    var1 = layer.weight_variance.detach()
    d_noise_var = (a.square() @ (var1 - var0).t()) / width  # (1, width): change of each unit's noise variance
    eps = torch.randn(var0.shape, generator=torch.Generator().manual_seed(1))
    d_fluctuation = ((var1 / width).sqrt() - (var0 / width).sqrt()) * eps  # dN, fluctuations of one draw
    return d_noise_var, _spec(d_fluctuation), a


def test_xi_step_moves_the_noise_channel_by_a_width_free_amount():
    """The xi rule (Adam mult k c^2): each unit's noise variance sum_j var_ij a_j^2 / n_in moves by
    k lr mean(a^2) after the first Adam step (Adam's eps slows the few units with a tiny gradient), and
    the fluctuation's ||dN||_2 does not shrink with width (the rule before 2026-12, c / sqrt(n_in),
    shrank both as width^-1/2)."""
    lr, norms = 0.05, []
    for width in (64, 256, 1024):
        d_noise_var, d_norm, a = _first_xi_step(width, lr)
        expected = XI_LR_SCALE * lr * a.square().mean().item()  # every entry moves by k lr (eps_i ~ 0: less)
        assert d_noise_var.abs().median().item() == pytest.approx(expected, rel=1e-3)
        assert d_noise_var.abs().max().item() <= expected * (1 + 1e-4)
        norms.append(d_norm)
    assert max(norms) / min(norms) < 1.3, norms
    step = XI_LR_SCALE * lr  # ||dN||_2 ~ k lr sqrt(n_out/n_in), up to O(1)
    assert 0.2 * step < min(norms) and max(norms) < 2 * step, norms


@pytest.mark.parametrize("kind", list(LAYERS))
def test_first_adam_step_has_the_spectral_norm(kind):
    """One example: the gradient is rank one, Adam's first step is lr sign(G), ||.||_2 = lr sqrt(n_in n_out)."""
    n_in, n_out, lr = 80, 40, 0.5
    layer = LAYERS[kind](n_in, n_out)
    model = nn.Sequential(layer)
    spectral_init_(model)
    before = effective_weight(layer).detach().clone()
    opt = make_parametrized_optimizer(model, "spectral", lr, "adam")
    model(torch.randn(1, n_in)).sum().backward()
    if kind == "spike_slab":
        layer.pi.grad = layer.xi.grad = None
    opt.step()
    step = _spec(effective_weight(layer) - before) / math.sqrt(n_out / n_in)
    assert step == pytest.approx(lr, rel=1e-3)


def test_param_groups_carry_the_derived_multipliers():
    width, base = 256, 0.7
    model = EnsembleMLP((784, width, width, 10))
    groups = {g["name"]: g for g in spectral_param_groups(model, base, "adam", weight_decay=1e-4, shrink="all")}
    layers = model.linear_layers
    for index, layer in zip((0, 2, 4), layers):
        n_in, n_out = layer.in_features, layer.out_features
        c = min(1.0, math.sqrt(n_out / n_in))
        assert groups[f"{index}.m"]["lr"] == pytest.approx(base / math.sqrt(n_in))
        assert groups[f"{index}.xi"]["lr_mult"] == pytest.approx(XI_LR_SCALE * c * c)
        assert groups[f"{index}.pi"]["lr_mult"] == pytest.approx(1 / math.sqrt(min(n_in, n_out)))
        assert groups[f"{index}.pi"]["lr_mult"] <= 1.0  # pi's rate never exceeds the base rate
        assert groups[f"{index}.m"]["weight_decay"] == 1e-4 and groups[f"{index}.pi"]["weight_decay"] == 0.0
    sgd = lr_multipliers(layers[1], "sgd")
    assert sgd["m"] == pytest.approx(width) and sgd["xi"] == pytest.approx(XI_LR_SCALE * width * width)
    plain = {g["name"]: g for g in spectral_param_groups(nn.Sequential(nn.Linear(100, 400)), 1.0, "sgd")}
    assert plain["0.weight"]["lr_mult"] == pytest.approx(4.0) and plain["0.bias"]["lr_mult"] == pytest.approx(400.0)
    standard = spectral_param_groups(model, base, "adam", parametrization="standard")
    assert all(g["lr"] == base for g in standard)


def test_validation_errors():
    model = MLP((8, 4, 2))
    with pytest.raises(ValueError, match="parametrization"):
        spectral_param_groups(model, 0.1, parametrization="mup")
    with pytest.raises(ValueError, match="optimizer"):
        spectral_param_groups(model, 0.1, "lamb")
    with pytest.raises(ValueError, match="shrink"):
        spectral_init_(model, shrink="some")
    with pytest.raises(ValueError, match="base_lr"):
        spectral_param_groups(model, -1.0)
    with pytest.raises(ValueError, match="no spectral rule"):
        effective_weight(nn.Conv1d(2, 2, 1))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("scale_input", [False, True])
def test_mode_layers_norm_is_width_independent(shared, scale_input):
    """Mode layers: ||W||_2 = (max |strength| s n_in) sqrt(n_out/n_in) x O(1), strengths of size 1/(s n_in)."""
    from ensemble_nets.models import ModeMLP

    for width in (64, 256):
        model = ModeMLP((100, width, width, 10), 8, shared=shared, scale_input=scale_input)
        spectral_init_(model)
        for _, layer in spectral_layers(model):
            n_in, n_out = layer.in_features, layer.out_features
            largest = layer.strengths.abs().max().item() * layer.scale * n_in  # ~ max of 8 |N(0, 1)|
            ratio = _spec(effective_weight(layer)) / math.sqrt(n_out / n_in) / largest
            assert 0.6 < ratio < 2.5 and 0.2 < largest < 5.0, (width, n_in, n_out, ratio, largest)


def test_mode_layer_multipliers_and_shared_groups():
    from ensemble_nets.models import ModeMLP

    model = ModeMLP((100, 64, 64, 10), 16, shared=True, scale_input=True)
    groups = spectral_param_groups(model, 2.0, "adam")
    names = [g["name"] for g in groups]
    assert len(names) == 3 + 4 and "other" not in names  # 3 strengths + 4 shared mode tensors, each once
    by_name = {g["name"]: g for g in groups}
    assert by_name["2.strengths"]["lr_mult"] == pytest.approx(1 / (64 / math.sqrt(64)))  # 1 / (s n_in)
    assert all(by_name[n]["lr_mult"] == pytest.approx(0.25) for n in names if "modes" in n)  # 1/sqrt(P)
    with pytest.raises(ValueError, match="SGD"):
        spectral_param_groups(model, 1.0, "sgd")
