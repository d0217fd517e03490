#!/usr/bin/env python
"""Gated deep linear networks on the routing task: simulations against the neural-race reduction.

DESIGN.md 4.3 (Saxe, Sodhani & Lewallen, ICML 2022). Examples::

    # the default (a few CPU minutes): dynamics, init-scale sweep, RSA, race over K
    python experiments/gated_routing.py --out runs/gated-routing

    # quicker look
    python experiments/gated_routing.py --out runs/gated-quick --seeds 1 --gains 0.2 2.5 --race-k 2 4

The run folder holds
    config.json    resolved options
    metrics.csv    one row per (part, init, gain, K, seed, recorded epoch): train loss, zero-shot loss
                   and relative error, per-mode b_in, b_h, b_out, p (projections on the task's
                   singular vectors, ensemble_nets.analysis.theory.gdln.routing_modes)
    theory.csv     the reduced ODE on the same epochs (aligned init, and the one-scalar fit to random init)
    rsa.json       RSA matrices of the encoder and hidden representations at the end, per init gain
    summary.json   relative errors theory vs simulation, the init-scale table, the race fit

Parts: "dynamics" trains from aligned and from random orthogonal init (gain 0.2) for each
seed; the ODE for aligned init starts at the aligned scalars (no free parameter); for
random init the ODE starts balanced (b_in = b_out = b_h / sqrt(M)) at one effective mode strength p0,
fitted with the closed form to the simulated time-to-half of the top mode (one scalar for
all modes, seeds and K: random weights start nearly unaligned with the task modes, so the
effective strength is far below gain^3). "sweep" trains
random init at each gain; "race" trains each K (aligned and random) and fits the hidden
mode's time-to-half against the theory t_half ~ 1/K.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ensemble_nets.analysis.theory.gdln import (balanced_time, fixed_point, integrate_routing_ode, ode_time_per_epoch,
                                               representation_similarity, routing_modes)
from ensemble_nets.data.routing import RoutingTask, routing_batch
from ensemble_nets.layers.gated import gdln_loss
from ensemble_nets.models.routing import hidden_representations, routing_network
from ensemble_nets.protocols.gated import train_gdln
from ensemble_nets.training.runs import write_json, write_metrics


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/gated-routing"), help="run folder to write")
    p.add_argument("--domains", type=int, default=7, help="M, input and output domains")
    p.add_argument("--trained", type=int, default=4, help="K, output domains trained per input domain")
    p.add_argument("--hidden", type=int, default=64, help="hidden width of the encoder and shared layer")
    p.add_argument("--lr", type=float, default=0.02, help="full-batch SGD learning rate")
    p.add_argument("--epochs", type=int, default=500, help="epochs (= full-batch steps)")
    p.add_argument("--gain", type=float, default=0.2, help="init scale of the dynamics and race parts")
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting")
    p.add_argument("--gains", type=float, nargs="+", default=[0.2, 0.5, 1.0, 1.5, 2.0, 2.5],
                   help="init scales of the sweep")
    p.add_argument("--race-k", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7], help="K values of the race")
    p.add_argument("--race-epochs", type=int, default=400, help="epochs of each race run (K = 1 is slowest)")
    p.add_argument("--record-every", type=int, default=5, help="record every this many epochs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small matrices: 1 is fastest)")
    return p


def _relative_zero_shot(net, test) -> tuple[float, float]:
    with torch.no_grad():
        out = net(test.inputs, test.node_gates)
        loss = gdln_loss(out, test.targets, test.node_gates).item()
        ref = sum((test.node_gates[v][:, None] * test.targets[v]).pow(2).sum() for v in out).item()
    return loss, loss * out[next(iter(out))].shape[0] / ref


def _simulate(task, init, gain, seed, args, n_epochs, tags):
    """Train one network; rows with the tags, losses and per-mode projections."""
    batch = routing_batch(task, "train", dtype=torch.float64)
    test = routing_batch(task, "test", dtype=torch.float64) if task.held_out_pairs() else None
    net = routing_network(task, hidden=args.hidden, gain=gain, init=init, seed=seed, dtype=torch.float64)
    per_epoch = ode_time_per_epoch(args.lr, task.n_domains, task.n_items)

    def record(epoch, model):
        row = {**tags, "ode_time": epoch * per_epoch}
        row["zeroshot_loss"], row["zeroshot_rel"] = _relative_zero_shot(model, test) if test else (math.nan,) * 2
        for key, values in routing_modes(model, task).items():
            row.update({f"{key}_{i}": v for i, v in enumerate(values.tolist())})
        return row

    try:
        rows = train_gdln(net, batch, lr=args.lr, n_epochs=n_epochs, record=record, record_every=args.record_every)
    except FloatingPointError as err:
        print(f"  {tags}: diverged ({err})", file=sys.stderr)
        return [], net
    return [{**{k: r[k] for k in tags}, "epoch": r["epoch"], **{k: v for k, v in r.items() if k not in tags}}
            for r in rows], net


def _crossing(times: torch.Tensor, values: torch.Tensor, level: float) -> float:
    """First time ``values`` reaches ``level`` (linear interpolation), nan if never."""
    above = (values >= level).nonzero()
    if len(above) == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(times[0])
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return float(t0 + (level - v0) / (v1 - v0) * (t1 - t0))


def _fit_p0(t_half: float, s: float, m_dom: int, k: int) -> float:
    """Balanced initial mode strength p0 whose closed-form time to p = s/2 equals ``t_half`` (bisection in log)."""
    lo, hi = math.log(1e-12), math.log(s / 2 * 0.999)
    for _ in range(200):
        mid = (lo + hi) / 2
        t = float(balanced_time(s / 2, s, math.exp(mid), n_domains=m_dom, n_trained=k))
        lo, hi = (mid, hi) if t > t_half else (lo, mid)
    return math.exp((lo + hi) / 2)


def _theory_rows(task, b0, times, label, epochs):
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


def _errors(sim_rows, theory_rows, n_modes):
    """Errors of the hidden scalars b_h, simulation against ODE, over all recorded epochs, modes and seeds.

    ``mean/max_err_over_final``: |b_h^sim(t) - b_h^ode(t)| / b_h^ode(end) (scale-free, robust on plateaus);
    ``median_rel_err``: |b_h^sim(t) - b_h^ode(t)| / b_h^ode(t); ``final_rel_err``: the same at the last epoch.
    """
    th = {r["epoch"]: r for r in theory_rows}
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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.record_every < 1:
        raise SystemExit("--seeds, --epochs and --record-every must be positive")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "config.json", {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    task = RoutingTask(n_domains=args.domains, n_trained=args.trained)
    _, s, _ = task.svd()
    m_dom, k = task.n_domains, task.n_trained
    per_epoch = ode_time_per_epoch(args.lr, m_dom, task.n_items)
    n_modes = s.shape[0]
    rows, theory, summary = [], [], {"ode_time_per_epoch": per_epoch, "singular_values": s.tolist(),
                                    "fixed_point_b_h": fixed_point(s, m_dom)[:, 1].tolist()}

    # dynamics: aligned and random init against the ODE
    dyn = {}
    for init in ("aligned", "orthogonal"):
        for seed in range(args.seeds):
            r, _ = _simulate(task, init, args.gain, seed, args, args.epochs,
                             {"part": "dynamics", "init": init, "gain": args.gain, "n_trained": k, "seed": seed})
            dyn.setdefault(init, []).extend(r)
            rows += r
        print(f"dynamics {init}: final train loss {dyn[init][-1]['train_loss']:.3g}", flush=True)
    epochs = sorted({r["epoch"] for r in dyn["aligned"]})
    times = torch.tensor(epochs, dtype=torch.float64) * per_epoch
    theory += _theory_rows(task, torch.full((3,), args.gain), times, "aligned", epochs)
    t_half = []
    for seed in range(args.seeds):
        sim = [r for r in dyn["orthogonal"] if r["seed"] == seed]
        t_half.append(_crossing(torch.tensor([r["ode_time"] for r in sim]), torch.tensor([r["p_0"] for r in sim]),
                                float(s[0]) / 2))
    p0 = _fit_p0(sum(t_half) / len(t_half), float(s[0]), m_dom, k)
    b_h0 = (m_dom * p0) ** (1 / 3)
    b0_random = torch.tensor([b_h0 / math.sqrt(m_dom), b_h0, b_h0 / math.sqrt(m_dom)])
    theory += _theory_rows(task, b0_random, times, "random_fit", epochs)
    summary["random_init_fit"] = {"p0": p0, "b_h0": b_h0, "b_in0": b_h0 / math.sqrt(m_dom),
                                  "t_half_top_mode_sim": t_half}
    summary["theory_vs_sim"] = {
        "aligned": _errors(dyn["aligned"], [r for r in theory if r["theory"] == "aligned"], n_modes),
        "random": _errors(dyn["orthogonal"], [r for r in theory if r["theory"] == "random_fit"], n_modes),
        "random_vs_aligned_ode_no_fit": _errors(dyn["orthogonal"], [r for r in theory if r["theory"] == "aligned"],
                                                n_modes)}
    print("theory vs sim:", summary["theory_vs_sim"], flush=True)

    # init-scale sweep and RSA
    table, rsa = [], {}
    for gain in args.gains:
        finals = []
        for seed in range(args.seeds):
            r, net = _simulate(task, "orthogonal", gain, seed, args, args.epochs,
                               {"part": "sweep", "init": "orthogonal", "gain": gain, "n_trained": k, "seed": seed})
            rows += r
            finals.append(r[-1] if r else None)
            if seed == 0:
                enc = torch.cat([net.weight(f"enc{m}").detach().T for m in range(m_dom)]).double()
                rsa[str(gain)] = {"enc": representation_similarity(enc).tolist(),
                                  "hid": representation_similarity(hidden_representations(net, task)).tolist()}
        ok = [f for f in finals if f is not None]
        entry = {"gain": gain, "n_diverged": len(finals) - len(ok)}
        for key in ("train_loss", "zeroshot_loss", "zeroshot_rel"):
            vals = torch.tensor([f[key] for f in ok], dtype=torch.float64)
            entry[key] = float(vals.mean()) if ok else math.nan
            entry[key + "_std"] = float(vals.std()) if len(ok) > 1 else 0.0
        table.append(entry)
        print(f"sweep gain {gain}: {entry}", flush=True)
    summary["init_sweep"] = table
    write_json(args.out / "rsa.json", {"order": "row = domain * 4 + item", "gains": rsa})

    # the race: time-to-half of the hidden top mode against K
    race = []
    for kk in args.race_k:
        task_k = RoutingTask(n_domains=m_dom, n_trained=kk)
        target = float(fixed_point(s, m_dom)[0, 1]) / 2
        for init, seeds in (("aligned", [0]), ("orthogonal", range(args.seeds))):
            for seed in seeds:
                r, _ = _simulate(task_k, init, args.gain, seed, args, args.race_epochs,
                                 {"part": "race", "init": init, "gain": args.gain, "n_trained": kk, "seed": seed})
                rows += r
                if not r:  # diverged: reported on stderr by _simulate
                    continue
                t_sim = _crossing(torch.tensor([x["ode_time"] for x in r]), torch.tensor([x["b_h_0"] for x in r]),
                                  target)
                b0 = torch.full((3,), args.gain) if init == "aligned" else b0_random
                grid = torch.linspace(0, args.race_epochs * per_epoch, 2001, dtype=torch.float64)
                ode = integrate_routing_ode(s[:1], b0, grid, n_domains=m_dom, n_trained=kk)
                race.append({"n_trained": kk, "init": init, "seed": seed, "t_half_sim": t_sim,
                             "t_half_theory": _crossing(grid, ode[:, 0, 1], target)})
        print(f"race K={kk}: {race[-1]}", flush=True)
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
    summary["race"] = {"target": "b_h of the top mode reaches half of (M s_1)^(1/3)", "fits": fits, "runs": race}
    print("race fits:", fits, flush=True)

    write_metrics(args.out / "metrics.csv", rows)
    write_metrics(args.out / "theory.csv", theory)
    write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
