# SPDX-License-Identifier: MIT
"""The noise-nonlinearity phase diagram protocol (DESIGN.md section 4.2; Shi, Pan & Dokmanic 2024).

One cell of the diagram, as the authors' code (``DaDaCheng/DNN_Spring``, ``src/main.py`` and the
``bash/test_pd_*.sh`` grids) runs it: 10x10 MNIST (here the embedded digits average-pooled from
28x28), ``n_train = 2560`` training digits, the reference :class:`~ensemble_nets.models.deep.PhaseMLP`
(input BatchNorm, 7 blocks ``[Linear, BatchNorm, LeakyReLU(alpha), Dropout(p)]``, readout), Adam
(lr 1e-3), full batch, 100 epochs (the reference trains 200 on the lr axis, cut here to 100
for cost, and the batch-size axis 100, cut here to 50); then the separation of the clean training
set at the input after the BatchNorm, after every block and at the logits (eval mode), and the
test accuracy. The noise knobs, one at a time against alpha::

    data_noise        EVERY step a fraction of the batch labels is redrawn uniformly at random AND
                      Gaussian noise x + N(0, 1) * std(X) * noise is added to the inputs (the paper's knob)
    label_corruption  a fraction of the training labels replaced once per seed and then fitted
                      (memorization; the old ``label_noise`` knob, renamed)
    lr                Adam learning rate
    dropout           dropout probability p in every block
    batch_size        mini-batch size (epochs fixed, so smaller batches take more steps)
    xi_max            spike-and-slab ensembles only: slab-variance init scale (the ensemble's own noise)

Plain cells are trained in stacks (:class:`~ensemble_nets.models.deep.StackedPhaseMLP`): the cells
of a grid that share a batch size and a training length train as one vectorized model, each with
its own generator (batch order, data noise, dropout masks) and its own initialization
(``torch.manual_seed(seed)``), so a cell's result does not depend on the stack it ran in (up to
float rounding). Spike-and-slab cells (and the earlier ``arch="deep"`` network) train one at a time.

:func:`run_phase_cell` trains one cell; :func:`run_phase_cells` a list of stackable cells;
:class:`PhaseGridConfig` is a grid (alpha x knob levels x seeds) and :func:`run_phase_grid` runs it
(resumable: finished cells are skipped) into ``runs/<preset folder>/<model>-<knob>/<cell>/`` and
writes ``grid.csv``; :func:`grid_frame` reads a grid folder back. The figure family "phase" needs
:data:`REQUIRED_RUNS` and draws every grid of :data:`GRIDS` found.
"""
from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis.separation import load_curve_shape, reference_curvature, separation
from ensemble_nets.cli import positive_int
from ensemble_nets.data import Dataset, load_dataset
from ensemble_nets.models.deep import DeepMLP, PhaseMLP, StackedPhaseMLP
from ensemble_nets.training.evaluate import accuracy
from ensemble_nets.training.grid import run_grid
from ensemble_nets.training.optim import project_
from ensemble_nets.training.runs import SUMMARY, write_atomic, write_json
from ensemble_nets.training.stacked_adam import ParameterStack, StackedAdam

__all__ = ["ALPHAS", "BUDGETS", "GRIDS", "LEVELS", "NOISE_DIRECTION", "PHASE_DEFAULTS", "PHASE_KNOBS",
           "PRESETS", "PhaseGridConfig", "REQUIRED_RUNS", "check_level", "data_noise_batch", "figure_tables",
           "grid_frame", "group_cells", "jobs", "make_cells", "missing_runs", "pooled_mnist", "run_phase_cell",
           "run_phase_cells", "run_phase_grid"]

