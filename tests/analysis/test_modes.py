# SPDX-License-Identifier: MIT
"""Mode analysis: spectra on planted modes, the piecewise power law, removal curves."""
import numpy as np
import pytest
import torch
from torch import nn

import ensemble_nets as en
from ensemble_nets.analysis.modes import (
    accuracy_vs_leading_modes,
    fit_piecewise_power_law,
    layer_factors,
    mode_removal_curve,
    mode_spectrum,
    model_spectra,
)


def _orthonormal(n, p, seed):
    q, _ = torch.linalg.qr(torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_svd_recovers_planted_modes():
    u, v = _orthonormal(30, 4, 0), _orthonormal(20, 4, 1)
    strengths = torch.tensor([5.0, 3.0, 2.0, 0.5], dtype=torch.float64)
    weight = (u * strengths) @ v.T
    xi_out, s, xi_in = layer_factors(weight)
    torch.testing.assert_close(s[:4], strengths)
    assert s[4:].abs().max() < 1e-10
    for mu in range(4):  # same directions up to sign
        assert abs(abs(xi_out[:, mu] @ u[:, mu]) - 1) < 1e-8 and abs(abs(xi_in[:, mu] @ v[:, mu]) - 1) < 1e-8
    spectrum = mode_spectrum(weight)
    assert list(spectrum.sort_values("rank_sigma")["mode"][:4]) == [0, 1, 2, 3]
    # unit vectors: tau = s + mean(s), same ranking as s
    np.testing.assert_allclose(spectrum.tau, spectrum.sigma + spectrum.sigma.mean())


def test_tau_of_an_mdl_layer_follows_the_definition():
    layer = en.ModeMLP((8, 6, 3), 4).linear_layers[0]
    spectrum = mode_spectrum(layer)
    sigma = layer.strengths.detach().abs().double()
    norm = (layer.modes_out.detach().norm(dim=0) + layer.modes_in.detach().norm(dim=0)).double()
    gamma = sigma.mean() / norm.mean()
    np.testing.assert_allclose(spectrum.tau, (sigma + gamma * norm).numpy())
    assert spectrum.attrs["gamma"] == pytest.approx(gamma.item())
    # a mode with a large strength ranks first by sigma
    with torch.no_grad():
        layer.strengths[2] = 100.0
    assert mode_spectrum(layer).set_index("mode").loc[2, "rank_sigma"] == 1


def test_power_law_fit_recovers_breakpoint_and_slopes():
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 71)
    values = np.where(ranks <= 10, 2.0 * ranks ** -0.13, 2.0 * 10 ** (0.82 - 0.13) * ranks ** -0.82)
    values = values * np.exp(0.02 * rng.standard_normal(len(ranks)))
    fit = fit_piecewise_power_law(ranks, values, n_boot=20)
    assert 8 <= fit.breakpoint <= 12
    assert abs(fit.slope1 - (-0.13)) < 0.05 and abs(fit.slope2 - (-0.82)) < 0.05
    assert fit.slope1_ci[0] <= fit.slope1 <= fit.slope1_ci[1] and 0 < fit.slope2_std < 0.05
    assert np.allclose(fit.predict([1, 70]), values[[0, 69]], rtol=0.1)
    with pytest.raises(ValueError, match="positive"):
        fit_piecewise_power_law(ranks, values - 10)


def _planted_task(seed=0):
    """A linear teacher on 20 inputs, 3 classes, with singular values 10, 8 and 0.05."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(600, 20, generator=g)
    u, v = _orthonormal(3, 3, seed + 1).float(), _orthonormal(20, 3, seed + 2).float()
    teacher = (u * torch.tensor([10.0, 8.0, 0.05])) @ v.T
    return x, (x @ teacher.T).argmax(-1), teacher


def test_removal_curves_and_leading_modes_on_planted_structure():
    x, y, teacher = _planted_task()
    # a one-layer network equal to the teacher: its two leading modes carry the task
    net = nn.Sequential(nn.Linear(20, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(teacher)
    before = [p.clone() for p in net.parameters()]
    least = mode_removal_curve(net, (x, y), 1, order="least_first", fractions=[0, 1 / 3, 2 / 3, 1])
    most = mode_removal_curve(net, (x, y), 1, order="most_first", fractions=[0, 1 / 3, 2 / 3, 1])
    rand = mode_removal_curve(net, (x, y), 1, order="random", fractions=[0, 1 / 3], n_random=3)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # never modified
    assert least.accuracy.iloc[0] == 1.0 and most.accuracy.iloc[0] == 1.0
    assert least.accuracy.iloc[1] > 0.97 > 0.8 > most.accuracy.iloc[1]  # the smallest mode matters least
    assert least.n_removed.tolist() == [0, 1, 2, 3] and set(rand.draw) == {0, 1, 2}
    assert least.accuracy.iloc[-1] < 0.6  # nothing left
    lead = accuracy_vs_leading_modes(net, (x, y))
    assert lead.k.tolist() == [1, 2, 3] and lead.accuracy.iloc[-1] == 1.0
    with pytest.raises(ValueError, match="order"):
        mode_removal_curve(net, (x, y), 1, order="biggest")
    with pytest.raises(ValueError, match="layer"):
        mode_removal_curve(net, (x, y), 2)


def test_mdl_removal_matches_zeroing_strengths():
    torch.manual_seed(0)
    model = en.ModeMLP((20, 12, 3), 5)
    x, y, _ = _planted_task()
    curve = mode_removal_curve(model, (x, y), 2, order="least_first", fractions=[0.4])
    order = mode_spectrum(model.linear_layers[1]).sort_values("rank_tau")["mode"].to_numpy()
    import copy

    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.linear_layers[1].strengths[torch.tensor(order[-2:].copy())] = 0.0
    expected = en.evaluate(clone, x, y)["acc_mean"]
    assert curve.accuracy.iloc[0] == pytest.approx(expected)


def test_model_spectra_cover_every_kind():
    for model in (en.MLP((10, 6, 3)), en.EnsembleMLP((10, 6, 3)), en.ModeMLP((10, 6, 3), 2)):
        frame = model_spectra(model)
        assert set(frame.layer) == {"layer1", "layer2"}
        assert (frame.source == ("modes" if isinstance(model, en.ModeMLP) else "svd")).all()
