# SPDX-License-Identifier: MIT
"""The noise-nonlinearity phase diagram protocol (DESIGN.md section 4.2; Shi, Pan & Dokmanic 2024).

One cell of the diagram: 10x10 MNIST (the embedded digits average-pooled from
28x28), ``n_train = 2560`` training digits, a depth-8 width-100
:class:`~ensemble_nets.models.DeepMLP` with BatchNorm and LeakyReLU(alpha),
Adam for ``steps`` updates (full batch unless ``batch_size`` is set), then
the load curve of the (clean-label) training set in eval mode and the test
accuracy. The noise knobs, one at a time::

    label_noise   fraction of training labels replaced by uniform random labels (fixed per seed)
    input_noise   std of Gaussian noise added to the (pixel-scale) inputs, fresh every step
    lr            Adam learning rate
    dropout       dropout probability after every block
    batch_size    mini-batch size (None: full batch); the number of updates stays ``steps``
    xi_max        spike-and-slab only: slab-variance init scale, the ensemble's own sampling noise

:func:`run_phase_cell` is the ``fn`` of :func:`ensemble_nets.training.run_grid`: it
takes a cell dict (keys of :data:`PHASE_DEFAULTS`) and a run folder, writes
``separation.csv`` there and returns the cell's numbers. :class:`PhaseGridConfig` is a grid
(alpha x knob levels x seeds), :func:`run_phase_grid` runs it (resumable: finished cells are
skipped) into ``runs/phase/<model>-<knob>/<cell>/`` and writes ``grid.csv``; :func:`grid_frame`
reads a grid folder back. The figure family "phase" needs :data:`REQUIRED_RUNS` and draws every
grid of :data:`GRIDS` found.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis.separation import load_curve_shape, separation
from ensemble_nets.cli import positive_int
from ensemble_nets.data import Dataset, load_dataset
from ensemble_nets.models.deep import DeepMLP
from ensemble_nets.training.evaluate import accuracy
from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.optim import project_
from ensemble_nets.training.runs import write_atomic

__all__ = ["BUDGETS", "COARSE_ALPHAS", "FULL_ALPHAS", "GRIDS", "LEVELS", "PHASE_DEFAULTS", "PHASE_KNOBS",
           "PhaseGridConfig", "REQUIRED_RUNS", "figure_tables", "grid_frame", "jobs", "make_cells", "missing_runs",
           "pooled_mnist", "run_phase_cell", "run_phase_grid"]

#: One cell's settings; a grid cell overrides any of them (and adds its "name").
PHASE_DEFAULTS: dict = {
    "model": "linear", "alpha": 0.0, "label_noise": 0.0, "input_noise": 0.0, "lr": 1e-3, "dropout": 0.0,
    "batch_size": None, "xi_max": 0.0, "pi_init": 0.0, "m_std": 1.0, "steps": 300, "seed": 0,
    "n_train": 2560, "side": 10, "width": 100, "depth": 8, "data_root": None, "threads": 1,
}
#: The noise knobs of the diagram (one varies at a time against alpha).
PHASE_KNOBS = ("label_noise", "input_noise", "lr", "dropout", "batch_size", "xi_max")


@functools.lru_cache(maxsize=2)
def _mnist5k(root: str | None) -> Dataset:
    return load_dataset("mnist5k", root, download=False)


@functools.lru_cache(maxsize=4)
def pooled_mnist(root: str | None, side: int = 10, n_train: int = 2560) -> Dataset:
    """The embedded MNIST digits average-pooled to ``side x side`` pixels (inputs ``(n, side^2)``)."""
    data = _mnist5k(root)
    if not 0 < n_train <= data.n_train:
        raise ValueError(f"n_train={n_train} must lie in (0, {data.n_train}]")

    def pool(x):  # (n, 784) -> (n, side*side)
        return nn.functional.adaptive_avg_pool2d(x.reshape(-1, 1, 28, 28), side).reshape(x.shape[0], -1)

    return replace(data, x_train=pool(data.x_train[:n_train]), y_train=data.y_train[:n_train],
                   x_test=pool(data.x_test), note=f"{data.note}; average-pooled to {side}x{side}")


def _noisy_labels(y: torch.Tensor, fraction: float, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(y.shape, generator=generator) < fraction
    return torch.where(flip, torch.randint(0, n_classes, y.shape, generator=generator), y)


def run_phase_cell(cell: dict, cell_dir: str | Path | None = None) -> dict:
    """Train one cell of the phase diagram and measure its load curve.

    Returns ``test_acc``, ``train_acc`` (clean labels), ``train_loss``, the load curve
    ``log_D`` (input, then the ``depth`` blocks) and its He-Su twin ``log_D_hs``, and the
    :func:`~ensemble_nets.analysis.load_curve_shape` numbers of the hidden blocks
    (``curvature``, ``nonuniformity``, ``shape``, ``drop``). Spike-and-slab cells are
    measured on the mean network (``eval_mode="mean"``) and also report
    ``test_acc_mean_field`` (the noisy mean-field pass).
    """
    unknown = set(cell) - set(PHASE_DEFAULTS) - {"name"}
    if unknown:
        raise ValueError(f"unknown phase-cell keys {sorted(unknown)}; known: {sorted(PHASE_DEFAULTS)}")
    c = {**PHASE_DEFAULTS, **cell}
    torch.set_num_threads(int(c["threads"]))
    data = pooled_mnist(c["data_root"], c["side"], c["n_train"])
    generator = torch.Generator().manual_seed(c["seed"])
    torch.manual_seed(c["seed"])
    y_fit = _noisy_labels(data.y_train, c["label_noise"], data.n_classes, generator)

    layer_kwargs = {}
    if c["model"] == "spike_slab":
        layer_kwargs = {"m_std": c["m_std"], "xi_max": c["xi_max"], "pi_init": c["pi_init"], "eval_mode": "mean"}
    model = DeepMLP(data.n_features, data.n_classes, width=c["width"], depth=c["depth"], alpha=c["alpha"],
                    dropout=c["dropout"], layer=c["model"], **layer_kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"])
    n = data.n_train
    batch = n if c["batch_size"] is None else int(c["batch_size"])
    loss = torch.tensor(math.nan)
    model.train()
    for _ in range(int(c["steps"])):
        idx = torch.randperm(n, generator=generator)[:batch] if batch < n else slice(None)
        x = data.x_train[idx]
        if c["input_noise"] > 0:
            x = x + c["input_noise"] * torch.randn(x.shape, generator=generator)
        loss = nn.functional.cross_entropy(model(x), y_fit[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if c["model"] == "spike_slab":
            project_(model)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"training diverged (loss {loss.item()}) at lr={c['lr']}")

    table = separation(model, (data.x_train, data.y_train))
    if cell_dir is not None:
        write_atomic(Path(cell_dir) / "separation.csv", table.to_csv(index=False).encode())
    model.eval()
    result = {
        "test_acc": accuracy(model, data.x_test, data.y_test)[0],
        "train_acc": accuracy(model, data.x_train, data.y_train)[0],
        "train_loss": loss.item(),
        "log_D": table["log_D"].tolist(),
        "log_D_hs": table["log_D_hs"].tolist(),
        **load_curve_shape(table["D"].to_numpy(), skip_input=True),
    }
    if c["model"] == "spike_slab":
        for layer in model.modules():
            if hasattr(layer, "eval_mode"):
                layer.eval_mode = "mean_field"
        result["test_acc_mean_field"] = accuracy(model, data.x_test, data.y_test)[0]
        xi = torch.cat([m.xi.detach().flatten() for m in model.modules() if hasattr(m, "xi")])
        result["xi_mean_final"] = xi.mean().item()
    return result


#: Knob levels: (coarse default, full).
LEVELS = {
    "label_noise": ([0.0, 0.2, 0.4], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    "input_noise": ([0.0, 0.3, 0.6], [0.0, 0.15, 0.3, 0.45, 0.6, 0.9]),
    "lr": ([1e-4, 1e-3, 1e-2], [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
    "dropout": ([0.0, 0.1, 0.3], [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]),
    "batch_size": ([2560, 256, 32], [2560, 1024, 256, 128, 64, 32]),
    "xi_max": ([0.0, 0.3, 1.0], [0.0, 0.1, 0.3, 0.6, 1.0, 2.0]),
}
COARSE_ALPHAS, FULL_ALPHAS = (0.0, 0.5, 1.0), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class PhaseGridConfig:
    """A grid of cells: alpha x knob levels x seeds. None picks the coarse default (the reference with ``full``)."""

    model: str = field(default="linear", metadata={"choices": ("linear", "spike_slab"),
                                                   "help": "plain layers or spike-and-slab ensemble layers"})
    knob: str | None = field(default=None, metadata={"choices": PHASE_KNOBS,
                                                     "help": "the noise axis (None: label_noise, spike_slab: xi_max)"})
    levels: tuple | None = field(default=None, metadata={"type": float, "many": True,
                                                         "help": "knob levels (None: 3 coarse ones)"})
    alphas: tuple | None = field(default=None, metadata={"type": float, "many": True,
                                                         "help": "LeakyReLU slopes (None: 0 0.5 1)"})
    seeds: int | None = field(default=None, metadata={"type": positive_int,
                                                      "help": "seeds per (alpha, level) (None: 1; 3 with --full)"})
    steps: int | None = field(default=None, metadata={"type": positive_int,
                                                      "help": "Adam updates per cell (None: 150; 1000 with --full)"})
    full: bool = field(default=False, metadata={
        "help": "the reference grid: alpha 0, 0.2, ..., 1; 6 levels; 3 seeds; 1000 steps"})
    data_root: str = field(default="../shared/data/mnist", metadata={"help": "folder with the official test set"})

    def __post_init__(self):
        knob = self.resolved_knob
        if knob == "xi_max" and self.model != "spike_slab":
            raise ValueError("knob xi_max is the ensemble's own noise: it needs model spike_slab (--model spike_slab)")
        if any(not 0 <= a <= 1 for a in self.alphas or ()):
            raise ValueError(f"alphas must lie in [0, 1], got {list(self.alphas)}")

    @property
    def resolved_knob(self) -> str:
        return self.knob or ("xi_max" if self.model == "spike_slab" else "label_noise")

    @property
    def folder(self) -> str:
        """The grid folder, relative to the runs folder: ``phase/<model>-<knob>``."""
        return f"phase/{self.model}-{self.resolved_knob}"


def make_cells(config: PhaseGridConfig) -> list[dict]:
    """One cell per (alpha, level, seed), named ``a<alpha>-<knob><level>-s<seed>``."""
    knob = config.resolved_knob
    coarse, full = LEVELS[knob]
    levels = list(config.levels or (full if config.full else coarse))
    if knob == "batch_size":
        levels = [int(v) for v in levels]
    alphas = config.alphas or (FULL_ALPHAS if config.full else COARSE_ALPHAS)
    seeds = config.seeds if config.seeds is not None else (3 if config.full else 1)
    steps = config.steps if config.steps is not None else (1000 if config.full else 150)
    return [
        {"name": f"a{alpha:g}-{knob}{level:g}-s{seed}", "model": config.model, "alpha": alpha, knob: level,
         "seed": seed, "steps": steps, "data_root": config.data_root}
        for alpha in alphas for level in levels for seed in range(seeds)
    ]


def run_phase_grid(config: PhaseGridConfig, out: str | Path, *, backend: str = "ray", n_workers: int | None = 2,
                   address: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run every cell not finished yet into ``out/<cell>``; write and return ``out/grid.csv`` (one row per cell)."""
    out = Path(out)
    knob = config.resolved_knob
    frame = run_grid(make_cells(config), run_phase_cell, out, backend=backend, n_workers=n_workers,
                     address=address, progress=progress)
    frame = frame.assign(knob=knob, level=frame[knob])
    write_atomic(out / "grid.csv", frame.drop(columns=["error"]).to_csv(index=False).encode())
    return frame


