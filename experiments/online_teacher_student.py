#!/usr/bin/env python
"""On-line teacher-student learning of a mode-decomposed soft committee machine: simulation against ODE theory.

DESIGN.md section 3 (last bullet). The student shares xi and Sigma with the teacher and learns only its
input-side modes xi_hat by on-line SGD (one fresh example per step); the order parameters Q, M follow
the preconditioned Saad-Solla ODEs of ``ensemble_nets.analysis.theory.online``. Examples::

    # default: d = 30, K = 8, P = 3, eta = 5, alpha up to 1e4, 5 example streams (a few CPU minutes)
    python experiments/online_teacher_student.py --out runs/online-d30

    # the reference horizon alpha = 1e5 (about ten times longer)
    python experiments/online_teacher_student.py --alpha-max 1e5 --out runs/online-d30-long

The teacher (``--teacher-seed``) and the student's initial xi_hat (``--init-seed``) are fixed, so the
ODE starts from the exact initial order parameters; the seeds (``--seeds``) draw the example streams.
The run folder holds config.json, metrics.csv (one row per recorded alpha: eps_g of the simulation,
mean and std over seeds, eps_g of the ODE, per-unit overlaps R_ii), order_parameters.npz (Q, M of both,
T) and summary.json (the theory-simulation discrepancy).
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

from ensemble_nets.analysis.theory import online
from ensemble_nets.data.teacher import ModeTeacher, default_n_modes, mode_init_std
from ensemble_nets.training.runs import CONFIG, METRICS, SUMMARY, write_atomic, write_json, write_metrics
from ensemble_nets.cli import positive_float, positive_int


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=positive_int, default=30, help="input dimension (default 30)")
    parser.add_argument("--K", type=positive_int, default=8, help="hidden units of teacher and student (default 8)")
    parser.add_argument("--P", type=positive_int, default=None, help="modes (default int(ln d) = 3)")
    parser.add_argument("--eta", type=positive_float, default=5.0, help="learning rate on xi_hat (default 5)")
    parser.add_argument("--alpha-max", type=positive_float, default=1e4, help="last alpha = t/d (default 1e4)")
    parser.add_argument("--n-record", type=positive_int, default=90, help="log-spaced alphas recorded (default 90)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="example-stream seeds")
    parser.add_argument("--teacher-seed", type=int, default=7, help="seed of the teacher (xi, Sigma, xi_hat_T)")
    parser.add_argument("--init-seed", type=int, default=1, help="seed of the student's initial xi_hat")
    parser.add_argument("--init-scale", type=positive_float, default=1.0,
                        help="student xi_hat entries are init-scale (ln d)^(-1/6) N(0, 1) (default 1)")
    parser.add_argument("--eps-floor", type=float, default=1e-3,
                        help="the discrepancy is measured where eps_g(ODE) > eps-floor * eps_g(0) (default 1e-3)")
    parser.add_argument("--out", type=Path, default=Path("runs/online-d30"), help="run folder")
    return parser.parse_args(argv)


def record_alphas(d: int, alpha_max: float, n_record: int) -> np.ndarray:
    """Step 0 and ``n_record`` log-spaced steps from 1 to alpha_max d, as alphas t/d on whole steps."""
    steps = np.unique(np.round(np.logspace(0, np.log10(alpha_max * d), n_record)).astype(np.int64))
    return np.concatenate([[0], steps]) / d


def discrepancy(alpha: np.ndarray, eps_sim: np.ndarray, eps_ode: np.ndarray, floor: float) -> dict:
    """Relative error |<eps_sim> - eps_ode| / eps_ode over alphas >= 1 where eps_ode > floor * eps_ode(0)."""
    mask = (alpha >= 1.0) & (eps_ode > floor * eps_ode[0])
    rel = np.abs(eps_sim[mask] - eps_ode[mask]) / eps_ode[mask]
    return {"eps_floor": floor, "n_alphas": int(mask.sum()),
            "alpha_range": [float(alpha[mask].min()), float(alpha[mask].max())] if mask.any() else None,
            "rel_err_median": float(np.median(rel)) if mask.any() else None,
            "rel_err_mean": float(rel.mean()) if mask.any() else None,
            "rel_err_max": float(rel.max()) if mask.any() else None}


def main(argv=None) -> dict:
    args = parse_args(argv)
    n_modes = default_n_modes(args.d) if args.P is None else args.P
    teacher = ModeTeacher.random(args.d, args.K, n_modes, seed=args.teacher_seed)
    rng = np.random.default_rng(args.init_seed)
    xi_hat0 = args.init_scale * mode_init_std(args.d) * rng.standard_normal((n_modes, args.d))
    alphas = record_alphas(args.d, args.alpha_max, args.n_record)
    steps = np.round(alphas * args.d).astype(np.int64)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(P=n_modes, n_steps=int(steps[-1]), strengths=teacher.strengths.tolist(),
                  preconditioner_eigenvalues=np.linalg.eigvalsh(online.preconditioner(teacher.mixing.numpy())).tolist())
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / CONFIG, config)

    tic = time.perf_counter()
    sim = online.simulate_online(teacher, xi_hat0, args.eta, steps, args.seeds)
    sim_seconds = time.perf_counter() - tic
    q0, m0, t = online.order_parameters(teacher.mixing.numpy() @ xi_hat0, teacher.weight.numpy())
    tic = time.perf_counter()
    ode = online.integrate_order_parameters(q0, m0, t, online.preconditioner(teacher.mixing.numpy()), args.eta,
                                            alphas)
    ode_seconds = time.perf_counter() - tic

    eps_sim = sim["eps_g"]                                                   # (n_seeds, n)
    r_sim = np.diagonal(online.specialization(sim["q"], sim["m"], t), axis1=-2, axis2=-1).mean(0)   # (n, K)
    r_ode = np.diagonal(online.specialization(ode["q"], ode["m"], t), axis1=-2, axis2=-1)          # (n, K)
    rows = []
    for i, alpha in enumerate(alphas):
        row = {"alpha": alpha, "step": int(steps[i]), "eps_g_sim_mean": eps_sim[:, i].mean(),
               "eps_g_sim_std": eps_sim[:, i].std(ddof=1) if len(args.seeds) > 1 else 0.0,
               "eps_g_ode": ode["eps_g"][i]}
        row.update({f"r_sim_{k}": r_sim[i, k] for k in range(args.K)})
        row.update({f"r_ode_{k}": r_ode[i, k] for k in range(args.K)})
        rows.append(row)
    write_metrics(args.out / METRICS, rows)
    buffer = io.BytesIO()
    np.savez(buffer, alpha=alphas, q_sim=sim["q"], m_sim=sim["m"], q_ode=ode["q"], m_ode=ode["m"], t=t)
    write_atomic(args.out / "order_parameters.npz", buffer.getvalue())
    summary = {"eps_g_initial": float(ode["eps_g"][0]),
               "eps_g_final_sim_mean": float(eps_sim[:, -1].mean()), "eps_g_final_ode": float(ode["eps_g"][-1]),
               "discrepancy": discrepancy(alphas, eps_sim.mean(0), ode["eps_g"], args.eps_floor),
               "r_diag_final_sim": float(r_sim[-1].mean()), "r_diag_final_ode": float(r_ode[-1].mean()),
               "seconds_simulation": sim_seconds, "seconds_ode": ode_seconds}
    write_json(args.out / SUMMARY, summary)
    print(f"wrote {args.out}: discrepancy {summary['discrepancy']}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
