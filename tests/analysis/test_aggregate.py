# SPDX-License-Identifier: MIT
import math

import pandas as pd
import pytest
from scipy import stats

import ensemble_nets as en
from ensemble_nets.analysis import categorize, perturbation_curves
from ensemble_nets.analysis.aggregate import check_same_architecture, perturbation_gaps, summarize_runs
from tests.analysis.test_perturb import _planted_network


def _curves(run_gaps, *, n_networks=4, control="delete_variable_matched"):
    """Synthetic curves: network k shares noise 0.05 k under both perturbations; the gap of run r is run_gaps[r]."""
    runs = {}
    for r, gap in enumerate(run_gaps):
        rows = []
        for fraction in (0.0, 0.5, 1.0):
            for k in range(n_networks):
                base = 0.1 + 0.05 * k + 0.01 * r
                rows.append({"layer": "layer1", "perturbation": control, "fraction": fraction, "network": k,
                             "error": base})
                rows.append({"layer": "layer1", "perturbation": "delete_important", "fraction": fraction,
                             "network": k, "error": base + gap * fraction})
        runs[f"s{r}"] = pd.DataFrame(rows)
    return runs


def test_gaps_are_paired_by_network_and_interval_is_over_runs():
    summary = summarize_runs(_curves([0.2, 0.4, 0.6]), pairs=[("delete_important", "delete_variable_matched")])
    row = summary.gaps.set_index("fraction").loc[1.0]
    assert row["mean"] == pytest.approx(0.4) and row["n_runs"] == 3 and row["n_networks"] == 12
    assert row["sd_within_runs"] == pytest.approx(0.0, abs=1e-12)  # the shared network noise cancels
    half = stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)
    assert (row["low"], row["high"]) == pytest.approx((0.4 - half, 0.4 + half))
    assert row["interval_over"] == "runs" and row["verdict"] == "unresolved"  # 0.4 +- 0.497 contains 0
    half_row = summary.gaps.set_index("fraction").loc[0.5]
    assert half_row["mean"] == pytest.approx(0.2) and half_row["sd_between_runs"] == pytest.approx(0.1)
    tight = summarize_runs(_curves([0.5, 0.6, 0.7]), pairs=[("delete_important", "delete_variable_matched")])
    assert set(tight.gaps["verdict"]) == {"holds"}
    wrong = summarize_runs(_curves([-0.5, -0.6, -0.7]), pairs=[("delete_important", "delete_variable_matched")])
    assert set(wrong.gaps["verdict"]) == {"fails"}


def test_one_run_gives_an_interval_over_networks():
    curves = _curves([0.3])["s0"]
    curves.loc[(curves.perturbation == "delete_important") & (curves.fraction == 1.0), "error"] += \
        [0.0, 0.1, 0.2, 0.3]  # gaps 0.3, 0.4, 0.5, 0.6 over the four networks
    row = summarize_runs({"only": curves}).gaps.set_index("fraction").loc[1.0]
    half = stats.t.ppf(0.975, 3) * pd.Series([0.3, 0.4, 0.5, 0.6]).std() / 2
    assert row["interval_over"] == "networks" and row["mean"] == pytest.approx(0.45)
    assert (row["low"], row["high"]) == pytest.approx((0.45 - half, 0.45 + half))


def test_planted_network_gap_through_the_whole_pipeline():
    model, data = _planted_network()
    curves = {f"s{seed}": perturbation_curves(model, data, 1, fractions=[0.5, 1.0], n_networks=3, seed=seed)
              for seed in (0, 1)}
    tables = {run: categorize(model) for run in curves}
    summary = summarize_runs(curves, tables)
    gaps = summary.gaps.set_index(["fraction", "target", "control"])
    # deleting n of the 4 planted diagonal connections gives error n / 4; the variable ones feed nothing
    assert gaps.loc[(0.5, "delete_important", "delete_variable_matched"), "mean"] == 0.5
    assert gaps.loc[(1.0, "delete_important", "delete_largest_variable"), "low"] == pytest.approx(1.0)
    assert gaps.loc[(1.0, "delete_important", "delete_variable_matched"), "verdict"] == "holds"
    cats = summary.categories.set_index(["layer", "category", "among"])
    assert cats.loc[("layer1", "important", "all"), "mean"] == pytest.approx(4 / 20)
    assert cats.loc[("layer1", "important", "all"), "n_runs"] == 2


def test_mixed_architectures_fail_clearly():
    with pytest.raises(ValueError, match="different architectures"):
        check_same_architecture({"a": en.EnsembleMLP((4, 3, 2)), "b": en.EnsembleMLP((4, 5, 2))})
    check_same_architecture({"a": en.EnsembleMLP((4, 3, 2)), "b": en.EnsembleMLP((4, 3, 2))})
    tables = {"a": categorize(en.EnsembleMLP((4, 3, 2))), "b": categorize(en.EnsembleMLP((4, 5, 2)))}
    with pytest.raises(ValueError, match="one architecture"):
        summarize_runs(_curves([0.1, 0.2]), tables)
    with pytest.raises(ValueError, match="fraction 0.3"):
        perturbation_gaps(_curves([0.1]), fractions=[0.3])
    with pytest.raises(ValueError, match="controls"):
        perturbation_gaps(_curves([0.1]), pairs=[("delete_important", "delete_random")])


def test_category_fraction_interval_stays_within_zero_and_one():
    """Three runs with fractions 0.0, 0.0, 0.03: the t interval reaches below 0 and must be cut at 0."""
    tables = {f"s{r}": pd.DataFrame({"layer": ["layer1"] * 2, "category": ["important", "variable"],
                                     "count": [c, 100 - c], "fraction": [c / 100, 1 - c / 100]})
              for r, c in enumerate((0, 0, 3))}
    rows = summarize_runs(_curves([0.2, 0.4, 0.6]), tables,
                          pairs=[("delete_important", "delete_variable_matched")]).categories.set_index("category")
    important, variable = rows.loc["important"], rows.loc["variable"]
    assert important["mean"] == pytest.approx(0.01) and important["low"] == 0.0 and 0.01 < important["high"] < 1
    assert variable["high"] == 1.0 and variable["low"] < 0.99
