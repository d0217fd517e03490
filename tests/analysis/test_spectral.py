# SPDX-License-Identifier: MIT
"""Coordinate check and spectral diagnostics."""
import copy
import math

import pandas as pd
import pytest
import torch

from ensemble_nets.analysis.spectral import coord_check, coord_slopes, spectral_diagnostics, transfer_optima
from ensemble_nets.models import MLP, EnsembleMLP
from ensemble_nets.training.spectral import make_parametrized_optimizer, spectral_init_

WIDTHS = [32, 64, 128, 256]


@pytest.fixture(scope="module")
def digits(tiny_mnist):
    return tiny_mnist.x_train[:400], tiny_mnist.y_train[:400]


def test_coord_check_columns_and_flat_spectral_slopes(digits):
    make = lambda w: MLP((784, w, w, 10), w_std=1.0)  # noqa: E731
    spectral = coord_check(make, WIDTHS, digits, n_steps=3, lr=1.0, parametrization="spectral", n_seeds=1,
                           batch_size=32)
    assert list(spectral.columns) == ["parametrization", "width", "seed", "step", "layer", "role", "l1", "dl1",
                                      "noise", "dnoise"]
    assert spectral["noise"].isna().all()  # a plain MLP has no noise channel
    assert len(spectral) == len(WIDTHS) * 4 * 3 and set(spectral["role"]) == {"input", "hidden", "output"}
    assert (spectral.loc[spectral["step"] == 0, "dl1"] == 0).all()
    moved = coord_slopes(spectral, value="dl1")  # how far features moved: flat in width in every layer
    assert moved["slope"].abs().max() < 0.2, moved
    size = coord_slopes(spectral).set_index("role")["slope"]
    # The output layer starts at l1 ~ width^-1/2 (c = sqrt(10/width), as in muP) and is O(1) once it learned.
    assert abs(size["input"]) < 0.15 and abs(size["hidden"]) < 0.15 and -0.5 < size["output"] < 0.25, size
    # The standard parametrization at the same learning rate per entry drifts: features move faster with width.
    standard = coord_check(make, WIDTHS, digits, n_steps=3, lr=0.03, parametrization="standard", n_seeds=1,
                           batch_size=32)
    drift = coord_slopes(standard, value="dl1")
    assert drift["slope"].max() > 0.3, drift


#: Bound on |slope of log(coordinate size) against log(width)| of a flat coordinate check. Measured for the
#: test below (seed 0..5, 2 networks each, steps 1..3): spectral l1 and dl1 of every layer and the noise
#: level of the input and hidden layers within [-0.09, 0.12]; standard dl1 at step 1: hidden 0.26..0.33,
#: output 0.67..0.84 (docs/spectral.md, "Coordinate check of the ensemble").
FLAT_SLOPE = 0.15


def test_ensemble_coord_check_is_flat_under_spectral_rules_and_drifts_under_standard(digits):
    """The spike-and-slab ensemble 784-w-w-10, widths 64..1024, 3 Adam steps, 2 seeds (issue 12, item 7)."""
    make = lambda w: EnsembleMLP((784, w, w, 10), m_std=1.0, xi_max=2.0)  # noqa: E731
    widths = [64, 128, 256, 512, 1024]
    options = dict(n_steps=3, n_seeds=2, batch_size=64, seed=0)
    spectral = coord_check(make, widths, digits, lr=1.0, parametrization="spectral", **options)
    # The standard rate 1/sqrt(64) equals the spectral hidden-layer rate at width 64.
    standard = coord_check(make, widths, digits, lr=1.0 / 8, parametrization="standard", **options)

    def slopes(table, value, step):
        return coord_slopes(table, value=value, step=step).set_index("role")["slope"]

    for step in (1, 2, 3):  # every layer's size and change, pi, m and xi all moving
        for value in ("l1", "dl1"):
            flat = slopes(spectral, value, step)
            assert flat.abs().max() <= FLAT_SLOPE, (step, value, flat)
        # The noise level of the variance channel alone (the output's starts at c^2 = 10 / width, muP's
        # small output). Its change is not asserted: pi's share of it falls as width^-1/2 (docs/spectral.md).
        flat = slopes(spectral, "noise", step)[["input", "hidden"]]
        assert flat.abs().max() <= FLAT_SLOPE, (step, "noise", flat)
    first = slopes(standard, "dl1", 1)  # the first step moves hidden and output features faster with width
    assert first["hidden"] > FLAT_SLOPE and first["output"] > 2 * FLAT_SLOPE, first
    assert slopes(standard, "dl1", 2)["output"] > 2 * FLAT_SLOPE
    assert abs(first["input"]) <= FLAT_SLOPE  # fan-in 784 at every width: flat under both rules


