# SPDX-License-Identifier: MIT
"""On-line teacher-student learning of a mode-decomposed soft committee machine: simulation against ODE theory.

DESIGN.md section 3 (last bullet). The student shares xi and Sigma with the teacher and learns only its
input-side modes xi_hat by on-line SGD (one fresh example per step); the order parameters Q, M follow
the preconditioned Saad-Solla ODEs of :mod:`ensemble_nets.analysis.theory.online`. The teacher
(``teacher_seed``) and the student's initial xi_hat (``init_seed``) are fixed, so the ODE starts from
the exact initial order parameters; ``seeds`` draw the example streams. :func:`run` writes
config.json, metrics.csv (one row per recorded alpha: eps_g of the simulation, mean and std over
seeds, eps_g of the ODE, per-unit overlaps R_ii), order_parameters.npz (Q, M of both, T) and
summary.json (the theory-simulation discrepancy, :func:`ensemble_nets.analysis.online.discrepancy`).
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble_nets.analysis.online import discrepancy
from ensemble_nets.analysis.theory import online
from ensemble_nets.cli import positive_float, positive_int
from ensemble_nets.data.teacher import ModeTeacher, default_n_modes, mode_init_std
from ensemble_nets.protocols.figures import single_run_family
from ensemble_nets.training.runs import CONFIG, METRICS, SUMMARY, read_json, write_atomic, write_json, write_metrics

__all__ = ["BUDGETS", "MAIN_RUN", "OnlineConfig", "REQUIRED_RUNS", "figure_tables", "jobs", "missing_runs",
           "record_alphas", "run", "run_cell"]

MAIN_RUN = "online-d30"
#: Run folders (relative to the runs folder) the figures need -> the command that makes them.
REQUIRED_RUNS = {MAIN_RUN: f"python experiments/online_teacher_student.py --out runs/{MAIN_RUN}"}


@dataclass(frozen=True)
class OnlineConfig:
    """The reference setting of the on-line experiment (a few CPU minutes)."""

    d: int = field(default=30, metadata={"type": positive_int, "help": "input dimension"})
    K: int = field(default=8, metadata={"type": positive_int, "help": "hidden units of teacher and student"})
    P: int | None = field(default=None, metadata={"type": positive_int, "help": "modes (None: int(ln d) = 3)"})
    eta: float = field(default=5.0, metadata={"type": positive_float, "help": "learning rate on xi_hat"})
    alpha_max: float = field(default=1e4, metadata={"type": positive_float, "help": "last alpha = t/d"})
    n_record: int = field(default=90, metadata={"type": positive_int, "help": "log-spaced alphas recorded"})
    seeds: tuple = field(default=(0, 1, 2, 3, 4), metadata={"help": "example-stream seeds"})
    teacher_seed: int = field(default=7, metadata={"help": "seed of the teacher (xi, Sigma, xi_hat_T)"})
    init_seed: int = field(default=1, metadata={"help": "seed of the student's initial xi_hat"})
    init_scale: float = field(default=1.0, metadata={
        "type": positive_float, "help": "student xi_hat entries are init-scale (ln d)^(-1/6) N(0, 1)"})
    eps_floor: float = field(default=1e-3, metadata={
        "help": "the discrepancy is measured where eps_g(ODE) > eps-floor * eps_g(0)"})


#: The figure budgets: ``quick`` stops at alpha = 2,000 (about a fifth of the reference), ``paper`` is the reference.
BUDGETS = {"quick": OnlineConfig(alpha_max=2e3, n_record=60, seeds=(0, 1, 2)), "paper": OnlineConfig()}


def record_alphas(d: int, alpha_max: float, n_record: int) -> np.ndarray:
    """Step 0 and ``n_record`` log-spaced steps from 1 to alpha_max d, as alphas t/d on whole steps."""
    steps = np.unique(np.round(np.logspace(0, np.log10(alpha_max * d), n_record)).astype(np.int64))
    return np.concatenate([[0], steps]) / d


def run(config: OnlineConfig, out: str | Path) -> dict:
    """Simulate the example streams and integrate the ODE; writes the run folder ``out``, returns the summary."""
    out = Path(out)
    n_modes = default_n_modes(config.d) if config.P is None else config.P
    teacher = ModeTeacher.random(config.d, config.K, n_modes, seed=config.teacher_seed)
    rng = np.random.default_rng(config.init_seed)
    xi_hat0 = config.init_scale * mode_init_std(config.d) * rng.standard_normal((n_modes, config.d))
    alphas = record_alphas(config.d, config.alpha_max, config.n_record)
    steps = np.round(alphas * config.d).astype(np.int64)
    stored = {**asdict(config), "seeds": list(config.seeds), "out": str(out)}
    stored.update(P=n_modes, n_steps=int(steps[-1]), strengths=teacher.strengths.tolist(),
                  preconditioner_eigenvalues=np.linalg.eigvalsh(online.preconditioner(teacher.mixing.numpy())).tolist())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, stored)

    tic = time.perf_counter()
    sim = online.simulate_online(teacher, xi_hat0, config.eta, steps, list(config.seeds))
    sim_seconds = time.perf_counter() - tic
    q0, m0, t = online.order_parameters(teacher.mixing.numpy() @ xi_hat0, teacher.weight.numpy())
    tic = time.perf_counter()
    ode = online.integrate_order_parameters(q0, m0, t, online.preconditioner(teacher.mixing.numpy()), config.eta,
                                            alphas)
    ode_seconds = time.perf_counter() - tic

    eps_sim = sim["eps_g"]                                                   # (n_seeds, n)
    r_sim = np.diagonal(online.specialization(sim["q"], sim["m"], t), axis1=-2, axis2=-1).mean(0)   # (n, K)
    r_ode = np.diagonal(online.specialization(ode["q"], ode["m"], t), axis1=-2, axis2=-1)          # (n, K)
    rows = []
    for i, alpha in enumerate(alphas):
        row = {"alpha": alpha, "step": int(steps[i]), "eps_g_sim_mean": eps_sim[:, i].mean(),
               "eps_g_sim_std": eps_sim[:, i].std(ddof=1) if len(config.seeds) > 1 else 0.0,
               "eps_g_ode": ode["eps_g"][i]}
        row.update({f"r_sim_{k}": r_sim[i, k] for k in range(config.K)})
        row.update({f"r_ode_{k}": r_ode[i, k] for k in range(config.K)})
        rows.append(row)
    write_metrics(out / METRICS, rows)
    buffer = io.BytesIO()
    np.savez(buffer, alpha=alphas, q_sim=sim["q"], m_sim=sim["m"], q_ode=ode["q"], m_ode=ode["m"], t=t)
    write_atomic(out / "order_parameters.npz", buffer.getvalue())
    summary = {"eps_g_initial": float(ode["eps_g"][0]),
               "eps_g_final_sim_mean": float(eps_sim[:, -1].mean()), "eps_g_final_ode": float(ode["eps_g"][-1]),
               "discrepancy": discrepancy(alphas, eps_sim.mean(0), ode["eps_g"], floor=config.eps_floor),
               "r_diag_final_sim": float(r_sim[-1].mean()), "r_diag_final_ode": float(r_ode[-1].mean()),
               "seconds_simulation": sim_seconds, "seconds_ode": ode_seconds}
    write_json(out / SUMMARY, summary)
    return summary


def run_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: ``cell["config"]`` (a dict) run into ``cell["run_dir"]``."""
    config = OnlineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cell["config"].items()})
    return {"rel_err_median": run(config, cell["run_dir"])["discrepancy"]["rel_err_median"]}


def _finished(run_dir: str | Path) -> bool:
    return all((Path(run_dir) / name).is_file() for name in (CONFIG, METRICS, SUMMARY))


#: ``missing_runs(runs)`` and ``jobs(runs, config)`` of the figure family: the one run ``runs/MAIN_RUN``.
missing_runs, jobs = single_run_family(MAIN_RUN, REQUIRED_RUNS, run_cell, _finished)


def figure_tables(runs: str | Path) -> dict:
    """``metrics``, ``discrepancy`` (its curve), ``floor`` (absolute), ``config`` and ``summary`` of the run."""
    from ensemble_nets.analysis.online import discrepancy_curve

    run = Path(runs) / MAIN_RUN
    metrics, summary = pd.read_csv(run / METRICS), read_json(run / SUMMARY)
    floor = summary["discrepancy"]["eps_floor"] * summary["eps_g_initial"]
    return {"metrics": metrics, "discrepancy": discrepancy_curve(metrics, floor=floor), "floor": floor,
            "config": read_json(run / CONFIG), "summary": summary}
