# SPDX-License-Identifier: MIT
"""Diagnostics of the spectral condition: coordinate checks and per-layer spectral norms.

- :func:`coord_check`: mean absolute output of every weight layer over the first
  steps of training, across widths (Yang et al., "Tensor Programs V", the muP
  coordinate check). Flat in width under a feature-learning parametrization.
- :func:`coord_slopes`: slope of log l1 against log width per layer at one step.
- :func:`transfer_optima`: the learning rate of the lowest final loss per width (learning-rate
  transfer), with its spread over seeds and its shift from the narrowest width in grid steps.
- :func:`spectral_diagnostics`: per layer, before and after training::

      w_norm     = ||W||_2  / sqrt(n_out/n_in)
      dw_norm    = ||dW||_2 / sqrt(n_out/n_in)
      alignment  = mean_x ||dW h|| / (||dW||_2 ||h||)      h: the layer's input
      stable_rank = ||dW||_F^2 / ||dW||_2^2

  W is the effective weight (:func:`ensemble_nets.training.spectral.effective_weight`:
  the mean weight of a spike-and-slab layer); ``noise_norm`` adds the normalized
  spectral norm of one draw of a spike-and-slab layer's weight fluctuation.

Returns tables (pandas), never plots.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ensemble_nets.layers import SpikeSlabLinear
from ensemble_nets.training.optim import project_
from ensemble_nets.training.spectral import (
    OPTIMIZERS,
    PARAMETRIZATIONS,
    effective_noise,
    effective_weight,
    make_parametrized_optimizer,
    spectral_init_,
    spectral_layers,
)

__all__ = ["coord_check", "coord_slopes", "spectral_diagnostics", "transfer_optima"]


def _layer_role(index: int, count: int) -> str:
    return "input" if index == 0 else "output" if index == count - 1 else "hidden"


def coord_check(make_model: Callable[[int], nn.Module], widths: Sequence[int], data: tuple[torch.Tensor, torch.Tensor],
                *, n_steps: int = 5, lr: float = 1.0, parametrization: str = "spectral", optimizer: str = "adam",
                batch_size: int = 64, n_seeds: int = 2, gain: float = 1.0, shrink: str = "not_input",
                seed: int = 0) -> pd.DataFrame:
    """Mean |output| of every weight layer at steps 0..n_steps, for every width.

    A fixed probe batch (``batch_size`` examples of ``data``) is passed at every step and each
    weight layer's output h_t recorded (train mode with the same noise eps each time, so an
    ensemble uses its noisy mean-field pass)::

        l1     = mean |h_t|                 the coordinate size
        dl1    = mean |h_t - h_0|           how far the features moved since init
        noise  = mean s_t                   spike-and-slab layers: the std of each unit's noise,
        dnoise = mean |s_t - s_0|           s = sqrt((sum_j var_ij a_j^2 + floor) / n_in) (NaN for others)

    (h = mean channel + s eps: l1 and dl1 see both channels, mostly the mean; noise and dnoise
    see the variance channel alone, which xi and pi move.)

    then the optimizer takes one step on the next training mini-batch (cross-entropy), followed
    by the projection of pi and xi.

    :param make_model: ``make_model(width) -> nn.Module`` with the layers' own (standard) init.
    :param widths: hidden widths, e.g. ``[64, 128, ..., 2048]``.
    :param data: ``(x, y)``: inputs ``(n, n_features)`` and integer labels ``(n,)``.
    :param n_steps: optimizer steps (outputs are recorded before each and after the last).
    :param lr: learning rate (the base rate in spectral units for ``"spectral"``).
    :param parametrization: ``"standard"`` (model as built, one learning rate) or ``"spectral"``
        (:func:`~ensemble_nets.training.spectral.spectral_init_` with ``gain``, ``shrink`` and
        per-parameter rates).
    :param optimizer: ``"adam"``, ``"sgd"`` or ``"normalized"``.
    :param n_seeds: independent repetitions (averaged by :func:`coord_slopes`, kept here).
    :returns: tidy DataFrame with columns ``parametrization, width, seed, step, layer, role, l1, dl1, noise,
        dnoise``.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if n_steps < 0 or batch_size < 1 or n_seeds < 1:
        raise ValueError(f"need n_steps >= 0, batch_size >= 1, n_seeds >= 1; got {n_steps}, {batch_size}, {n_seeds}")
    x, y = data
    if x.shape[0] < 2 * batch_size:
        raise ValueError(f"data hold {x.shape[0]} examples; need at least 2 * batch_size = {2 * batch_size} "
                         f"(a probe batch and training batches)")
    rows = []
    for width in widths:
        for s in range(n_seeds):
            torch.manual_seed(seed + 1000 * s + width)
            model = make_model(width)
            if parametrization == "spectral":
                spectral_init_(model, gain=gain, shrink=shrink)
            opt = make_parametrized_optimizer(model, parametrization, lr, optimizer, shrink=shrink)
            layers = list(spectral_layers(model))
            record: dict[str, torch.Tensor] = {}
            hooks = [layer.register_forward_hook(
                lambda mod, inp, out, name=name: record.__setitem__(name, out.detach().clone()))
                for name, layer in layers]
            hooks += [layer.register_forward_hook(
                lambda mod, inp, out, name=name: record.__setitem__(f"{name}/noise", _noise_std(mod, inp[0])))
                for name, layer in layers if isinstance(layer, SpikeSlabLinear)]
            order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + s))
            probe = x[order[:batch_size]]  # (batch_size, n_features), fixed over the steps
            train_idx = order[batch_size:]
            model.train()
            first: dict[str, torch.Tensor] = {}
            for step in range(n_steps + 1):
                state = torch.get_rng_state()
                torch.manual_seed(seed + 7 * s + 1)  # the same noise eps on the probe at every step
                with torch.no_grad():
                    model(probe)
                torch.set_rng_state(state)
                for i, (name, _) in enumerate(layers):
                    out, noise = record[name], record.get(f"{name}/noise")
                    first.setdefault(name, out)
                    row = {"parametrization": parametrization, "width": width, "seed": s, "step": step,
                           "layer": name, "role": _layer_role(i, len(layers)),
                           "l1": out.abs().mean().item(), "dl1": (out - first[name]).abs().mean().item(),
                           "noise": float("nan"), "dnoise": float("nan")}
                    if noise is not None:
                        first.setdefault(f"{name}/noise", noise)
                        row["noise"] = noise.mean().item()
                        row["dnoise"] = (noise - first[f"{name}/noise"]).abs().mean().item()
                    rows.append(row)
                if step == n_steps:
                    break
                start = (step * batch_size) % max(1, train_idx.numel() - batch_size + 1)
                pick = train_idx[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[pick]), y[pick]).backward()
                opt.step()
                project_(model)
            for hook in hooks:
                hook.remove()
    return pd.DataFrame(rows)


