# SPDX-License-Identifier: MIT
"""The mode width law: the least number of modes P_min(N) that a width-N network needs, and its growth.

Claim under test (Li & Huang, PRR 5, L022011, 2023; DESIGN.md section 3):
P_min grows like log N with the width N, then saturates. From a table of
runs (one row per width, P (``n_modes``, -1 for the plain network) and seed,
with its test accuracy ``acc``)::

    target(N)  = mean over seeds of acc_plain(N) - threshold        (reference="plain", issue 11)
               = max over P of mean acc_MDL(N, P) - threshold      (reference="best_mdl")
    P_min(N)   = least P of the grid with mean over seeds of acc_MDL(N, P) >= target(N)

for each threshold (by default 0.01 and 0.02: plain minus 1 and minus 2
points). Intervals: a bootstrap over seeds, each cell's seeds (and the plain
network's) resampled with replacement, independently per cell (a seed of one
cell has nothing to do with the same seed of another); 2.5 and 97.5
percentiles of P_min. A width whose MDL runs never reach the target gets
P_min = inf ("not reached").

P_min(N) is then fitted by least squares as::

    log          a + b ln N
    linear       a + b N
    saturating   a + b ln min(N, N*)       (N* searched over the grid's widths; 3 parameters)

and compared by the Gaussian-likelihood criteria ``AIC = n ln(SSE/n) + 2k``
and ``BIC = n ln(SSE/n) + k ln n`` (SSE floored at ``sse_floor`` so that an
exact fit stays finite). The same fits on every bootstrap replicate give an
interval for the log slope b and how often each form wins. Everything here
returns pandas tables that ``plotting`` can draw; nothing is plotted.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FORMS", "REFERENCES", "boot_interval", "fit_forms", "pmin_bootstrap", "pmin_from_means", "width_law"]

#: What the threshold is measured from: the plain network's accuracy, or the best over the P grid.
REFERENCES = ("plain", "best_mdl")
#: Growth forms fitted to P_min(N), with their parameter counts.
FORMS = {"log": 2, "linear": 2, "saturating": 3}
_REQUIRED = ("width", "n_modes", "seed", "acc")


def _check_runs(runs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks columns {missing}; it needs {list(_REQUIRED)} "
                         f"(n_modes = -1 for the plain network)")
    runs = runs[list(_REQUIRED)].copy()
    if runs["acc"].isna().any():
        raise ValueError("runs table holds missing accuracies; finish (or drop) those runs first")
    widths_without_plain = sorted(set(runs["width"]) - set(runs.loc[runs["n_modes"] < 0, "width"]))
    if widths_without_plain:
        raise ValueError(f"widths {widths_without_plain} have no plain-network runs (n_modes = -1); "
                         f"P_min is measured against the plain network of the same width")
    return runs


def _cells(runs: pd.DataFrame) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    keys, accs = [], []
    for key, group in runs.groupby(["width", "n_modes"]):
        keys.append((int(key[0]), int(key[1])))
        accs.append(group["acc"].to_numpy(float))
    return keys, accs


def _pmin_core(keys: list[tuple[int, int]], acc: np.ndarray, threshold: float,
               reference: str = "plain") -> tuple[np.ndarray, np.ndarray]:
    """P_min per width for every row of ``acc`` ``(n_rep, n_cells)``; returns (widths, (n_rep, n_widths))."""
    widths = np.array(sorted({w for w, _ in keys}))
    out = np.empty((acc.shape[0], len(widths)))
    for i, width in enumerate(widths):
        plain = keys.index((width, -1))
        modes = sorted((p, j) for j, (w, p) in enumerate(keys) if w == width and p >= 1)
        if not modes:
            out[:, i] = math.inf
            continue
        p_values = np.array([p for p, _ in modes], float)
        mdl = acc[:, [j for _, j in modes]]  # (n_rep, n_P)
        best = acc[:, plain] if reference == "plain" else mdl.max(1)
        ok = mdl >= (best - threshold)[:, None]
        out[:, i] = np.where(ok.any(1), p_values[ok.argmax(1)], math.inf)
    return widths, out


def _check_reference(reference: str) -> None:
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")


def pmin_from_means(runs: pd.DataFrame, threshold: float, *, reference: str = "plain") -> pd.Series:
    """P_min per width from the seed-mean accuracies (inf where no P of the grid reaches the target)."""
    _check_reference(reference)
    keys, accs = _cells(_check_runs(runs))
    widths, out = _pmin_core(keys, np.array([[a.mean() for a in accs]]), threshold, reference)
    return pd.Series(out[0], index=pd.Index(widths, name="width"), name="p_min")


def pmin_bootstrap(runs: pd.DataFrame, threshold: float, *, n_boot: int = 2000, seed: int = 0,
                   reference: str = "plain") -> np.ndarray:
    """P_min per width for ``n_boot`` resamplings of the seeds; array ``(n_boot, n_widths)``, widths ascending."""
    _check_reference(reference)
    keys, accs = _cells(_check_runs(runs))
    rng = np.random.default_rng(seed)
    # (n_boot, n_cells): each cell's seeds drawn with replacement, independently of the other cells
    draws = np.stack([a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(1) for a in accs], 1)
    return _pmin_core(keys, draws, threshold, reference)[1]


def boot_interval(boot: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over replicates (axis 0), read off the replicates themselves (no interpolation:
    P_min lives on the grid, and may be inf where a replicate never reaches the target)."""
    tail = (1.0 - level) / 2
    return np.quantile(boot, tail, axis=0, method="lower"), np.quantile(boot, 1 - tail, axis=0, method="higher")


