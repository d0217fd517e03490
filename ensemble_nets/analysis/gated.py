# SPDX-License-Identifier: MIT
"""Gated deep linear networks against the neural-race reduction: the fits and discrepancies (DESIGN.md 4.3).

The simulation lives in :mod:`ensemble_nets.protocols.gated`; this module turns its rows (one per
recorded epoch, with per-mode scalars ``b_in_i``, ``b_h_i``, ``b_out_i``, ``p_i``) into numbers:

    crossing_time         first time a curve reaches a level (linear interpolation)
    fit_balanced_p0       the balanced initial strength p0 whose closed-form time to s/2 is a measured t_half
    theory_rows           the reduced ODE on given epochs, as rows shaped like the simulation's
    theory_vs_simulation  errors of b_h, simulation against the ODE
    init_sweep_table      final losses per init gain (mean and std over seeds)
    race_fits             slope of log t_half against log K (theory: -1) and the t_half error
"""
from __future__ import annotations

import math

import torch

from ensemble_nets.analysis.theory.gdln import balanced_time, integrate_routing_ode
from ensemble_nets.layers.gated import gdln_loss

__all__ = ["crossing_time", "fit_balanced_p0", "init_sweep_table", "race_fits", "theory_rows",
           "theory_vs_simulation", "zero_shot_error"]


def zero_shot_error(net, test) -> tuple[float, float]:
    """``(loss, relative error)`` on the held-out routes: ``L`` and ``L n / sum ||gated targets||^2``."""
    with torch.no_grad():
        out = net(test.inputs, test.node_gates)
        loss = gdln_loss(out, test.targets, test.node_gates).item()
        ref = sum((test.node_gates[v][:, None] * test.targets[v]).pow(2).sum() for v in out).item()
    return loss, loss * out[next(iter(out))].shape[0] / ref


def crossing_time(times: torch.Tensor, values: torch.Tensor, level: float) -> float:
    """First time ``values`` reaches ``level`` (linear interpolation), nan if never."""
    above = (values >= level).nonzero()
    if len(above) == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(times[0])
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return float(t0 + (level - v0) / (v1 - v0) * (t1 - t0))


def fit_balanced_p0(t_half: float, s: float, *, n_domains: int, n_trained: int) -> float:
    """Balanced initial mode strength p0 whose closed-form time to ``p = s/2`` equals ``t_half`` (bisection in log)."""
    lo, hi = math.log(1e-12), math.log(s / 2 * 0.999)
    for _ in range(200):
        mid = (lo + hi) / 2
        t = float(balanced_time(s / 2, s, math.exp(mid), n_domains=n_domains, n_trained=n_trained))
        lo, hi = (mid, hi) if t > t_half else (lo, mid)
    return math.exp((lo + hi) / 2)


def theory_rows(task, b0: torch.Tensor, times: torch.Tensor, label: str, epochs) -> list[dict]:
    """The reduced ODE from ``b0 = (b_in, b_h, b_out)`` at ``times``: one row per epoch (``theory = label``)::

        train_loss = K / n_items * sum_i (s_i - p_i)^2,   p_i = b_in_i b_h_i b_out_i
    """
    _, s, _ = task.svd()
    ode = integrate_routing_ode(s, b0, times, n_domains=task.n_domains, n_trained=task.n_trained)
    rows = []
    for e, t, b in zip(epochs, times.tolist(), ode):
        p = b.prod(-1)
        row = {"theory": label, "epoch": e, "ode_time": t,
               "train_loss": task.n_trained / task.n_items * float(((s - p) ** 2).sum())}
        for key, col in (("b_in", 0), ("b_h", 1), ("b_out", 2)):
            row.update({f"{key}_{i}": float(v) for i, v in enumerate(b[:, col])})
        row.update({f"p_{i}": float(v) for i, v in enumerate(p)})
        rows.append(row)
    return rows


def theory_vs_simulation(sim_rows: list[dict], theory: list[dict], *, n_modes: int) -> dict:
    """Errors of the hidden scalars b_h, simulation against ODE, over all recorded epochs, modes and seeds.

    ``mean/max_err_over_final``: |b_h^sim(t) - b_h^ode(t)| / b_h^ode(end) (scale-free, robust on plateaus);
    ``median_rel_err``: |b_h^sim(t) - b_h^ode(t)| / b_h^ode(t); ``final_rel_err``: the same at the last epoch.
    """
    th = {r["epoch"]: r for r in theory}
    last = max(th)
    rel, scaled, final = [], [], []
    for r in sim_rows:
        for i in range(n_modes):
            ode, end = th[r["epoch"]][f"b_h_{i}"], th[last][f"b_h_{i}"]
            rel.append(abs(r[f"b_h_{i}"] - ode) / abs(ode))
            scaled.append(abs(r[f"b_h_{i}"] - ode) / abs(end))
            if r["epoch"] == last:
                final.append(rel[-1])
    return {"mean_err_over_final": sum(scaled) / len(scaled), "max_err_over_final": max(scaled),
            "median_rel_err": float(torch.tensor(rel).median()), "final_rel_err": max(final)}


def init_sweep_table(finals: dict[float, list[dict | None]]) -> list[dict]:
    """Per gain: mean and std over seeds of the final ``train_loss``, ``zeroshot_loss``, ``zeroshot_rel``.

    ``finals[gain]`` holds each seed's last recorded row, None for a seed that diverged.
    """
    table = []
    for gain, rows in finals.items():
        ok = [f for f in rows if f is not None]
        entry = {"gain": gain, "n_diverged": len(rows) - len(ok)}
        for key in ("train_loss", "zeroshot_loss", "zeroshot_rel"):
            vals = torch.tensor([f[key] for f in ok], dtype=torch.float64)
            entry[key] = float(vals.mean()) if ok else math.nan
            entry[key + "_std"] = float(vals.std()) if len(ok) > 1 else 0.0
        table.append(entry)
    return table


def race_fits(race: list[dict]) -> dict:
    """Per init: least-squares slope of log t_half_sim against log K (theory -1), mean relative t_half error.

    ``race`` rows hold ``n_trained``, ``init``, ``t_half_sim``, ``t_half_theory``; an init needs 2 finite points.
    """
    fits = {}
    for init in ("aligned", "orthogonal"):
        sub = [x for x in race if x["init"] == init and math.isfinite(x["t_half_sim"])]
        if len(sub) >= 2:
            lk = torch.tensor([math.log(x["n_trained"]) for x in sub], dtype=torch.float64)
            lt = torch.tensor([math.log(x["t_half_sim"]) for x in sub], dtype=torch.float64)
            slope = float(((lk - lk.mean()) * (lt - lt.mean())).sum() / ((lk - lk.mean()) ** 2).sum())
            rel = [abs(x["t_half_sim"] - x["t_half_theory"]) / x["t_half_theory"] for x in sub]
            fits[init] = {"slope_log_t_half_vs_log_K": slope, "theory_slope": -1.0,
                          "mean_rel_err_t_half": sum(rel) / len(rel)}
    return fits
