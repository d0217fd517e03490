# SPDX-License-Identifier: MIT
"""Gated deep linear networks on the routing task: simulations against the neural-race reduction.

DESIGN.md 4.3 (Saxe, Sodhani & Lewallen, ICML 2022). :func:`train_gdln` is full-batch gradient
descent (SGD, lr 0.02, 500 epochs); :func:`run` writes a run folder::

    config.json    resolved options
    metrics.csv    one row per (part, init, gain, K, seed, recorded epoch): train loss, zero-shot loss
                   and relative error, per-mode b_in, b_h, b_out, p (projections on the task's
                   singular vectors, ensemble_nets.analysis.theory.gdln.routing_modes)
    theory.csv     the reduced ODE on the same epochs (aligned init, and the one-scalar fit to random init)
    rsa.json       RSA matrices of the encoder and hidden representations at the end, per init gain
    summary.json   relative errors theory vs simulation, the init-scale table, the race fit

Parts: "dynamics" trains from aligned and from random orthogonal init (``gain``) for each
seed; the ODE for aligned init starts at the aligned scalars (no free parameter); for
random init the ODE starts balanced (b_in = b_out = b_h / sqrt(M)) at one effective mode strength p0,
fitted with the closed form to the simulated time-to-half of the top mode (one scalar for
all modes, seeds and K: random weights start nearly unaligned with the task modes, so the
effective strength is far below gain^3). "sweep" trains random init at each of ``gains``;
"race" trains each K of ``race_k`` (aligned and random) and fits the hidden mode's
time-to-half against the theory t_half ~ 1/K. The fits are in :mod:`ensemble_nets.analysis.gated`.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ensemble_nets.analysis.gated import (crossing_time, fit_balanced_p0, init_sweep_table, race_fits, theory_rows,
                                          theory_vs_simulation, zero_shot_error)
from ensemble_nets.analysis.theory.gdln import (fixed_point, integrate_routing_ode, ode_time_per_epoch,
                                                representation_similarity, routing_modes)
from ensemble_nets.cli import positive_float, positive_int
from ensemble_nets.data.routing import RoutingTask, routing_batch
from ensemble_nets.layers.gated import GatedDeepLinearNetwork, gdln_loss
from ensemble_nets.models.routing import hidden_representations, routing_network
from ensemble_nets.protocols.figures import single_run_family
from ensemble_nets.training.runs import read_json, write_json, write_metrics

__all__ = ["BUDGETS", "GatedConfig", "MAIN_RUN", "REQUIRED_RUNS", "figure_tables", "jobs", "missing_runs", "run",
           "run_cell", "simulate", "train_gdln"]

MAIN_RUN = "gated-routing"
#: Run folders (relative to the runs folder) the figures need -> the command that makes them.
REQUIRED_RUNS = {MAIN_RUN: f"python experiments/gated_routing.py --out runs/{MAIN_RUN}"}


@dataclass(frozen=True)
class GatedConfig:
    """The routing experiment's knobs; the defaults are the reference (a few CPU minutes)."""

    domains: int = field(default=7, metadata={"type": positive_int, "help": "M, input and output domains"})
    trained: int = field(default=4, metadata={"type": positive_int,
                                              "help": "K, output domains trained per input domain"})
    hidden: int = field(default=64, metadata={"type": positive_int, "help": "hidden width of encoder and shared layer"})
    lr: float = field(default=0.02, metadata={"type": positive_float, "help": "full-batch SGD learning rate"})
    epochs: int = field(default=500, metadata={"type": positive_int, "help": "epochs (= full-batch steps)"})
    gain: float = field(default=0.2, metadata={"type": positive_float, "help": "init scale of dynamics and race"})
    seeds: int = field(default=3, metadata={"type": positive_int, "help": "seeds per setting"})
    gains: tuple = field(default=(0.2, 0.5, 1.0, 1.5, 2.0, 2.5), metadata={"type": positive_float,
                                                                           "help": "init scales of the sweep"})
    race_k: tuple = field(default=(1, 2, 3, 4, 5, 6, 7), metadata={"type": positive_int, "help": "K of the race"})
    race_epochs: int = field(default=400, metadata={"type": positive_int, "help": "epochs of each race run"})
    record_every: int = field(default=5, metadata={"type": positive_int, "help": "record every this many epochs"})
    threads: int = field(default=1, metadata={"type": positive_int,
                                              "help": "torch CPU threads (small matrices: 1 is fastest)"})


#: The figure budgets: ``quick`` takes well under a minute, ``paper`` is the reference.
BUDGETS = {"quick": GatedConfig(epochs=300, seeds=2, gains=(0.2, 1.0, 2.5), race_k=(1, 2, 4, 7), race_epochs=300),
           "paper": GatedConfig()}