#: One cell's settings; a grid cell overrides any of them (and adds its "name").
PHASE_DEFAULTS: dict = {
    "model": "linear",           # "linear" (plain) or "spike_slab" (ensemble layers)
    "arch": "phase",             # "phase": the reference PhaseMLP; "deep": this project's earlier DeepMLP
    "alpha": 0.0,                # LeakyReLU slope: 0 ReLU, 1 linear
    "data_noise": 0.0,           # per-step label redraw fraction = input-noise scale (the paper's data noise)
    "label_corruption": 0.0,     # fraction of training labels corrupted once (memorization)
    "lr": 1e-3,                  # Adam learning rate
    "dropout": 0.0,              # dropout p in every block
    "batch_size": None,          # None: full batch (n_train), as the reference outside the batch-size axis
    "xi_max": 0.0, "pi_init": 0.0, "m_std": 0.1,   # spike-and-slab init; xi_max: the ensemble-noise knob; m_std ~ nn.Linear
    "epochs": 100,               # reference: 100 (lr axis 200; the paper grids: lr 100, batch size 50)
    "steps": None,               # Adam updates; None: epochs * (n_train // batch_size)
    "seed": 0,
    "n_train": 2560, "side": 10, "width": 100, "depth": None,   # depth None: 7 (phase) / 8 (deep)
    "data_root": None, "threads": 1,
}
#: The noise knobs of the diagram (one varies at a time against alpha).
PHASE_KNOBS = ("data_noise", "label_corruption", "lr", "dropout", "batch_size", "xi_max")
#: +1: a larger level is more noise; -1: a smaller one is (batch size).
NOISE_DIRECTION = {"data_noise": 1, "label_corruption": 1, "lr": 1, "dropout": 1, "batch_size": -1, "xi_max": 1}
_ARCHS, _MODELS = ("phase", "deep"), ("linear", "spike_slab")


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


def check_level(knob: str, level) -> None:
    """ValueError unless ``knob`` is a phase knob and ``level`` one of its allowed values."""
    if knob not in PHASE_KNOBS:
        raise ValueError(f"unknown phase knob {knob!r}; allowed: {', '.join(PHASE_KNOBS)}")
    ranges = {"data_noise": "a fraction in [0, 1]", "label_corruption": "a fraction in [0, 1]",
              "lr": "a learning rate > 0", "dropout": "a probability in [0, 1)",
              "batch_size": "an integer batch size >= 2 (BatchNorm needs two examples)", "xi_max": "a variance >= 0"}
    ok = {"data_noise": lambda v: 0 <= v <= 1, "label_corruption": lambda v: 0 <= v <= 1, "lr": lambda v: v > 0,
          "dropout": lambda v: 0 <= v < 1, "batch_size": lambda v: v >= 2 and float(v).is_integer(),
          "xi_max": lambda v: v >= 0}[knob]
    if level is None and knob == "batch_size":
        return
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not math.isfinite(level) or not ok(level):
        raise ValueError(f"{knob}={level!r} is not allowed: {knob} takes {ranges[knob]}")


