# SPDX-License-Identifier: MIT
"""The phase diagram's claims as statistics (Shi, Pan & Dokmanic 2024; DESIGN.md 4.2; docs/phase.md).

Input: grid frames (one row per cell: ``alpha``, ``level``, ``seed``, ``knob``, ``c``, ``test_acc``;
:func:`ensemble_nets.protocols.phase.grid_frame`), keyed by a label. ``c = d_0 - d_last`` is the
reference's curvature of the load curve (> 0 convex, < 0 concave). "More noise" is a larger level,
except on the batch-size axis (a smaller batch). Every interval is a percentile bootstrap over
seeds: each (alpha, level) cell's seeds are resampled with replacement, independently (the runs
of different cells are independent), ``n_boot`` times; 95% by default. With 3 seeds a cell's
bootstrap has at most 10 distinct means, so the intervals are coarse.

    claim_a   low noise with ReLU is concave: at alpha = 0 and the lowest-noise level, the fraction
              of seeds with c < 0 and the mean c (holds: the interval of mean c lies below 0)
    claim_b   more noise straightens, then bends convex: per alpha, Spearman of the cell-mean c with
              the noise order (holds: its interval lies above 0), and c at the highest noise
    claim_c   the straightest curves generalize best: per knob, Spearman of cell-mean |c| with
              cell-mean test accuracy over every (alpha, level) cell (holds: interval below 0)
    claim_d   more nonlinearity needs more noise: per alpha, the noise level where the cell-mean c
              first crosses 0 (linear interpolation; in log level for lr and batch size);
              "below" when c >= 0 already at the lowest noise, "above" when it never crosses.
              Per knob, Spearman of that level with 1 - alpha (the nonlinearity), censored values
              ranked at the ends (holds: interval above 0)
    ensemble  the ensemble's own noise (xi_max) against data noise and dropout at equal accuracy:
              per alpha and xi_max level, the level of the other knob with the nearest cell-mean
              test accuracy, both c's and their difference
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ensemble_nets.analysis.stats import spearman

__all__ = ["LOG_KNOBS", "bootstrap_cells", "claims_tables", "crossing_level", "format_claims", "noise_order",
           "spring_panel"]

#: Knobs whose levels are compared on a log scale.
LOG_KNOBS = ("lr", "batch_size")
_DIRECTION = {"data_noise": 1, "label_corruption": 1, "lr": 1, "dropout": 1, "batch_size": -1, "xi_max": 1}


def noise_order(knob: str, level) -> np.ndarray:
    """A number that grows with the noise: the level (its log for lr and batch size), negated for batch size."""
    if knob not in _DIRECTION:
        raise ValueError(f"unknown phase knob {knob!r}; allowed: {', '.join(_DIRECTION)}")
    level = np.asarray(level, dtype=float)
    return _DIRECTION[knob] * (np.log(level) if knob in LOG_KNOBS else level)


def _cells(frame: pd.DataFrame) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
    """[(alpha, level, c of its seeds, test_acc of its seeds)], diverged / NaN seeds dropped."""
    out = []
    for (alpha, level), group in frame.groupby(["alpha", "level"], sort=True):
        ok = np.isfinite(group["c"].to_numpy(float))
        out.append((float(alpha), float(level), group["c"].to_numpy(float)[ok], group["test_acc"].to_numpy(float)[ok]))
    return out


def _tables(frame: pd.DataFrame, n_boot: int, seed: int):
    """The cell-mean table of the data, then ``n_boot`` tables with each cell's seeds resampled."""
    cells = _cells(frame)
    rng = np.random.default_rng(seed)
    alphas = np.array([cell[0] for cell in cells])
    levels = np.array([cell[1] for cell in cells])

    def means(values, idx):  # (n_cells, n_boot) means of resampled seeds; NaN for a cell without seeds
        return np.array([v[i].mean(axis=-1) if len(v) else np.full(i.shape[:-1], np.nan) for v, i in zip(values, idx)])

    c = [cell[2] for cell in cells]
    abs_c = [np.abs(v) for v in c]
    acc = [cell[3] for cell in cells]
    ident = [np.arange(len(v))[None] for v in c]
    draws = [rng.integers(0, max(len(v), 1), (n_boot, len(v))) for v in c]
    point = pd.DataFrame({"alpha": alphas, "level": levels, "c": means(c, ident)[:, 0],
                          "abs_c": means(abs_c, ident)[:, 0], "test_acc": means(acc, ident)[:, 0]})
    c_b, abs_b, acc_b = means(c, draws), means(abs_c, draws), means(acc, draws)  # (n_cells, n_boot)
    boots = (pd.DataFrame({"alpha": alphas, "level": levels, "c": c_b[:, b], "abs_c": abs_b[:, b],
                           "test_acc": acc_b[:, b]}) for b in range(n_boot))
    return point, boots


