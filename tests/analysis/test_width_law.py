# SPDX-License-Identifier: MIT
"""P_min, its bootstrap intervals and the growth-law fits (analysis/width_law.py)."""
import math

import numpy as np
import pandas as pd
import pytest

from ensemble_nets.analysis.width_law import boot_interval, fit_forms, pmin_bootstrap, pmin_from_means, width_law

GRID = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128)
WIDTHS = (25, 50, 100, 200, 400, 800)


def _runs(p_true, *, noise=0.002, seeds=3, plain=0.95, seed=0):
    """Synthetic sweep: acc(N, P) rises to the plain accuracy with a scale p_true(N); noise over seeds."""
    rng = np.random.default_rng(seed)
    rows = []
    for width in WIDTHS:
        for s in range(seeds):
            rows.append({"width": width, "n_modes": -1, "seed": s, "acc": plain + noise * rng.standard_normal()})
            for p in GRID:
                acc = plain - 0.2 * math.exp(-3.0 * p / p_true(width)) + noise * rng.standard_normal()
                rows.append({"width": width, "n_modes": p, "seed": s, "acc": acc})
    return pd.DataFrame(rows)


def test_pmin_is_least_p_reaching_the_target():
    runs = pd.DataFrame([
        {"width": 10, "n_modes": -1, "seed": 0, "acc": 0.90},
        {"width": 10, "n_modes": 2, "seed": 0, "acc": 0.85},
        {"width": 10, "n_modes": 4, "seed": 0, "acc": 0.885},  # within 0.02, not within 0.01
        {"width": 10, "n_modes": 8, "seed": 0, "acc": 0.895},
        {"width": 20, "n_modes": -1, "seed": 0, "acc": 0.90},
        {"width": 20, "n_modes": 2, "seed": 0, "acc": 0.80},
    ])
    assert pmin_from_means(runs, 0.01).to_dict() == {10: 8.0, 20: math.inf}
    assert pmin_from_means(runs, 0.02).to_dict() == {10: 4.0, 20: math.inf}


def test_bootstrap_interval_brackets_point_and_collapses_without_noise():
    runs = _runs(lambda n: 4 * math.log(n), noise=0.0)
    boot = pmin_bootstrap(runs, 0.01, n_boot=200)
    point = pmin_from_means(runs, 0.01).to_numpy()
    assert boot.shape == (200, len(WIDTHS))
    assert (boot == point).all()  # identical seeds: every replicate is the point estimate
    noisy = _runs(lambda n: 4 * math.log(n), noise=0.01)
    boot = pmin_bootstrap(noisy, 0.01, n_boot=500)
    lo, hi = boot_interval(boot)
    assert (lo <= pmin_from_means(noisy, 0.01).to_numpy()).all()
    assert (hi >= pmin_from_means(noisy, 0.01).to_numpy()).all()
    assert (hi > lo).any()


def test_fits_recover_the_generating_law():
    widths = np.array(WIDTHS, float)
    log_law = fit_forms(widths, 2.0 + 5.0 * np.log(widths)).set_index("form")
    assert log_law.loc["log", "b"] == pytest.approx(5.0)
    assert log_law.loc["log", "delta_bic"] == 0 and log_law.loc["linear", "delta_bic"] > 10
    linear_law = fit_forms(widths, 3.0 + 0.1 * widths).set_index("form")
    assert linear_law.loc["linear", "delta_bic"] == 0 and linear_law.loc["log", "delta_bic"] > 10
    saturating = fit_forms(widths, 2.0 + 5.0 * np.log(np.minimum(widths, 200.0))).set_index("form")
    assert saturating.loc["saturating", "n_star"] == 200 and saturating.loc["saturating", "sse"] < 1e-12
    with pytest.raises(ValueError, match="at least 3"):
        fit_forms(widths, [1, 2, math.inf, math.inf, math.inf, math.inf])


def test_verdict_follows_the_data():
    log_tables = width_law(_runs(lambda n: 4 * math.log(n)), n_boot=300)
    assert set(log_tables) == {"pmin", "fits", "curves", "verdict"}
    verdict = log_tables["verdict"].set_index("threshold")
    assert verdict.loc[0.01, "best_form"] in ("log", "saturating")
    assert verdict.loc[0.01, "verdict"].startswith("consistent with the claim")
    assert verdict.loc[0.01, "log_slope_lo"] > 0
    pmin = log_tables["pmin"]
    assert (pmin["p_min_lo"] <= pmin["p_min"]).all() and (pmin["p_min"] <= pmin["p_min_hi"]).all()
    # the P_min of the 1-point threshold is never below that of the 2-point threshold
    wide = pmin.pivot(index="width", columns="threshold", values="p_min")
    assert (wide[0.01] >= wide[0.02]).all()
    linear_tables = width_law(_runs(lambda n: 0.12 * n), n_boot=300)
    assert linear_tables["verdict"].set_index("threshold").loc[0.01, "best_form"] != "log"
    assert not linear_tables["verdict"]["verdict"].str.startswith("consistent").any()


def test_reference_best_mdl_measures_from_the_mode_plateau():
    # MDL plateaus 5 points under the plain network: never within 2 points of it, but P_min from its plateau
    runs = _runs(lambda n: 4 * math.log(n), plain=0.95, noise=0.0)
    runs.loc[runs["n_modes"] < 0, "acc"] += 0.05
    assert np.isinf(pmin_from_means(runs, 0.02)).all()
    from_plateau = pmin_from_means(runs, 0.02, reference="best_mdl")
    assert np.isfinite(from_plateau).all() and from_plateau.is_monotonic_increasing
    tables = width_law(runs, n_boot=50, reference="best_mdl")
    assert (tables["pmin"]["reference"] == "best_mdl").all() and tables["pmin"]["reached"].all()
    with pytest.raises(ValueError, match="reference must be one of"):
        width_law(runs, reference="mdl")


def test_bad_tables_are_refused():
    runs = _runs(lambda n: 4 * math.log(n))
    with pytest.raises(ValueError, match="no plain-network runs"):
        width_law(runs[~((runs["width"] == 50) & (runs["n_modes"] == -1))])
    with pytest.raises(ValueError, match="lacks columns"):
        width_law(runs.drop(columns="seed"))