def train_gdln(net: GatedDeepLinearNetwork, batch, *, lr: float = 0.02, n_epochs: int = 500,
               record: Callable[[int, GatedDeepLinearNetwork], dict] | None = None,
               record_every: int = 1) -> list[dict]:
    """Plain full-batch SGD ``W <- W - lr dL/dW`` on :func:`~ensemble_nets.layers.gated.gdln_loss`.

    ``batch`` has ``inputs``, ``targets`` and ``node_gates`` (e.g. a
    :class:`~ensemble_nets.data.routing.RoutingBatch`). Returns one row per
    recorded epoch (0 = before training): ``epoch``, ``train_loss`` and what
    ``record(epoch, net)`` adds. Raises ``FloatingPointError`` if the loss diverges.
    """
    if not lr > 0 or n_epochs < 0 or record_every < 1:
        raise ValueError(f"need lr > 0, n_epochs >= 0, record_every >= 1; got {lr}, {n_epochs}, {record_every}")
    rows = []
    for epoch in range(n_epochs + 1):
        net.zero_grad(set_to_none=True)
        loss = gdln_loss(net(batch.inputs, batch.node_gates), batch.targets, batch.node_gates)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}; lower lr={lr} or the init gain")
        if epoch % record_every == 0 or epoch == n_epochs:
            row = {"epoch": epoch, "train_loss": loss.item()}
            if record is not None:
                row.update(record(epoch, net))
            rows.append(row)
        if epoch == n_epochs:
            break
        loss.backward()
        with torch.no_grad():
            for w in net.parameters():
                w -= lr * w.grad
    return rows


def simulate(task: RoutingTask, init: str, gain: float, seed: int, config: GatedConfig, n_epochs: int,
             tags: dict) -> tuple[list[dict], GatedDeepLinearNetwork]:
    """Train one network; rows with the tags, losses and per-mode projections (none if it diverged)."""
    batch = routing_batch(task, "train", dtype=torch.float64)
    test = routing_batch(task, "test", dtype=torch.float64) if task.held_out_pairs() else None
    net = routing_network(task, hidden=config.hidden, gain=gain, init=init, seed=seed, dtype=torch.float64)
    per_epoch = ode_time_per_epoch(config.lr, n_domains=task.n_domains, n_items=task.n_items)

    def record(epoch, model):
        row = {**tags, "ode_time": epoch * per_epoch}
        row["zeroshot_loss"], row["zeroshot_rel"] = zero_shot_error(model, test) if test else (math.nan,) * 2
        for key, values in routing_modes(model, task).items():
            row.update({f"{key}_{i}": v for i, v in enumerate(values.tolist())})
        return row

    try:
        rows = train_gdln(net, batch, lr=config.lr, n_epochs=n_epochs, record=record,
                          record_every=config.record_every)
    except FloatingPointError as err:
        print(f"  {tags}: diverged ({err})", file=sys.stderr)
        return [], net
    return [{**{k: r[k] for k in tags}, "epoch": r["epoch"], **{k: v for k, v in r.items() if k not in tags}}
            for r in rows], net


