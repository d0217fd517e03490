#!/usr/bin/env python
"""How many modes does a network of width N need? MDL against the full-rank network, width by width.

Examples::

    # the default CPU grid (784-N-N-10, N = 25 ... 800, P = 1 ... 32, one seed, 3 epochs)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist

    # the reduced grid of the README (a shared, busy 2-core machine)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist --modes 2 8 32 --epochs 2 --n-test 2000

    # more epochs, seeds and P (a GPU, or a long CPU night)
    python experiments/mode_width_sweep.py --data-root ../shared/data/mnist --widths 25 50 100 200 400 800 1600 \\
        --modes 1 2 3 4 6 8 12 16 24 32 48 64 --seeds 0 1 2 --epochs 20

Cells (width, P or "plain", seed) are dispatched by
:func:`ensemble_nets.training.run_grid`: local Ray workers by default
(``--workers``), a Ray cluster with ``--address``, or in-process with
``--backend serial``. Each trains in its own run folder
``<out>/cells/w<N>-<p<P>|plain>-s<seed>/run`` and is skipped when finished
(an interrupted cell resumes from its checkpoint), so the sweep can be
stopped and restarted. Then, with acc = final test accuracy averaged over
seeds::

    P_min(N) = least P in the grid with acc_MDL(N, P) >= acc_plain(N) - tolerance

is fitted as ``P_min = a + b ln N`` (least squares) and against a saturating
``a + b ln min(N, N*)`` (breakpoint N* searched over the widths); both SSE
and BIC are reported. Writes ``cells.csv``, ``pmin.csv``, ``savings.csv``
and ``fit.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import ensemble_nets as en
from ensemble_nets.data import DATASETS
from ensemble_nets.training.grid import GridError, run_grid
from ensemble_nets.protocols.width_sweep import sweep_data, train_width_cell
from ensemble_nets.training.runs import write_atomic, write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[25, 50, 100, 200, 400, 800], help="hidden widths N")
    p.add_argument("--modes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="numbers of modes P")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--depth", type=int, default=2, help="hidden layers (784-N-...-N-10)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (MDL reference: 0.01)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--tolerance", type=float, default=0.01, help="accuracy tolerance for P_min (absolute)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k")
    p.add_argument("--data-root", default="data")
    p.add_argument("--n-train", type=int, help="use only the first N training examples")
    p.add_argument("--n-test", type=int, help="evaluate on the first N test examples only (quick grids)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("runs/mode-width-sweep"))
    p.add_argument("--backend", choices=("ray", "serial"), default="ray", help="Ray workers, or in-process")
    p.add_argument("--workers", type=int, default=2, help="local Ray worker processes")
    p.add_argument("--address", help="a Ray cluster address (e.g. auto); default: local workers")
    args = p.parse_args(argv)
    for name in ("widths", "modes", "seeds"):
        values = getattr(args, name)
        if any(v < (0 if name == "seeds" else 1) for v in values):
            p.error(f"--{name} must be positive integers, got {values}")
    if args.depth < 1 or args.epochs < 1 or args.tolerance < 0:
        p.error("--depth and --epochs must be >= 1 and --tolerance >= 0")
    return args


def _cell_name(width: int, n_modes: int | None, seed: int) -> str:
    return f"w{width}-{'plain' if n_modes is None else f'p{n_modes}'}-s{seed}"


def grid_cells(args) -> list[dict]:
    """Every (width, P or plain, seed) cell, with what a worker needs to run it."""
    common = {k: getattr(args, k) for k in ("depth", "epochs", "lr", "batch_size", "dataset", "n_train", "n_test",
                                             "device")}
    common["data_root"] = str(args.data_root)
    return [{"name": _cell_name(w, p, s), "width": w, "n_modes": p, "seed": s, **common}
            for w in args.widths for p in [None, *args.modes] for s in args.seeds]


def p_min_table(cells: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per width: the plain accuracy, P_min and the MDL accuracy there (means over seeds)."""
    mean = cells.groupby(["width", "n_modes"], as_index=False)[["test_acc", "n_parameters"]].mean()
    rows = []
    for width, group in mean.groupby("width"):
        plain = group[group.n_modes < 0]
        mdl = group[group.n_modes > 0].sort_values("n_modes")
        target = plain.test_acc.iloc[0] - tolerance
        reached = mdl[mdl.test_acc >= target]
        best = mdl.loc[mdl.test_acc.idxmax()]
        row = {"width": width, "plain_acc": plain.test_acc.iloc[0], "plain_parameters": int(plain.n_parameters.iloc[0]),
               "target_acc": target, "p_min": float("nan"), "mdl_acc_at_p_min": float("nan"),
               "mdl_parameters_at_p_min": float("nan"), "best_mdl_acc": best.test_acc, "best_mdl_p": int(best.n_modes)}
        if len(reached):
            first = reached.iloc[0]
            row.update(p_min=int(first.n_modes), mdl_acc_at_p_min=first.test_acc,
                       mdl_parameters_at_p_min=int(first.n_parameters))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["parameter_fraction"] = table.mdl_parameters_at_p_min / table.plain_parameters
    return table