def test_coord_check_ensemble_runs(digits):
    make = lambda w: EnsembleMLP((784, w, 10), m_std=1.0, xi_max=2.0)  # noqa: E731
    df = coord_check(make, [32, 64], digits, n_steps=2, lr=1.0, n_seeds=2, batch_size=32)
    assert len(df) == 2 * 2 * 2 * 3 and df["l1"].gt(0).all()


def test_coord_slopes_recovers_a_power_law():
    df = pd.DataFrame([{"width": w, "step": 1, "layer": name, "l1": w ** power, "dl1": 1.0}
                       for w in (16, 64, 256) for name, power in (("a", 0.5), ("b", -1.0))])
    slopes = coord_slopes(df).set_index("layer")["slope"]
    assert slopes["a"] == pytest.approx(0.5) and slopes["b"] == pytest.approx(-1.0)
    assert coord_slopes(df, value="dl1")["slope"].abs().max() < 1e-12
    with pytest.raises(ValueError, match="two widths"):
        coord_slopes(df, max_width=16)


@pytest.mark.parametrize("make", [lambda: MLP((40, 30, 20)), lambda: EnsembleMLP((40, 30, 20))])
def test_spectral_diagnostics_after_a_normalized_step(make):
    model = make()
    spectral_init_(model, shrink="all")
    before = copy.deepcopy(model)
    opt = make_parametrized_optimizer(model, "spectral", 0.2, "normalized", shrink="all")
    x = torch.randn(1, 40)
    model(x).sum().backward()
    for p in model.parameters():  # move the weights (m) only: their steps are exact
        if p.dim() == 2 and p is not getattr(model[0], "weight", None) and p is not getattr(model[2], "weight", None) \
                and not any(p is layer.m for layer in model.linear_layers if hasattr(layer, "m")):
            p.grad = None
    opt.step()
    table = spectral_diagnostics(before, model, x)
    assert list(table["layer"]) == ["0", "2"]
    assert table["dw_norm"].to_numpy() == pytest.approx([0.2, 0.2], rel=1e-4)
    assert table["stable_rank"].to_numpy() == pytest.approx([1.0, 1.0], rel=1e-3)  # one example: rank one
    assert (table["alignment"] > 0).all() and (table["alignment"] <= 1 + 1e-6).all()
    assert table["w_norm"].between(0.8, 2.5).all()
    if isinstance(model, EnsembleMLP):
        assert table["noise_norm"].between(0.5, 2.5).all()
    with pytest.raises(ValueError, match="same layers"):
        spectral_diagnostics(before, MLP((40, 31, 20)), x)
    assert math.isfinite(table["w_norm_after"].sum())


def test_transfer_optima_finds_the_best_rate_per_width_and_its_shift():
    lrs = [0.25, 0.5, 1.0, 2.0]
    rows = []
    for width, best in ((64, 1.0), (256, 0.5), (1024, 0.25)):  # drifts down one grid step per 4x in width
        for seed in (0, 1):
            for lr in lrs:
                loss = 1.0 + abs(math.log2(lr / best)) + 0.01 * seed
                if lr == 2.0 and width == 1024 and seed == 1:
                    loss = math.inf  # diverged in one seed: the mean is inf, never the best
                rows.append({"variant": "standard", "width": width, "lr": lr, "seed": seed, "final_loss": loss})
    table = transfer_optima(pd.DataFrame(rows)).set_index("width")
    assert list(table["lr_best"]) == [1.0, 0.5, 0.25] and list(table["shift"]) == [0, -1, -2]
    assert list(table["edge"]) == [False, False, True]  # 0.25 is the grid's smallest rate: not bracketed
    assert table["loss_best"].to_numpy() == pytest.approx([1.005] * 3)
    assert table["loss_best_std"].to_numpy() == pytest.approx([0.01 / math.sqrt(2)] * 3)
    assert (table["n_seeds"] == 2).all() and (table["lr_seed_min"] == table["lr_seed_max"]).all()
    with pytest.raises(ValueError, match="final_loss"):
        transfer_optima(pd.DataFrame(rows).drop(columns="final_loss"))