def bootstrap_cells(frame: pd.DataFrame, stat, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95):
    """``(estimate, lo, hi)`` of ``stat(means)``, ``means`` a frame of cell means (``alpha``, ``level``,
    ``c``, ``abs_c``, ``test_acc``), with each cell's seeds resampled; ``stat`` returns a float.
    Non-finite draws are left out of the interval; an empty frame gives NaNs."""
    if frame.empty:
        return float("nan"), float("nan"), float("nan")
    point, boots = _tables(frame, n_boot, seed)
    estimate = stat(point)
    draws = np.array([stat(table) for table in boots], dtype=float)
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float(estimate), float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - ci) / 2, (1 + ci) / 2])
    return float(estimate), float(lo), float(hi)


def crossing_level(knob: str, levels, c) -> float:
    """The noise level where ``c`` first crosses 0 from below, along increasing noise.

    Linear interpolation between the two levels around the crossing (of log levels for lr and
    batch size). ``-inf`` when ``c >= 0`` at the lowest noise ("below" the range), ``+inf`` when
    ``c < 0`` at every level ("above"), NaN when ``c`` is NaN somewhere.
    """
    order = noise_order(knob, levels)
    idx = np.argsort(order)
    x, y, lv = order[idx], np.asarray(c, dtype=float)[idx], np.asarray(levels, dtype=float)[idx]
    if not np.all(np.isfinite(y)):
        return float("nan")
    if y[0] >= 0:
        return float("-inf")
    for i in range(1, len(y)):
        if y[i] >= 0:
            t = -y[i - 1] / (y[i] - y[i - 1])
            xc = x[i - 1] + t * (x[i] - x[i - 1])
            value = _DIRECTION[knob] * xc
            return float(np.exp(value)) if knob in LOG_KNOBS else float(value)
    return float("inf")


def _lowest_noise(knob: str, levels) -> float:
    levels = np.asarray(sorted(set(levels)), dtype=float)
    return float(levels[np.argmin(noise_order(knob, levels))])


def _highest_noise(knob: str, levels) -> float:
    levels = np.asarray(sorted(set(levels)), dtype=float)
    return float(levels[np.argmax(noise_order(knob, levels))])


def _claim_a(label, frame, knob, n_boot):
    rows = []
    low = _lowest_noise(knob, frame["level"])
    for alpha in sorted(frame["alpha"].unique()):
        sub = frame[(frame["alpha"] == alpha) & (frame["level"] == low)]
        c = sub["c"].to_numpy(float)
        c = c[np.isfinite(c)]
        est, lo, hi = bootstrap_cells(sub, lambda m: m["c"].mean(), n_boot=n_boot)
        rows.append({"grid": label, "knob": knob, "alpha": alpha, "level": low, "n_seeds": len(c),
                     "frac_concave": float(np.mean(c < 0)) if len(c) else np.nan,
                     "c_mean": est, "c_lo": lo, "c_hi": hi, "holds": bool(hi < 0)})
    return rows


def _claim_b(label, frame, knob, n_boot):
    rows = []
    high = _highest_noise(knob, frame["level"])
    low = _lowest_noise(knob, frame["level"])
    for alpha in sorted(frame["alpha"].unique()):
        sub = frame[frame["alpha"] == alpha]
        est, lo, hi = bootstrap_cells(sub, lambda m: spearman(m["c"], noise_order(knob, m["level"])), n_boot=n_boot)
        c_low, c_low_lo, c_low_hi = bootstrap_cells(sub[sub["level"] == low], lambda m: m["c"].mean(), n_boot=n_boot)
        c_high, c_high_lo, c_high_hi = bootstrap_cells(sub[sub["level"] == high], lambda m: m["c"].mean(),
                                                       n_boot=n_boot)
        rows.append({"grid": label, "knob": knob, "alpha": alpha, "rho_c_noise": est, "rho_lo": lo, "rho_hi": hi,
                     "c_lowest_noise": c_low, "c_highest_noise": c_high, "c_highest_lo": c_high_lo,
                     "c_highest_hi": c_high_hi, "straightens": bool(lo > 0), "convex_at_highest": bool(c_high_lo > 0)})
    return rows