def _corrupt_labels(y: torch.Tensor, fraction: float, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Each label independently replaced, with probability ``fraction``, by a uniform random one (fixed)."""
    flip = torch.rand(y.shape, generator=generator) < fraction
    return torch.where(flip, torch.randint(0, n_classes, y.shape, generator=generator), y)


def data_noise_batch(x: torch.Tensor, y: torch.Tensor, noise: float, x_std: float, n_classes: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's data noise on one batch, redrawn every step (``src/main.py``, tag ``ns_nl``)::

        n_redrawn = floor(noise * B) labels, at positions drawn without replacement, get uniform labels
        x' = x + N(0, 1) * x_std * noise           (x_std: std of the training inputs, one number)

    A redrawn label equals the old one with probability 1/n_classes, so the fraction of labels
    changed is ``floor(noise B)/B * (1 - 1/n_classes)`` in expectation.

    :param x: ``(B, n_in)`` inputs; :param y: ``(B,)`` labels; :param noise: level in [0, 1].
    :returns: ``(x', y')`` (new tensors; the inputs are not modified).
    """
    if noise == 0:
        return x, y
    n_redrawn = int(noise * y.shape[0])
    where = torch.randperm(y.shape[0], generator=generator)[:n_redrawn]
    y = y.clone()
    y[where] = torch.randint(0, n_classes, (n_redrawn,), generator=generator)
    x = x + torch.randn(x.shape, generator=generator) * (x_std * noise)
    return x, y


def _resolve(cell: dict) -> dict:
    unknown = set(cell) - set(PHASE_DEFAULTS) - {"name"}
    if unknown:
        raise ValueError(f"unknown phase-cell keys {sorted(unknown)}; known: {sorted(PHASE_DEFAULTS)}")
    c = {**PHASE_DEFAULTS, **cell}
    if c["model"] not in _MODELS:
        raise ValueError(f"model={c['model']!r}; allowed: {', '.join(_MODELS)}")
    if c["arch"] not in _ARCHS:
        raise ValueError(f"arch={c['arch']!r}; allowed: {', '.join(_ARCHS)}")
    for knob in PHASE_KNOBS:
        check_level(knob, c[knob])
    if c["depth"] is None:
        c["depth"] = 7 if c["arch"] == "phase" else 8
    if c["batch_size"] is None or c["batch_size"] >= c["n_train"]:
        c["batch_size"] = c["n_train"]
    c["batch_size"] = int(c["batch_size"])
    if c["steps"] is None:
        c["steps"] = int(c["epochs"]) * (c["n_train"] // c["batch_size"])
    return c


def _stack_key(c: dict) -> tuple:
    """Cells with equal keys train as one stack (everything but the per-run knobs)."""
    per_run = {"name", "alpha", "seed", "data_noise", "label_corruption", "lr", "dropout"}
    return tuple(sorted((k, v) for k, v in c.items() if k not in per_run))


def _stackable(c: dict) -> bool:
    return c["model"] == "linear" and c["arch"] == "phase"


def _build(c: dict) -> nn.Module:
    torch.manual_seed(c["seed"])  # the initialization of run seed
    layer_kwargs = ({"m_std": c["m_std"], "xi_max": c["xi_max"], "pi_init": c["pi_init"], "eval_mode": "mean"}
                    if c["model"] == "spike_slab" else {})
    cls = PhaseMLP if c["arch"] == "phase" else DeepMLP
    return cls(c["side"] ** 2, 10, width=c["width"], depth=c["depth"], alpha=c["alpha"], dropout=c["dropout"],
               layer=c["model"], **layer_kwargs)


def _train_stack(cells: list[dict], data: Dataset) -> tuple[list[nn.Module], list[float]]:
    """Train stackable cells (one shared batch size and length) as one StackedPhaseMLP."""
    n, n_classes = data.n_train, data.n_classes
    x_std = data.x_train.std().item()
    gens = [torch.Generator().manual_seed(c["seed"]) for c in cells]
    y_fit = torch.stack([_corrupt_labels(data.y_train, c["label_corruption"], n_classes, g)
                         for c, g in zip(cells, gens)])  # (K, n)
    stack = StackedPhaseMLP([_build(c) for c in cells])
    params = ParameterStack.of(stack)
    adam = StackedAdam(params, [dict.fromkeys(params.names, 0.0)] * len(cells), [False] * len(cells))
    lrs = [float(c["lr"]) for c in cells]
    batch, steps, per_epoch = cells[0]["batch_size"], cells[0]["steps"], n // cells[0]["batch_size"]
    drop = [float(c["dropout"]) for c in cells]
    stack.train()
    losses = torch.full((len(cells),), math.nan)
    for step in range(steps):
        if batch < n:
            if step % per_epoch == 0:  # run k's own shuffle each epoch (drop_last)
                perms = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (K, n)
            idx = perms[:, (step % per_epoch) * batch:(step % per_epoch + 1) * batch]  # (K, B)
            xb, yb = data.x_train[idx], torch.gather(y_fit, 1, idx)  # (K, B, n_in), (K, B)
        else:
            xb, yb = data.x_train.expand(len(cells), -1, -1), y_fit
        if any(c["data_noise"] > 0 for c in cells):
            pairs = [data_noise_batch(xb[k], yb[k], c["data_noise"], x_std, n_classes, g)
                     for k, (c, g) in enumerate(zip(cells, gens))]
            xb, yb = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        masks = None
        if any(p > 0 for p in drop):  # (depth, K, B, width): run k's masks from its own generator
            masks = torch.stack([
                (torch.rand(stack.depth, batch, cells[0]["width"], generator=g) >= p) / (1 - p)
                if p > 0 else torch.ones(stack.depth, batch, cells[0]["width"]) for p, g in zip(drop, gens)], 1)
        logits = stack(xb, masks)  # (K, B, n_classes)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none")
        losses = loss.view(len(cells), -1).mean(1)  # (K,)
        losses.sum().backward()  # slice k of every gradient: run k's own
        adam.step(lrs)
        adam.zero_grad()
    return stack.to_models(), losses.detach().tolist()


def _train_one(c: dict, data: Dataset) -> tuple[list[nn.Module], list[float]]:
    """Train one cell with torch modules (spike-and-slab ensembles, the ``deep`` network)."""
    n, n_classes = data.n_train, data.n_classes
    x_std = data.x_train.std().item()
    gen = torch.Generator().manual_seed(c["seed"])
    y_fit = _corrupt_labels(data.y_train, c["label_corruption"], n_classes, gen)
    model = _build(c)  # seeds torch's global RNG (dropout, mean-field sampling) with the cell's seed
    optimizer = torch.optim.Adam(model.parameters(), lr=c["lr"])
    batch, per_epoch = c["batch_size"], n // c["batch_size"]
    loss = torch.tensor(math.nan)
    model.train()
    for step in range(c["steps"]):
        if batch < n:
            if step % per_epoch == 0:
                perm = torch.randperm(n, generator=gen)
            idx = perm[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
            xb, yb = data.x_train[idx], y_fit[idx]
        else:
            xb, yb = data.x_train, y_fit
        xb, yb = data_noise_batch(xb, yb, c["data_noise"], x_std, n_classes, gen)
        loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if c["model"] == "spike_slab":
            project_(model)
    return [model], [loss.item()]


def _measure(model: nn.Module, c: dict, data: Dataset, train_loss: float, cell_dir) -> dict:
    """Separation at every readout point, the reference c and v, the normalized curvature, accuracies."""
    model.eval()
    result = {"test_acc": accuracy(model, data.x_test, data.y_test)[0], "train_loss": train_loss}
    finite = math.isfinite(train_loss) and all(torch.isfinite(p).all() for p in model.parameters())
    result["diverged"] = not finite
    if not finite:  # no load curve of a diverged run: its numbers are NaN, its accuracy is measured
        nan = float("nan")
        return {**result, "train_acc": accuracy(model, data.x_train, data.y_train)[0], "c": nan, "v": nan,
                "c_tr": nan, "v_tr": nan, "curvature": nan, "nonuniformity": nan, "shape": "diverged",
                "drop": nan, "log_D": [], "log_D_hs": [], "points": []}
    table = separation(model, (data.x_train, data.y_train))
    if cell_dir is not None:
        write_atomic(Path(cell_dir) / "separation.csv", table.to_csv(index=False).encode())
    body = table[table["module"] != "logits"]  # the reference drops the logits (v_and_c, remove_last_layer)
    ref, tr = reference_curvature(body["log_D_hs"]), reference_curvature(body["log_D"])
    if np.all(body["D"].to_numpy() > 0) and np.all(np.isfinite(body["D"].to_numpy())):
        shape = load_curve_shape(body["D"].to_numpy(), skip_input=c["arch"] == "deep")
    else:
        shape = {"curvature": float("nan"), "nonuniformity": float("nan"), "shape": "undefined",
                 "drop": float("nan"), "n_layers": len(body) - 1}
    result.update({
        "train_acc": accuracy(model, data.x_train, data.y_train)[0],
        "c": ref["c"], "v": ref["v"], "c_tr": tr["c"], "v_tr": tr["v"], **shape,
        "log_D": table["log_D"].tolist(), "log_D_hs": table["log_D_hs"].tolist(), "points": table["module"].tolist(),
    })
    if c["model"] == "spike_slab":
        for layer in model.modules():
            if hasattr(layer, "eval_mode"):
                layer.eval_mode = "mean_field"
        result["test_acc_mean_field"] = accuracy(model, data.x_test, data.y_test)[0]
        xi = torch.cat([m.xi.detach().flatten() for m in model.modules() if hasattr(m, "xi")])
        result["xi_mean_final"] = xi.mean().item()
    return result


def run_phase_cells(cells: list[dict], cell_dirs: list | None = None) -> list[dict]:
    """Train and measure cells that can share a stack (see :func:`group_cells`); one result dict each.

    Each result: ``test_acc``, ``train_acc`` (clean labels), ``train_loss`` (last step, on the
    noisy batch), ``diverged``; the load curves ``log_D`` (Tr Sigma_w / Tr Sigma_b) and ``log_D_hs``
    (He & Su, the reference's measure) at ``points`` (input after the BatchNorm, block1..block7,
    logits); the reference ``c = d_0 - d_last`` and ``v = std(d)`` of ``log_D_hs`` without the logits
    (``c_tr``, ``v_tr``: the same of ``log_D``); the normalized ``curvature``, ``nonuniformity`` and
    ``shape`` of :func:`~ensemble_nets.analysis.load_curve_shape` (of ``D``, without the logits).
    """
    resolved = [_resolve(c) for c in cells]
    if len({_stack_key(c) for c in resolved}) > 1 or (len(resolved) > 1 and not _stackable(resolved[0])):
        raise ValueError("run_phase_cells takes cells that share a stack (group them with group_cells)")
    c0 = resolved[0]
    torch.set_num_threads(int(c0["threads"]))
    data = pooled_mnist(c0["data_root"], c0["side"], c0["n_train"])
    models, losses = (_train_stack if _stackable(c0) else lambda cs, d: _train_one(cs[0], d))(resolved, data)
    dirs = cell_dirs or [None] * len(cells)
    return [_measure(m, c, data, loss, d) for m, c, loss, d in zip(models, resolved, losses, dirs)]


def run_phase_cell(cell: dict, cell_dir: str | Path | None = None) -> dict:
    """Train one cell of the phase diagram and measure its load curve (see :func:`run_phase_cells`)."""
    return run_phase_cells([cell], [cell_dir])[0]


def group_cells(cells: list[dict], max_examples: int = 7680, max_runs: int = 18) -> list[list[dict]]:
    """Split cells into stacks: equal stack keys, at most ``max_runs`` runs and ``max_examples`` = K * batch."""
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        c = _resolve(cell)
        groups.setdefault(_stack_key(c) if _stackable(c) else ("single", cell["name"]), []).append(cell)
    out = []
    for key, members in groups.items():
        c = _resolve(members[0])
        size = 1 if key[0] == "single" else max(1, min(max_runs, max_examples // c["batch_size"]))
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return out


def _run_group(group: dict, group_dir: Path) -> dict:
    """run_grid's fn for one stack: trains the members without a summary, writes one per member."""
    out = Path(group_dir).parent.parent
    todo = [m for m in group["members"] if not (out / m["name"] / SUMMARY).is_file()]
    if todo:
        start = time.time()
        dirs = [out / m["name"] for m in todo]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        results = run_phase_cells(todo, dirs)
        wall = (time.time() - start) / len(todo)
        for member, d, result in zip(todo, dirs, results):
            write_json(d / SUMMARY, {"name": member["name"], "status": "done", "cell": member, "result": result,
                                     "wall_s": wall})
    return {"n_members": len(group["members"]), "n_trained": len(todo)}


#: LeakyReLU slopes of the reference: 0, 0.2, ..., 1.
ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Knob levels per preset (paper: in the reference's ranges; quick: a smoke grid for the figure).
LEVELS = {
    "paper": {
        "data_noise": [0.0, 0.2, 0.4, 0.6, 0.8],
        "label_corruption": [0.0, 0.1, 0.2, 0.3, 0.4],
        "lr": [1e-4, 1e-3, 1e-2, 0.1, 0.5],
        "dropout": [0.0, 0.06, 0.12, 0.2, 0.3],
        "batch_size": [2560, 640, 160, 40, 10],
        "xi_max": [0.0, 0.002, 0.005, 0.01, 0.02],
    },
    "quick": {"data_noise": [0.0, 0.4, 0.8]},
}
#: Preset -> (folder under the runs folder, alphas, seeds, epochs per knob).
PRESETS = {
    "paper": ("phase-paper", ALPHAS, 3, {"batch_size": 50}),  # reference: lr 200 epochs, batch size 100 (cut: cost)
    "quick": ("phase-quick", (0.0, 0.5, 1.0), 1, {"data_noise": 30}),  # 38 CPU s for the family, figures included
}


@dataclass(frozen=True)
class PhaseGridConfig:
    """A grid of cells: alpha x knob levels x seeds; None takes the preset's value."""

    model: str = field(default="linear", metadata={"choices": _MODELS,
                                                   "help": "plain layers or spike-and-slab ensemble layers"})
    knob: str | None = field(default=None, metadata={"choices": PHASE_KNOBS,
                                                     "help": "the noise axis (None: data_noise; spike_slab: xi_max)"})
    preset: str = field(default="paper", metadata={"choices": tuple(PRESETS),
                                                   "help": "paper: the grids of docs/phase.md; quick: a smoke grid"})
    levels: tuple | None = field(default=None, metadata={"type": float, "many": True,
                                                         "help": "knob levels (None: the preset's)"})
    alphas: tuple | None = field(default=None, metadata={"type": float, "many": True,
                                                         "help": "LeakyReLU slopes (None: 0 0.2 ... 1)"})
    seeds: int | None = field(default=None, metadata={"type": positive_int, "help": "seeds 0..seeds-1 (None: 3)"})
    epochs: int | None = field(default=None, metadata={"type": positive_int,
                                                       "help": "epochs per cell (None: 100; batch size: 50)"})
    data_root: str = field(default="../shared/data/mnist", metadata={"help": "folder with the official test set"})

    def __post_init__(self):
        knob = self.resolved_knob
        if knob not in PHASE_KNOBS:
            raise ValueError(f"unknown phase knob {knob!r}; allowed: {', '.join(PHASE_KNOBS)}")
        if knob == "xi_max" and self.model != "spike_slab":
            raise ValueError("knob xi_max is the ensemble's own noise: it needs model spike_slab (--model spike_slab)")
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r}; allowed: {', '.join(PRESETS)}")
        if any(not 0 <= a <= 1 for a in self.alphas or ()):
            raise ValueError(f"alphas must lie in [0, 1], got {list(self.alphas)}")
        for level in self.resolved_levels:
            check_level(knob, level)

    @property
    def resolved_knob(self) -> str:
        return self.knob or ("xi_max" if self.model == "spike_slab" else "data_noise")

    @property
    def resolved_levels(self) -> list:
        knob = self.resolved_knob
        if self.levels is not None:
            levels = list(self.levels)
        else:
            table = LEVELS[self.preset]
            if knob not in table:
                raise ValueError(f"preset {self.preset!r} has no levels for knob {knob!r} (it has "
                                 f"{', '.join(table)}); pass --levels")
            levels = list(table[knob])
        return [int(v) for v in levels] if knob == "batch_size" else [float(v) for v in levels]

    @property
    def folder(self) -> str:
        """The grid folder, relative to the runs folder: ``<preset folder>/<model>-<knob>``."""
        return f"{PRESETS[self.preset][0]}/{self.model}-{self.resolved_knob}"


def make_cells(config: PhaseGridConfig) -> list[dict]:
    """One cell per (alpha, level, seed), named ``a<alpha>-<knob><level>-s<seed>``."""
    knob = config.resolved_knob
    _, alphas, seeds, epochs = PRESETS[config.preset]
    alphas = config.alphas or alphas
    seeds = config.seeds if config.seeds is not None else seeds
    n_epochs = config.epochs or epochs.get(knob, 100)
    return [
        {"name": f"a{alpha:g}-{knob}{level:g}-s{seed}", "model": config.model, "alpha": float(alpha), knob: level,
         "seed": seed, "epochs": n_epochs, "data_root": config.data_root}
        for alpha in alphas for level in config.resolved_levels for seed in range(seeds)
    ]


def _group_cells_for_grid(cells: list[dict]) -> list[dict]:
    groups = group_cells(cells)
    return [{"name": f"{g[0]['name']}--{g[-1]['name']}-{len(g)}", "members": g} for g in groups]


def run_phase_grid(config: PhaseGridConfig, out: str | Path, *, backend: str = "serial",
                   n_workers: int | None = 1, address: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run every cell not finished yet (in stacks, :func:`group_cells`) into ``out/<cell>``; write and return
    ``out/grid.csv`` (one row per cell). Stack bookkeeping lives in ``out/_stacks``."""
    out = Path(out)
    cells = make_cells(config)
    run_grid(_group_cells_for_grid(cells), _run_group, out / "_stacks", backend=backend, n_workers=n_workers,
             address=address, progress=progress)
    frame = grid_frame(out)
    frame = frame[frame["name"].isin({c["name"] for c in cells})].reset_index(drop=True)
    write_atomic(out / "grid.csv", frame.to_csv(index=False).encode())
    return frame


def grid_frame(grid: str | Path) -> pd.DataFrame:
    """One row per finished cell of a grid folder: the cell's settings and results (``log_D`` a list)."""
    rows = []
    for path in sorted(Path(grid).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        rows.append({**summary["cell"], **summary["result"], "wall_s": summary.get("wall_s", np.nan)})
    if not rows:
        raise FileNotFoundError(f"{grid} holds no finished cells (*/summary.json)")
    frame = pd.DataFrame(rows)
    knob = Path(grid).name.split("-", 1)[1]
    if knob not in PHASE_KNOBS:
        raise ValueError(f"{grid}: folder knob {knob!r} is not a phase knob ({', '.join(PHASE_KNOBS)}); grids "
                         "written before issue 12 (runs/phase/, knob label_noise) must be rerun")
    level = frame[knob] if knob in frame else pd.Series(PHASE_DEFAULTS[knob], index=frame.index)
    if knob == "batch_size":
        level = level.fillna(2560)
    return frame.assign(knob=knob, level=level.astype(float))


_CMD = "python experiments/phase_diagram.py --data-root ../shared/data/mnist"
_PAPER = {  # folder -> (config, label)
    f"phase-paper/linear-{knob}": (PhaseGridConfig(knob=knob), label)
    for knob, label in (("data_noise", "data noise"), ("dropout", "dropout"), ("lr", "learning rate"),
                        ("batch_size", "batch size"))}
_PAPER["phase-paper/spike_slab-xi_max"] = (PhaseGridConfig(model="spike_slab", alphas=(0.0, 0.4, 1.0)),
                                           "ensemble xi_max")  # 3 alphas: an ensemble cell costs ~3 plain ones
_QUICK = {"phase-quick/linear-data_noise": (PhaseGridConfig(preset="quick"), "data noise (quick)")}


def _command(config: PhaseGridConfig) -> str:
    cmd = f"{_CMD} --knob {config.resolved_knob}"
    cmd += " --model spike_slab" if config.model == "spike_slab" else ""
    cmd += (" --alphas " + " ".join(f"{a:g}" for a in config.alphas)) if config.alphas else ""
    return cmd + (" --preset quick" if config.preset == "quick" else "")


#: Grid folders (relative to the runs folder) the family needs -> the commands that make them.
REQUIRED_RUNS = {folder: _command(config) for folder, (config, _) in _QUICK.items()}
#: Grids drawn when present: folder -> (command, label); the paper grids are preferred to the quick one.
GRIDS = {folder: (_command(config), label) for folder, (config, label) in {**_PAPER, **_QUICK}.items()}
#: The figure budgets (grids to run): ``quick`` a 9-cell smoke grid, ``paper`` the five grids of docs/phase.md.
BUDGETS = {"quick": tuple(config for config, _ in _QUICK.values()),
           "paper": tuple(config for config, _ in _PAPER.values())}


def missing_runs(runs: str | Path) -> dict[str, str]:
    """Required grid folders without a finished cell (any paper grid stands in for the quick one)."""
    runs = Path(runs)
    if any(any((runs / folder).glob("*/summary.json")) for folder in _PAPER):
        return {}
    return {folder: cmd for folder, cmd in REQUIRED_RUNS.items() if not any((runs / folder).glob("*/summary.json"))}


def jobs(runs: str | Path, configs) -> list:
    """One job per grid of ``configs``: its stacks (cells already finished are skipped)."""
    from ensemble_nets.protocols.figures import Job

    return [Job(Path(runs) / config.folder / "_stacks", _run_group, _group_cells_for_grid(make_cells(config)))
            for config in configs]


def figure_tables(runs: str | Path) -> dict:
    """``grids`` (folder -> (label, grid frame)): the paper grids found, else the quick one; ``claims``
    (:func:`~ensemble_nets.analysis.phase_claims.claims_tables` of the plain grids); ``spring`` (the
    second-order spring-block model's spring lengths against noise, the theory panel)."""
    from ensemble_nets.analysis.phase_claims import claims_tables, spring_panel

    runs = Path(runs)
    found = {folder: (label, grid_frame(runs / folder)) for folder, (_, label) in GRIDS.items()
             if any((runs / folder).glob("*/summary.json"))}
    paper = {folder: v for folder, v in found.items() if folder in _PAPER}
    grids = paper or found
    if not grids:
        raise FileNotFoundError(f"{runs} holds none of the grids {sorted(GRIDS)}; run: {_command(_QUICK_CONFIG)}")
    return {"grids": grids, "claims": claims_tables({label: frame for label, frame in grids.values()}),
            "spring": spring_panel()}


_QUICK_CONFIG = next(iter(_QUICK.values()))[0]