def grid_frame(grid: str | Path) -> pd.DataFrame:
    """One row per finished cell of a grid folder: the cell's settings and results (``log_D`` a list)."""
    rows = []
    for path in sorted(Path(grid).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        rows.append({**summary["cell"], **summary["result"]})
    if not rows:
        raise FileNotFoundError(f"{grid} holds no finished cells (*/summary.json)")
    frame = pd.DataFrame(rows)
    knob = Path(grid).name.split("-", 1)[1]
    return frame.assign(knob=knob, level=frame[knob] if knob in frame else np.nan)


_CMD = "python experiments/phase_diagram.py --data-root ../shared/data/mnist"
#: Grid folders (relative to the runs folder) the family needs -> the commands that make them.
REQUIRED_RUNS = {"phase/linear-label_noise": _CMD}
#: Grids drawn when present: folder -> (command, label).
GRIDS = {
    "phase/linear-label_noise": (_CMD, "label noise"),
    "phase/linear-dropout": (f"{_CMD} --knob dropout --seeds 2", "dropout"),
    "phase/spike_slab-xi_max": (f"{_CMD} --model spike_slab", "spike-and-slab xi_max"),
}
#: The figure budgets (grids to run): ``quick`` the coarse label-noise grid, ``paper`` the three grids of GRIDS.
BUDGETS = {
    "quick": (PhaseGridConfig(),),
    "paper": (PhaseGridConfig(), PhaseGridConfig(knob="dropout", seeds=2), PhaseGridConfig(model="spike_slab")),
}


def missing_runs(runs: str | Path) -> dict[str, str]:
    """Required grid folders without a finished cell."""
    return {folder: cmd for folder, cmd in REQUIRED_RUNS.items()
            if not any((Path(runs) / folder).glob("*/summary.json"))}


def jobs(runs: str | Path, configs) -> list:
    """One job per grid of ``configs`` (cells already finished are skipped by run_grid)."""
    from ensemble_nets.protocols.figures import Job

    return [Job(Path(runs) / config.folder, run_phase_cell, make_cells(config)) for config in configs]


def figure_tables(runs: str | Path) -> dict:
    """``grids`` (folder -> (label, grid frame)), ``cells`` (all grids, columns ``grid`` and ``alpha_label``),
    ``rho`` (Spearman of |curvature| with test accuracy over them) and the spring-block ``curves`` and ``diagram``."""
    from ensemble_nets.analysis.frames import spring_block_frames
    from ensemble_nets.analysis.stats import spearman

    runs = Path(runs)
    grids = {folder: (label, grid_frame(runs / folder)) for folder, (_, label) in GRIDS.items()
             if any((runs / folder).glob("*/summary.json"))}
    if not grids:
        raise FileNotFoundError(f"{runs} holds none of the grids {sorted(GRIDS)}; run: {_CMD}")
    cells = pd.concat([frame.assign(grid=label) for label, frame in grids.values()], ignore_index=True)
    cells["alpha_label"] = "alpha " + cells["alpha"].map("{:g}".format)
    curves, diagram = spring_block_frames()
    return {"grids": grids, "cells": cells, "rho": spearman(cells["curvature"].abs(), cells["test_acc"]),
            "curves": curves, "diagram": diagram}