def _claim_c(label, frame, knob, n_boot):
    est, lo, hi = bootstrap_cells(frame, lambda m: spearman(m["abs_c"], m["test_acc"]), n_boot=n_boot)
    means = frame.groupby(["alpha", "level"])[["c", "test_acc"]].mean().reset_index()
    best = means.loc[means["test_acc"].idxmax()]
    return [{"grid": label, "knob": knob, "n_cells": len(means), "rho_absc_acc": est, "rho_lo": lo, "rho_hi": hi,
             "best_alpha": best["alpha"], "best_level": best["level"], "best_acc": best["test_acc"],
             "best_c": best["c"], "median_abs_c": float(means["c"].abs().median()), "holds": bool(hi < 0)}]


def _claim_d(label, frame, knob, n_boot):
    alphas = sorted(frame["alpha"].unique())

    def crossings(m):
        return np.array([crossing_level(knob, m.loc[m["alpha"] == a, "level"], m.loc[m["alpha"] == a, "c"])
                         for a in alphas])

    rows = [{"grid": label, "knob": knob, "alpha": alpha} for alpha in alphas]
    point = crossings(frame.groupby(["alpha", "level"])["c"].mean().reset_index())
    boots = _bootstrap_vector(frame, crossings, n_boot)
    for i, row in enumerate(rows):
        draws = boots[:, i]
        finite = draws[np.isfinite(draws)]
        row.update({"crossing": point[i], "crossing_lo": np.quantile(finite, 0.025) if finite.size else np.nan,
                    "crossing_hi": np.quantile(finite, 0.975) if finite.size else np.nan,
                    "frac_below": float(np.mean(draws == -np.inf)), "frac_above": float(np.mean(draws == np.inf))})
    nonlin = 1 - np.asarray(alphas)
    rho = spearman(point, nonlin)
    rho_draws = np.array([spearman(b, nonlin) for b in boots])
    rho_draws = rho_draws[np.isfinite(rho_draws)]
    lo, hi = (np.quantile(rho_draws, [0.025, 0.975]) if rho_draws.size else (np.nan, np.nan))
    for row in rows:
        row.update({"rho_crossing_nonlinearity": rho, "rho_lo": lo, "rho_hi": hi, "holds": bool(lo > 0)})
    return rows


def _bootstrap_vector(frame: pd.DataFrame, stat, n_boot: int, seed: int = 0) -> np.ndarray:
    """``(n_boot, ...)`` draws of a vector statistic of the cell-mean table (seeds resampled per cell)."""
    _, boots = _tables(frame, n_boot, seed)
    return np.array([stat(table) for table in boots], dtype=float)


def _ensemble(frames: dict[str, pd.DataFrame]) -> list[dict]:
    ens = [f for f in frames.values() if f["knob"].iloc[0] == "xi_max"]
    others = [f for f in frames.values() if f["knob"].iloc[0] in ("data_noise", "dropout")
              and (f["model"].iloc[0] if "model" in f else "linear") == "linear"]
    if not ens or not others:
        return []
    e = ens[0].groupby(["alpha", "level"])[["c", "test_acc"]].mean().reset_index()
    rows = []
    for other in others:
        knob = other["knob"].iloc[0]
        o = other.groupby(["alpha", "level"])[["c", "test_acc"]].mean().reset_index()
        for _, row in e.iterrows():
            cand = o[np.isclose(o["alpha"], row["alpha"])]
            if cand.empty or not np.isfinite(row["test_acc"]):
                continue
            match = cand.loc[(cand["test_acc"] - row["test_acc"]).abs().idxmin()]
            rows.append({"alpha": row["alpha"], "xi_max": row["level"], "acc_ensemble": row["test_acc"],
                         "c_ensemble": row["c"], "other_knob": knob, "other_level": match["level"],
                         "acc_other": match["test_acc"], "c_other": match["c"],
                         "acc_gap": row["test_acc"] - match["test_acc"], "c_gap": row["c"] - match["c"],
                         "matched": bool(abs(row["test_acc"] - match["test_acc"]) <= 0.01)})
    return rows