def _noise_std(layer: SpikeSlabLinear, a: torch.Tensor) -> torch.Tensor:
    """Std of each unit's noise in the mean-field pass, ``(B, n_out)``: sqrt((a^2 var^T + floor) / n_in)."""
    var = layer.weight_variance.detach()  # (n_out, n_in)
    return ((a.detach().square() @ var.t() + layer.floor) / layer.in_features).sqrt()


def coord_slopes(df: pd.DataFrame, *, step: int | None = None, value: str = "l1", min_width: int | None = None,
                 max_width: int | None = None) -> pd.DataFrame:
    """Least-squares slope of log(value) against log(width), per layer (and parametrization, model ...).

    ``value`` is a :func:`coord_check` column (``"l1"``, ``"dl1"``, ``"noise"``, ``"dnoise"``), first
    averaged over seeds; rows where it is NaN (the noise of a layer that has none) are left out.
    ``step=None`` takes the last recorded step; ``min_width`` and ``max_width`` restrict the widths fitted.
    Slope 0: the layer's output scale does not drift with width.

    :returns: one row per group with ``slope`` and ``n_widths``.
    """
    required = {"width", "step", "layer", value}
    if not required <= set(df.columns):
        raise ValueError(f"df must have columns {sorted(required)} (a coord_check table), got {list(df.columns)}")
    step = int(df["step"].max()) if step is None else step
    sub = df[(df["step"] == step) & df[value].notna()]
    if max_width is not None:
        sub = sub[sub["width"] <= max_width]
    if min_width is not None:
        sub = sub[sub["width"] >= min_width]
    keys = [k for k in ("model", "optimizer", "parametrization", "layer", "role") if k in sub.columns]
    mean = sub.groupby(keys + ["width"], sort=False, observed=True)[value].mean().reset_index()
    rows = []
    for key, group in mean.groupby(keys, sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        if group["width"].nunique() < 2:
            raise ValueError(f"need at least two widths to fit a slope for {dict(zip(keys, key))}")
        slope = np.polyfit(np.log(group["width"].to_numpy(float)), np.log(group[value].to_numpy(float)), 1)[0]
        rows.append({**dict(zip(keys, key)), "value": value, "step": step, "slope": float(slope),
                     "n_widths": group["width"].nunique()})
    return pd.DataFrame(rows)


def transfer_optima(table: pd.DataFrame, *, loss: str = "final_loss") -> pd.DataFrame:
    """The best learning rate per width: where a rate transfers, it stays put as the width grows.

    ``table`` has a row per run: ``width, lr, seed, <loss>`` (and any of ``model, variant``, which group
    the rows); a diverged run carries ``inf``. Per group and width, over the rates of the grid::

        lr_best       rate of the lowest seed-mean loss (a rate diverged in any seed has mean inf)
        loss_best     that mean loss;  loss_best_std: its standard deviation over seeds
        lr_seed_min   smallest and largest of the per-seed best rates
        lr_seed_max
        shift         grid steps between lr_best and the narrowest width's lr_best (index in the sorted grid)
        edge          True when lr_best is the smallest or largest rate of the grid (the optimum is not bracketed)

    :returns: one row per group and width, sorted by width.
    """
    required = {"width", "lr", "seed", loss}
    if not required <= set(table.columns):
        raise ValueError(f"table must have columns {sorted(required)} (a transfer table), got {list(table.columns)}")
    keys = [k for k in ("model", "variant") if k in table.columns]
    rows = []
    for key, group in (table.groupby(keys, sort=False) if keys else [((), table)]):
        key = key if isinstance(key, tuple) else (key,)
        grid = sorted(group["lr"].unique())
        first = None
        for width, part in group.groupby("width", sort=True):
            mean = part.groupby("lr")[loss].mean().sort_index()
            if not np.isfinite(mean.to_numpy()).any():
                continue
            lr_best = float(mean.idxmin())
            per_seed = part.loc[part.groupby("seed")[loss].idxmin(), "lr"]
            index = grid.index(lr_best)
            first = index if first is None else first
            rates = sorted(part["lr"].unique())
            rows.append({**dict(zip(keys, key)), "width": int(width), "lr_best": lr_best,
                         "loss_best": float(mean.min()),
                         "loss_best_std": float(part.loc[part["lr"] == lr_best, loss].std(ddof=1))
                         if part["seed"].nunique() > 1 else float("nan"),
                         "lr_seed_min": float(per_seed.min()), "lr_seed_max": float(per_seed.max()),
                         "n_seeds": int(part["seed"].nunique()), "shift": index - first,
                         "edge": lr_best in (rates[0], rates[-1])})
    return pd.DataFrame(rows)


@torch.no_grad()
def spectral_diagnostics(model_before: nn.Module, model_after: nn.Module, x: torch.Tensor, *,
                         seed: int = 0) -> pd.DataFrame:
    """Normalized spectral norms of W and dW = W_after - W_before, alignment and stable rank, per layer.

    The layer inputs h are those of ``model_before`` on ``x`` (eval mode; an ensemble's
    ``eval_mode`` decides its pass). Both models must have the same architecture.

    :param x: ``(B, n_features)`` inputs.
    :returns: one row per weight layer: ``layer, n_in, n_out, w_norm, w_norm_after, dw_norm,
        alignment, stable_rank`` and, for spike-and-slab layers, ``noise_norm``.
    """
    before, after = list(spectral_layers(model_before)), list(spectral_layers(model_after))
    def signature(layers):
        return [(type(m), tuple(effective_weight(m).shape)) for _, m in layers]

    if signature(before) != signature(after):
        raise ValueError("model_before and model_after must have the same layers (copy the model before training)")
    inputs: dict[str, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(lambda mod, inp, out, name=name: inputs.__setitem__(name, inp[0].detach()))
             for name, layer in before]
    was_training = model_before.training
    model_before.eval()
    model_before(x)
    model_before.train(was_training)
    for hook in hooks:
        hook.remove()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    rows = []
    for (name, lb), (_, la) in zip(before, after):
        w0, w1 = effective_weight(lb).detach(), effective_weight(la).detach()
        n_out, n_in = w0.shape
        target = math.sqrt(n_out / n_in)
        dw = w1 - w0
        dw_spec = torch.linalg.matrix_norm(dw, ord=2).item()
        h = inputs[name].reshape(-1, n_in)  # (B, n_in)
        if dw_spec > 0:
            ratio = (h @ dw.t()).norm(dim=1) / (dw_spec * h.norm(dim=1).clamp_min(1e-30))
            alignment = ratio.mean().item()
            stable_rank = (dw.square().sum() / dw_spec ** 2).item()
        else:
            alignment = stable_rank = float("nan")
        row = {"layer": name, "n_in": n_in, "n_out": n_out,
               "w_norm": torch.linalg.matrix_norm(w0, ord=2).item() / target,
               "w_norm_after": torch.linalg.matrix_norm(w1, ord=2).item() / target,
               "dw_norm": dw_spec / target, "alignment": alignment, "stable_rank": stable_rank}
        if isinstance(la, SpikeSlabLinear):
            row["noise_norm"] = torch.linalg.matrix_norm(effective_noise(la, generator), ord=2).item() / target
        rows.append(row)
    return pd.DataFrame(rows)
