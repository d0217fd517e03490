# SPDX-License-Identifier: MIT
"""analysis/gated.py: crossing times, the p0 fit, the race slope and the sweep table on planted numbers."""
import math

import pytest
import torch

from ensemble_nets.analysis.gated import crossing_time, fit_balanced_p0, init_sweep_table, race_fits
from ensemble_nets.analysis.theory.gdln import balanced_time


def test_crossing_time_interpolates_and_reports_never():
    times, values = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.5, 1.5])
    assert crossing_time(times, values, 1.0) == pytest.approx(1.5)
    assert crossing_time(times, values, 0.0) == 0.0
    assert math.isnan(crossing_time(times, values, 2.0))


def test_p0_fit_inverts_the_closed_form():
    t = float(balanced_time(1.0, 2.0, 1e-3, n_domains=3, n_trained=2))
    assert fit_balanced_p0(t, 2.0, n_domains=3, n_trained=2) == pytest.approx(1e-3, rel=1e-6)


def test_race_slope_of_an_exact_power_law():
    race = [{"init": "aligned", "n_trained": k, "t_half_sim": 10.0 / k, "t_half_theory": 10.0 / k} for k in (1, 2, 4)]
    race.append({"init": "orthogonal", "n_trained": 1, "t_half_sim": math.nan, "t_half_theory": 1.0})
    fits = race_fits(race)
    assert fits["aligned"]["slope_log_t_half_vs_log_K"] == pytest.approx(-1.0)
    assert fits["aligned"]["mean_rel_err_t_half"] == pytest.approx(0.0) and "orthogonal" not in fits


def test_sweep_table_counts_diverged_seeds():
    row = {"train_loss": 1.0, "zeroshot_loss": 2.0, "zeroshot_rel": 0.5}
    (entry,) = init_sweep_table({0.5: [row, {**row, "train_loss": 3.0}, None]})
    assert entry["n_diverged"] == 1 and entry["train_loss"] == pytest.approx(2.0)
    assert entry["train_loss_std"] == pytest.approx(math.sqrt(2.0))