def fit_log(pmin: pd.DataFrame) -> dict:
    """``P_min = a + b ln N`` against ``a + b ln min(N, N*)``: coefficients, SSE, BIC."""
    ok = pmin.dropna(subset=["p_min"])
    if len(ok) < 3:
        return {"n_widths": len(ok), "note": "fewer than 3 widths reached the plain accuracy: no fit"}
    x, y = np.log(ok.width.to_numpy(float)), ok.p_min.to_numpy(float)
    n = len(x)

    def line(xx):
        b, a = np.polyfit(xx, y, 1)
        return float(a), float(b), float(((y - a - b * xx) ** 2).sum())

    def bic(sse, k):
        return n * math.log(max(sse, 1e-12) / n) + k * math.log(n)

    a, b, sse = line(x)
    best = None
    for cap in x[1:-1]:  # saturation inside the range: at least one width on each side
        a2, b2, sse2 = line(np.minimum(x, cap))
        if best is None or sse2 < best[-1]:
            best = (float(math.exp(cap)), a2, b2, sse2)
    result = {"n_widths": n, "log": {"a": a, "b": b, "sse": sse, "bic": bic(sse, 2)}}
    if best is not None:
        result["saturating"] = {"n_star": best[0], "a": best[1], "b": best[2], "sse": best[3], "bic": bic(best[3], 3)}
        result["preferred"] = "saturating" if result["saturating"]["bic"] < result["log"]["bic"] else "log"
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        data = sweep_data(args.dataset, str(args.data_root), args.n_train, args.n_test)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"mode_width_sweep.py: error: {err}")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        frame = run_grid(grid_cells(args), train_width_cell, args.out / "cells", backend=args.backend,
                         n_workers=args.workers, address=args.address)
    except GridError as err:
        sys.exit(f"mode_width_sweep.py: error: {err}")
    cells = frame[[c for c in ("width", "n_modes", "model", "seed", "n_parameters", "test_acc", "best_test_acc",
                               "epochs", "status") if c in frame.columns]]
    pmin = p_min_table(cells, args.tolerance)
    savings = pmin[["width", "plain_parameters", "p_min", "mdl_parameters_at_p_min", "parameter_fraction",
                    "plain_acc", "mdl_acc_at_p_min"]]
    fit = fit_log(pmin)
    fit.update(tolerance=args.tolerance, epochs=args.epochs, seeds=args.seeds, modes=args.modes, widths=args.widths,
               dataset=data.name, n_train=data.n_train, n_test=data.n_test)
    write_atomic(args.out / "cells.csv", cells.to_csv(index=False).encode())
    write_atomic(args.out / "pmin.csv", pmin.to_csv(index=False).encode())
    write_atomic(args.out / "savings.csv", savings.to_csv(index=False).encode())
    write_json(args.out / "fit.json", fit)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pmin.to_string(index=False))
    print(fit)
    return fit


if __name__ == "__main__":
    main()
