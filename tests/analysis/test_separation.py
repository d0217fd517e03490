# SPDX-License-Identifier: MIT
"""Layer-wise separation: planted clusters with a known ratio, invariances, load-curve shapes."""
import numpy as np
import pytest
import torch
from torch import nn

from ensemble_nets.analysis.separation import class_covariances, load_curve_shape, separation


def _clusters(n=4000, d=5, n_classes=4, mu=3.0, sigma=0.5, seed=0):
    """Classes centred at mu * e_c (c < n_classes <= d), isotropic noise sigma^2 in d dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = mu * nn.functional.one_hot(y, d).double() + sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y


def test_planted_ratio():
    # Tr Sigma_w = d sigma^2; Tr Sigma_b = mu^2 (1 - 1/C) for C equal classes at mu e_c
    d, n_classes, mu, sigma = 5, 4, 3.0, 0.5
    x, y = _clusters(d=d, n_classes=n_classes, mu=mu, sigma=sigma)
    table = separation(nn.Sequential(), (x, y))
    expected = d * sigma**2 / (mu**2 * (1 - 1 / n_classes))
    assert table.loc[0, "D"] == pytest.approx(expected, rel=0.05)
    # He-Su form against a direct numpy evaluation, and the covariance decomposition
    sigma_w, sigma_b = class_covariances(x, y)
    total = np.cov(x.numpy().T, bias=True)
    np.testing.assert_allclose((sigma_w + sigma_b).numpy(), total, atol=1e-10)
    reference = np.trace(sigma_w.numpy() @ np.linalg.pinv(sigma_b.numpy(), rcond=1e-6, hermitian=True))
    assert table.loc[0, "D_hs"] == pytest.approx(reference, rel=1e-8)


def test_layers_and_invariances():
    # Linear(2x) + ReLU: 2x on positive-ish features; the Identity layer shifts nothing
    x, y = _clusters(n=800)
    scale = nn.Linear(5, 5, bias=True)
    with torch.no_grad():
        scale.weight.copy_(3.0 * torch.eye(5))
        scale.bias.fill_(7.0)  # shift + scale: D unchanged (features stay > 0 so ReLU is the identity)
    model = nn.Sequential(scale, nn.ReLU(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    model.train()
    table = separation(model, (x, y))
    assert list(table["module"]) == ["input", "1", "3"]
    assert list(table["n_features"]) == [5, 5, 3]
    assert table.loc[1, "D"] == pytest.approx(table.loc[0, "D"], rel=1e-9)
    assert table.loc[1, "D_hs"] == pytest.approx(table.loc[0, "D_hs"], rel=1e-6)
    assert model.training  # mode restored


def test_separation_rejects_single_class():
    with pytest.raises(ValueError, match="two classes"):
        separation(nn.Sequential(), (torch.randn(10, 3), torch.zeros(10, dtype=torch.long)))


@pytest.mark.parametrize("curve, shape, sign", [
    (lambda t: 1.0 - t**2, "concave", -1),  # deep layers do the work
    (lambda t: 1.0 - t, "linear", 0),
    (lambda t: (1.0 - t) ** 2, "convex", 1),  # shallow layers do the work
])
def test_load_curve_shapes(curve, shape, sign):
    t = np.linspace(0, 1, 9)
    out = load_curve_shape(np.exp(3.0 * curve(t)))
    assert out["shape"] == shape
    assert out["drop"] == pytest.approx(3.0)
    if sign:
        assert out["curvature"] == pytest.approx(sign * 1.0, abs=1e-9)
        assert out["nonuniformity"] > 0.3
    else:
        assert abs(out["curvature"]) < 1e-9 and out["nonuniformity"] < 1e-9


def test_load_curve_shape_validates():
    with pytest.raises(ValueError, match="pass D, not log D"):
        load_curve_shape([1.0, -0.5, 0.1])
    with pytest.raises(ValueError, match="at least 3"):
        load_curve_shape([1.0, 0.5])


def test_reference_c_and_v_of_a_hand_computed_curve():
    from ensemble_nets.analysis.separation import reference_curvature

    log_d = [3.0, 2.0, 1.5, 1.25, 1.0]  # loads d = 1, 0.5, 0.25, 0.25: the first layer does most (convex)
    out = reference_curvature(log_d)
    assert out["c"] == pytest.approx(1.0 - 0.25)
    assert out["v"] == pytest.approx(np.std([1.0, 0.5, 0.25, 0.25]))
    concave = reference_curvature([0.0, -0.1, -0.3, -0.7])  # loads 0.1, 0.2, 0.4: deep layers do the work
    assert concave["c"] == pytest.approx(0.1 - 0.4)
    assert reference_curvature(np.linspace(2, -1, 8)) == pytest.approx({"c": 0.0, "v": 0.0}, abs=1e-12)
    with pytest.raises(ValueError, match="at least 3 points"):
        reference_curvature([1.0, 0.0])


def test_separation_reads_phase_mlp_at_its_nine_points():
    from ensemble_nets.models.deep import PhaseMLP

    net = PhaseMLP(n_in=10, width=8)
    x, y = torch.randn(200, 10), torch.arange(200) % 10
    table = separation(net, (x, y))
    assert table["module"].tolist() == ["input"] + [f"block{i}" for i in range(1, 8)] + ["logits"]
    assert table["n_features"].tolist() == [10] + [8] * 7 + [10]
    assert net.training  # the mode is restored
