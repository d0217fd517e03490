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
``separation.csv`` there and returns the cell's numbers.
"""
from __future__ import annotations

import functools
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ensemble_nets.analysis.separation import load_curve_shape, separation
from ensemble_nets.data import Dataset, load_dataset
from ensemble_nets.models.deep import DeepMLP
from ensemble_nets.training.evaluate import accuracy
from ensemble_nets.training.optim import project_
from ensemble_nets.training.runs import write_atomic

__all__ = ["PHASE_DEFAULTS", "PHASE_KNOBS", "pooled_mnist", "run_phase_cell"]

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