def _design(form: str, widths: np.ndarray, n_star: float | None = None) -> np.ndarray:
    if form == "log":
        x = np.log(widths)
    elif form == "linear":
        x = widths.astype(float)
    elif form == "saturating":
        x = np.log(np.minimum(widths, n_star))
    else:
        raise ValueError(f"form must be one of {sorted(FORMS)}, got {form!r}")
    return np.stack([np.ones_like(x), x], 1)


def _least_squares(form, widths, y, n_star=None):
    design = _design(form, widths, n_star)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, float(np.sum((design @ coef - y) ** 2))


def _fit_arrays(widths: np.ndarray, y: np.ndarray, sse_floor: float) -> list[dict]:
    keep = np.isfinite(y)
    widths, y = widths[keep], y[keep]
    n = len(y)
    if n < 3:
        raise ValueError(f"only {n} widths have a finite P_min; fitting needs at least 3 (widen the P grid "
                         f"or add widths)")
    rows = []
    for form, k in FORMS.items():
        if form == "saturating":  # N* over the widths below the largest (N* = max is the log form)
            fits = [(_least_squares(form, widths, y, s), s) for s in widths[:-1]]
            (coef, sse), n_star = min(fits, key=lambda f: f[0][1])
        else:
            (coef, sse), n_star = _least_squares(form, widths, y), None
        ll_term = n * math.log(max(sse, sse_floor) / n)
        rows.append({"form": form, "a": coef[0], "b": coef[1], "n_star": n_star, "sse": sse, "k": k, "n": n,
                     "aic": ll_term + 2 * k, "bic": ll_term + k * math.log(n)})
    return rows


def fit_forms(widths: Sequence[float], p_min: Sequence[float], *, sse_floor: float = 1e-9) -> pd.DataFrame:
    """Least-squares fits of the three forms; one row per form with a, b, n_star, sse, aic, bic, delta_bic.

    Widths whose P_min is inf (not reached) are left out; at least 3 finite points are needed.
    """
    table = pd.DataFrame(_fit_arrays(np.asarray(widths, float), np.asarray(p_min, float), sse_floor))
    table["delta_bic"] = table["bic"] - table["bic"].min()
    table["delta_aic"] = table["aic"] - table["aic"].min()
    return table


def _boot_fits(widths: np.ndarray, boot: np.ndarray) -> tuple[dict, list[float]]:
    """How often each form wins (lowest BIC) over the replicates, and the log slope of each replicate."""
    wins, slopes, memo = {form: 0 for form in FORMS}, [], {}
    for replicate in boot:
        key = tuple(replicate)
        if key not in memo:  # replicates repeat: P_min lives on a discrete grid
            try:
                rows = _fit_arrays(widths, replicate, 1e-9)
            except ValueError:
                memo[key] = None
            else:
                memo[key] = (min(rows, key=lambda r: r["bic"])["form"], rows[0]["b"])
        if memo[key] is not None:
            wins[memo[key][0]] += 1
            slopes.append(memo[key][1])
    total = max(sum(wins.values()), 1)
    return {form: count / total for form, count in wins.items()}, slopes


def _verdict(fits: pd.DataFrame, wins: dict, slope_lo: float, slope_hi: float, unreached: list) -> str:
    best = fits.loc[fits["bic"].idxmin(), "form"]
    gap = float(fits.loc[fits["form"] == "linear", "bic"].iloc[0] - fits.loc[fits["form"] != "linear", "bic"].min())
    note = f"; P_min not reached at widths {unreached}" if unreached else ""
    if best != "linear" and gap >= 2 and slope_lo > 0:
        return (f"consistent with the claim: {best} growth preferred over linear (BIC gap {gap:.1f}, log/saturating "
                f"form wins {wins['log'] + wins['saturating']:.0%} of bootstrap replicates), log slope "
                f"in [{slope_lo:.2f}, {slope_hi:.2f}]{note}")
    if best == "linear" and -gap >= 2:
        return (f"against the claim: linear growth preferred (BIC gap {-gap:.1f}, wins {wins['linear']:.0%} of "
                f"bootstrap replicates){note}")
    if slope_hi <= 0:
        return f"no growth: the log slope interval [{slope_lo:.2f}, {slope_hi:.2f}] does not exceed 0{note}"
    return (f"inconclusive: forms within 2 BIC units (best {best}; log slope in [{slope_lo:.2f}, {slope_hi:.2f}])"
            f"{note}")