def claims_tables(frames: dict[str, pd.DataFrame], *, n_boot: int = 1000, measure: str = "c"
                  ) -> dict[str, pd.DataFrame]:
    """The tables ``claim_a`` ... ``claim_d`` (one block per grid) and ``ensemble`` (see the module docstring).

    :param frames: label -> grid frame (columns ``alpha``, ``level``, ``seed``, ``knob``, ``test_acc`` and
        ``measure``).
    :param measure: the curvature column: ``"c"`` (the reference's, of log Tr(Sigma_w Sigma_b^+)), ``"c_tr"``
        (the same of log Tr Sigma_w / Tr Sigma_b) or ``"curvature"`` (normalized).
    """
    out = {"claim_a": [], "claim_b": [], "claim_c": [], "claim_d": []}
    frames = {label: frame.assign(c=frame[measure]) if measure in frame else frame for label, frame in frames.items()}
    for label, frame in frames.items():
        missing = {"alpha", "level", "seed", "knob", "c", "test_acc", measure} - set(frame)
        if missing:
            raise ValueError(f"grid {label!r} lacks columns {sorted(missing)}; grids written before issue 12 "
                             "(no reference c) must be rerun with experiments/phase_diagram.py")
        knob = frame["knob"].iloc[0]
        for name, fn in (("claim_a", _claim_a), ("claim_b", _claim_b), ("claim_c", _claim_c),
                         ("claim_d", _claim_d)):
            out[name] += fn(label, frame, knob, n_boot)
    tables = {name: pd.DataFrame(rows) for name, rows in out.items()}
    tables["ensemble"] = pd.DataFrame(_ensemble(frames))
    return tables


def format_claims(tables: dict[str, pd.DataFrame]) -> str:
    """The claims tables as text (what ``experiments/phase_diagram.py --claims`` prints)."""
    parts = []
    titles = {"claim_a": "(a) concave at low noise (c < 0); 'holds' = interval of mean c below 0 (read alpha 0)",
              "claim_b": "(b) c rises with noise: Spearman(c, noise order) per alpha; c at the highest noise",
              "claim_c": "(c) straightest curves best: Spearman(|c|, test acc) over (alpha, level) cells",
              "claim_d": "(d) c crosses 0 at a noise level rising with nonlinearity (1 - alpha); -inf/inf = "
                         "below/above the range",
              "ensemble": "ensemble xi_max vs data noise / dropout at the nearest test accuracy (matched: gap <= 0.01)"}
    for name, title in titles.items():
        table = tables.get(name)
        parts.append(f"== {title}")
        parts.append("(empty)" if table is None or table.empty else
                     table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return "\n".join(parts)


def spring_panel(noises=(0.0, 0.003, 0.01, 0.03, 0.1), seeds=range(10), t_max: float = 700.0) -> pd.DataFrame:
    """The theory panel: the second-order (Langevin) spring-block chain's time-averaged spring lengths
    against noise, asymmetric (0.003/0.004, the reference) and symmetric (0.003/0.003) friction, mean
    over ``seeds`` (:func:`~ensemble_nets.analysis.theory.langevin_elongations`). Columns ``noise``,
    ``friction`` ("asymmetric"/"symmetric"), ``spring``, ``mean_extension``, ``sem``, ``tilt`` (d1 - d8)."""
    from ensemble_nets.analysis.theory.spring_block import langevin_elongations

    raw = langevin_elongations(noises=noises, seeds=seeds, t_max=t_max)
    raw["friction"] = np.where(raw["friction_forward"] == raw["friction_back"], "symmetric", "asymmetric")
    grouped = raw.groupby(["noise", "friction", "spring"])["mean_extension"]
    table = pd.DataFrame({"mean_extension": grouped.mean(), "sem": grouped.sem()}).reset_index()
    last = int(table["spring"].max())
    ends = raw.pivot_table(index=["noise", "friction", "seed"], columns="spring", values="mean_extension")
    tilt = (ends[1] - ends[last]).groupby(["noise", "friction"]).mean().rename("tilt").reset_index()
    return table.merge(tilt, on=["noise", "friction"])