def run(config: GatedConfig, out: str | Path) -> dict:
    """Dynamics, init-scale sweep with RSA, and the race over K; writes the run folder ``out``."""
    out = Path(out)
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"out": str(out), **asdict(config)})
    task = RoutingTask(n_domains=config.domains, n_trained=config.trained)
    _, s, _ = task.svd()
    m_dom, k = task.n_domains, task.n_trained
    per_epoch = ode_time_per_epoch(config.lr, n_domains=m_dom, n_items=task.n_items)
    n_modes = s.shape[0]
    rows, theory, summary = [], [], {"ode_time_per_epoch": per_epoch, "singular_values": s.tolist(),
                                    "fixed_point_b_h": fixed_point(s, n_domains=m_dom)[:, 1].tolist()}

    # dynamics: aligned and random init against the ODE
    dyn = {}
    for init in ("aligned", "orthogonal"):
        for seed in range(config.seeds):
            r, _ = simulate(task, init, config.gain, seed, config, config.epochs,
                            {"part": "dynamics", "init": init, "gain": config.gain, "n_trained": k, "seed": seed})
            dyn.setdefault(init, []).extend(r)
            rows += r
        print(f"dynamics {init}: final train loss {dyn[init][-1]['train_loss']:.3g}", flush=True)
    epochs = sorted({r["epoch"] for r in dyn["aligned"]})
    times = torch.tensor(epochs, dtype=torch.float64) * per_epoch
    theory += theory_rows(task, torch.full((3,), config.gain), times, "aligned", epochs)
    t_half = []
    for seed in range(config.seeds):
        sim = [r for r in dyn["orthogonal"] if r["seed"] == seed]
        t_half.append(crossing_time(torch.tensor([r["ode_time"] for r in sim]),
                                    torch.tensor([r["p_0"] for r in sim]), float(s[0]) / 2))
    p0 = fit_balanced_p0(sum(t_half) / len(t_half), float(s[0]), n_domains=m_dom, n_trained=k)
    b_h0 = (m_dom * p0) ** (1 / 3)
    b0_random = torch.tensor([b_h0 / math.sqrt(m_dom), b_h0, b_h0 / math.sqrt(m_dom)])
    theory += theory_rows(task, b0_random, times, "random_fit", epochs)
    summary["random_init_fit"] = {"p0": p0, "b_h0": b_h0, "b_in0": b_h0 / math.sqrt(m_dom),
                                  "t_half_top_mode_sim": t_half}
    aligned_ode = [r for r in theory if r["theory"] == "aligned"]
    summary["theory_vs_sim"] = {
        "aligned": theory_vs_simulation(dyn["aligned"], aligned_ode, n_modes=n_modes),
        "random": theory_vs_simulation(dyn["orthogonal"], [r for r in theory if r["theory"] == "random_fit"],
                                       n_modes=n_modes),
        "random_vs_aligned_ode_no_fit": theory_vs_simulation(dyn["orthogonal"], aligned_ode, n_modes=n_modes)}
    print("theory vs sim:", summary["theory_vs_sim"], flush=True)

    # init-scale sweep and RSA
    finals, rsa = {}, {}
    for gain in config.gains:
        finals[gain] = []
        for seed in range(config.seeds):
            r, net = simulate(task, "orthogonal", gain, seed, config, config.epochs,
                              {"part": "sweep", "init": "orthogonal", "gain": gain, "n_trained": k, "seed": seed})
            rows += r
            finals[gain].append(r[-1] if r else None)
            if seed == 0:
                enc = torch.cat([net.weight(f"enc{m}").detach().T for m in range(m_dom)]).double()
                rsa[str(gain)] = {"enc": representation_similarity(enc).tolist(),
                                  "hid": representation_similarity(hidden_representations(net, task)).tolist()}
        print(f"sweep gain {gain}: {init_sweep_table({gain: finals[gain]})[0]}", flush=True)
    summary["init_sweep"] = init_sweep_table(finals)
    write_json(out / "rsa.json", {"order": "row = domain * 4 + item", "gains": rsa})

    # the race: time-to-half of the hidden top mode against K
    race = []
    for kk in config.race_k:
        task_k = RoutingTask(n_domains=m_dom, n_trained=kk)
        target = float(fixed_point(s, n_domains=m_dom)[0, 1]) / 2
        for init, seeds in (("aligned", [0]), ("orthogonal", range(config.seeds))):
            for seed in seeds:
                r, _ = simulate(task_k, init, config.gain, seed, config, config.race_epochs,
                                {"part": "race", "init": init, "gain": config.gain, "n_trained": kk, "seed": seed})
                rows += r
                if not r:  # diverged: reported on stderr by simulate
                    continue
                t_sim = crossing_time(torch.tensor([x["ode_time"] for x in r]),
                                      torch.tensor([x["b_h_0"] for x in r]), target)
                b0 = torch.full((3,), config.gain) if init == "aligned" else b0_random
                grid = torch.linspace(0, config.race_epochs * per_epoch, 2001, dtype=torch.float64)
                ode = integrate_routing_ode(s[:1], b0, grid, n_domains=m_dom, n_trained=kk)
                race.append({"n_trained": kk, "init": init, "seed": seed, "t_half_sim": t_sim,
                             "t_half_theory": crossing_time(grid, ode[:, 0, 1], target)})
        print(f"race K={kk}: {race[-1]}", flush=True)
    fits = race_fits(race)
    summary["race"] = {"target": "b_h of the top mode reaches half of (M s_1)^(1/3)", "fits": fits, "runs": race}
    print("race fits:", fits, flush=True)

    write_metrics(out / "metrics.csv", rows)
    write_metrics(out / "theory.csv", theory)
    write_json(out / "summary.json", summary)
    return summary


def run_cell(cell: dict, cell_dir: Path) -> dict:
    """A :func:`~ensemble_nets.training.run_grid` cell: ``cell["config"]`` (a dict) run into ``cell["run_dir"]``."""
    config = GatedConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cell["config"].items()})
    summary = run(config, cell["run_dir"])
    return {"median_rel_err_aligned": summary["theory_vs_sim"]["aligned"]["median_rel_err"]}


def _finished(run_dir: str | Path) -> bool:
    return all((Path(run_dir) / name).is_file() for name in ("summary.json", "metrics.csv", "theory.csv", "rsa.json"))


#: ``missing_runs(runs)`` and ``jobs(runs, config)`` of the figure family: the one run ``runs/MAIN_RUN``.
missing_runs, jobs = single_run_family(MAIN_RUN, REQUIRED_RUNS, run_cell, _finished)


def figure_tables(runs: str | Path) -> dict:
    """``metrics``, ``theory``, ``singular_values``, ``init_sweep``, ``rsa`` (gain -> matrices), ``race``, ``fits``."""
    run = Path(runs) / MAIN_RUN
    summary = read_json(run / "summary.json")
    return {"metrics": pd.read_csv(run / "metrics.csv"), "theory": pd.read_csv(run / "theory.csv"),
            "singular_values": summary["singular_values"], "init_sweep": pd.DataFrame(summary["init_sweep"]),
            "rsa": json.loads((run / "rsa.json").read_text())["gains"], "race": pd.DataFrame(summary["race"]["runs"]),
            "fits": summary["race"]["fits"]}