def width_law(runs: pd.DataFrame, *, thresholds: Sequence[float] = (0.01, 0.02), n_boot: int = 2000,
              seed: int = 0, reference: str = "plain") -> dict[str, pd.DataFrame]:
    """P_min with bootstrap intervals, the three fits and a verdict, per threshold.

    :param runs: (DataFrame) One row per run: ``width``, ``n_modes`` (-1: plain network), ``seed``, ``acc``
        (test accuracy in [0, 1]).
    :param thresholds: (sequence of float) Accuracy drops allowed below the plain network (0.01 = one point).
    :param n_boot: (int) Bootstrap replicates over seeds.
    :param reference: (``"plain"`` or ``"best_mdl"``) The accuracy the threshold is taken from: the plain
        network of the width (issue 11), or the best MDL accuracy over the P grid at that width (the modes
        needed to come within ``threshold`` of what modes can do at all; useful where no P reaches the
        plain network).
    :returns: (dict of DataFrame)
        ``"pmin"`` (threshold, reference, width, plain_acc, best_mdl_acc, p_min, p_min_lo, p_min_hi, reached),
        ``"fits"`` (threshold, form, a, b, n_star, sse, aic, bic, delta_bic, boot_win_fraction),
        ``"curves"`` (threshold, form, width, p_min_fit: the fitted forms on a fine width grid, for a figure),
        ``"verdict"`` (threshold, best_form, log_slope, log_slope_lo, log_slope_hi, verdict).
    """
    runs = _check_runs(runs)
    _check_reference(reference)
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot} is too few bootstrap replicates for a 95% interval; use >= 1000")
    plain = runs[runs["n_modes"] < 0].groupby("width")["acc"].mean()
    best_mdl = runs[runs["n_modes"] > 0].groupby(["width", "n_modes"])["acc"].mean().groupby("width").max()
    widths = np.array(sorted(set(runs["width"])), float)
    pmin_rows, fit_tables, curve_rows, verdict_rows = [], [], [], []
    for threshold in thresholds:
        point = pmin_from_means(runs, threshold, reference=reference).loc[widths]
        boot = pmin_bootstrap(runs, threshold, n_boot=n_boot, seed=seed, reference=reference)
        lo, hi = boot_interval(boot)
        for i, width in enumerate(widths):
            pmin_rows.append({"threshold": threshold, "reference": reference, "width": int(width),
                              "plain_acc": float(plain.loc[width]), "best_mdl_acc": float(best_mdl.get(width, math.nan)),
                              "p_min": point.iloc[i], "p_min_lo": lo[i], "p_min_hi": hi[i],
                              "reached": bool(np.isfinite(point.iloc[i]))})
        unreached = [int(w) for w, p in zip(widths, point) if not np.isfinite(p)]
        try:
            fits = fit_forms(widths, point.to_numpy())
        except ValueError as err:
            verdict_rows.append({"threshold": threshold, "best_form": None, "log_slope": math.nan,
                                 "log_slope_lo": math.nan, "log_slope_hi": math.nan, "verdict": f"no fit: {err}"})
            continue
        wins, slopes = _boot_fits(widths, boot)
        fits.insert(0, "threshold", threshold)
        fits["boot_win_fraction"] = fits["form"].map(wins)
        fit_tables.append(fits)
        grid = np.geomspace(widths.min(), widths.max(), 50)
        for _, fit in fits.iterrows():
            design = _design(fit["form"], grid, fit["n_star"])
            for width, value in zip(grid, design @ np.array([fit["a"], fit["b"]])):
                curve_rows.append({"threshold": threshold, "form": fit["form"], "width": width, "p_min_fit": value})
        slope_lo, slope_hi = (np.percentile(slopes, [2.5, 97.5]) if slopes else (math.nan, math.nan))
        verdict_rows.append({
            "threshold": threshold, "best_form": fits.loc[fits["bic"].idxmin(), "form"],
            "log_slope": float(fits.loc[fits["form"] == "log", "b"].iloc[0]), "log_slope_lo": float(slope_lo),
            "log_slope_hi": float(slope_hi), "verdict": _verdict(fits, wins, slope_lo, slope_hi, unreached)})
    tables = {"pmin": pd.DataFrame(pmin_rows),
              "fits": pd.concat(fit_tables, ignore_index=True) if fit_tables else pd.DataFrame(),
              "curves": pd.DataFrame(curve_rows), "verdict": pd.DataFrame(verdict_rows)}
    for name in ("fits", "curves", "verdict"):
        if len(tables[name]):
            tables[name].insert(1, "reference", reference)
    return tables
