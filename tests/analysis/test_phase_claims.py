# SPDX-License-Identifier: MIT
"""Claims (a)-(d) of the phase diagram as statistics, on synthetic grids whose answers are known."""
import math

import numpy as np
import pandas as pd
import pytest

from ensemble_nets.analysis.phase_claims import claims_tables, crossing_level, format_claims, noise_order


def _grid(knob="data_noise", levels=(0.0, 0.2, 0.4, 0.6, 0.8), c_of=None, seeds=3, model="linear", seed=0):
    """c = -(1 - alpha) + 2 * level (+ seed noise) by default; accuracy falls with |c|."""
    rng = np.random.default_rng(seed)
    c_of = c_of or (lambda alpha, level: -(1 - alpha) + 2 * level)
    rows = []
    for alpha in (0.0, 0.5, 1.0):
        for level in levels:
            for s in range(seeds):
                c = c_of(alpha, level) + 0.02 * rng.standard_normal()
                rows.append({"alpha": alpha, "level": level, "seed": s, "knob": knob, "model": model, "c": c,
                             "test_acc": 0.95 - 0.1 * abs(c)})
    return pd.DataFrame(rows)


def test_crossing_level_hand_cases():
    assert crossing_level("data_noise", [0.0, 0.2, 0.4], [-1.0, -0.5, 0.5]) == pytest.approx(0.3)
    # batch size: more noise is a smaller batch; log interpolation between 2560 and 640
    assert crossing_level("batch_size", [160, 640, 2560], [2.0, 1.0, -1.0]) == pytest.approx(1280.0)
    assert crossing_level("dropout", [0.0, 0.1], [0.2, 0.5]) == -math.inf  # convex already: below the range
    assert crossing_level("dropout", [0.0, 0.1], [-0.2, -0.1]) == math.inf  # never crosses: above
    assert noise_order("batch_size", [10, 2560])[0] > noise_order("batch_size", [10, 2560])[1]
    with pytest.raises(ValueError, match="allowed: data_noise"):
        noise_order("label_noise", [0.1])


def test_claims_hold_on_a_grid_built_to_satisfy_them():
    tables = claims_tables({"data noise": _grid()}, n_boot=200)
    a = tables["claim_a"].set_index("alpha")
    assert a.loc[0.0, "holds"] and a.loc[0.0, "frac_concave"] == 1.0
    assert a.loc[0.0, "c_mean"] == pytest.approx(-1, abs=0.05)
    b = tables["claim_b"].set_index("alpha")
    assert b["straightens"].all() and b["convex_at_highest"].all() and b["rho_c_noise"].min() > 0.99
    c = tables["claim_c"].iloc[0]
    assert c["holds"] and c["rho_absc_acc"] < -0.99 and c["n_cells"] == 15
    d = tables["claim_d"].set_index("alpha")
    assert d.loc[0.0, "crossing"] == pytest.approx(0.5, abs=0.03)
    assert d.loc[0.5, "crossing"] == pytest.approx(0.25, abs=0.03)
    assert d.loc[1.0, "crossing"] == -math.inf or d.loc[1.0, "crossing"] < 0.02  # c ~ 0 at level 0
    assert d["holds"].all() and d["rho_crossing_nonlinearity"].iloc[0] > 0.9
    assert "(d)" in format_claims(tables)


def test_claims_fail_where_the_grid_contradicts_them():
    flat = _grid(c_of=lambda alpha, level: 2.0 - level)  # convex everywhere, less so with more noise
    tables = claims_tables({"flat": flat}, n_boot=200)
    assert not tables["claim_a"]["holds"].any()
    assert not tables["claim_b"]["straightens"].any()
    assert (tables["claim_d"]["crossing"] == -math.inf).all() and not tables["claim_d"]["holds"].any()


def test_ensemble_compared_at_matched_accuracy():
    ens = _grid(knob="xi_max", levels=(0.0, 0.01), model="spike_slab", c_of=lambda a, lv: 10 * lv)
    dn = _grid()
    table = claims_tables({"ens": ens, "dn": dn}, n_boot=50)["ensemble"]
    assert set(table["other_knob"]) == {"data_noise"} and len(table) == 6
    row = table[(table["alpha"] == 0.0) & (table["xi_max"] == 0.0)].iloc[0]
    # ensemble c ~ 0 (acc ~ 0.95): the data-noise cell with the nearest accuracy is level 0.6 or 0.4 at alpha 0
    assert row["other_level"] in (0.4, 0.6) and abs(row["acc_gap"]) < 0.03


def test_old_grids_are_named():
    with pytest.raises(ValueError, match="must be rerun"):
        claims_tables({"old": _grid().drop(columns="c")})
