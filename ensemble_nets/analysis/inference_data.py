# SPDX-License-Identifier: MIT
"""The ensemble as ArviZ ``InferenceData``: one draw per network sampled from q.

:func:`to_inference_data` draws K networks from q (``model.sample_network``)
and files them as a single chain of K draws, so ``az.summary`` and ``az.hdi``
work on the ensemble::

    posterior              w_layerN (chain, draw, w_layerN_index)   weights W ~ q (scale of m, before
                                                                     the 1/sqrt(N_in) factor)
                           accuracy (chain, draw)                   test accuracy of each network
                           test_nll (chain, draw)                   its mean -log p_k(y | x) on the test set
    posterior_predictive   y (chain, draw, example)                 a test label drawn from each network's softmax
    observed_data          y (example)                              the true test labels
    log_likelihood         y_train (chain, draw, train_example)     log p_k(y_i | x_i) on TRAINING examples,
                                                                     only when ``train_data`` is given
    observed_data          y_train (train_example)                  the training labels, likewise

What the draws are. Each draw is an independent network sampled from q,
the trained spike-and-slab law of every weight: not MCMC (R-hat and ESS are
trivially fine), and not, in general, a posterior. Under the reference
objective (cross-entropy of the mean-field network, no prior) q is not a
posterior under any stated prior: the draws are the ensemble the training
produced, and ArviZ's summaries describe that ensemble. Under the ELBO
objective with ``kl_weight = 1``, q is the variational approximation of the
posterior under the spike-and-slab prior.

PSIS-LOO (``az.loo``) reweights draws from the distribution conditioned on
all data to drop one example; it needs the log-likelihoods of the examples q
was conditioned on, the TRAINING set, and it assumes q is proportional to
prior times likelihood (defensible only for the ELBO with ``kl_weight = 1``;
the Pareto k diagnostics flag where the importance weights fail). On test
examples q was conditioned on nothing, so a test-set ``az.loo`` estimates
nothing, and no test-set ``log_likelihood`` group is written: the test-set
predictive scores (lppd, NLL, Brier) are in
:func:`~ensemble_nets.analysis.ensemble_statistics`.

Large layers: a layer with more than ``max_weights`` connections keeps a
subset of ``max_weights`` of them, chosen uniformly without replacement by a
generator seeded with ``seed`` and sorted by flat index; the coordinates
``w_layerN_out`` and ``w_layerN_in`` give the (row, column) of every kept
weight, and the attribute ``weights_subset`` says which layers were thinned.
The weight draws and the predictions come from the same K networks.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ensemble_nets._optional import require
from ensemble_nets.analysis._common import (
    check_n_networks, keeps_global_rng, logits_of, named_layers, test_tensors,
)

__all__ = ["load_inference_data", "save_inference_data", "to_inference_data"]


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz announces its 1.0 refactor on import
        az = require("arviz", "bayes")
    return az


@keeps_global_rng
@torch.no_grad()
def to_inference_data(model: nn.Module, data, *, n_networks: int = 50, seed: int = 0, max_weights: int = 500,
                      train_data=None, batch_size: int = 10_000):
    """``arviz.InferenceData`` of ``n_networks`` networks drawn from q, on the test split of ``data``.

    :param model: a trained ensemble (e.g. :class:`~ensemble_nets.models.EnsembleMLP`); left untouched.
    :param data: a :class:`~ensemble_nets.data.Dataset` (test split) or ``(x, y)``.
    :param n_networks: draws K (>= 2; ``az.loo`` wants many, e.g. >= 50).
    :param seed: seeds the networks, the weight subset and the posterior-predictive labels.
    :param max_weights: at most this many weights per layer in the posterior (see the module docstring).
    :param train_data: the training split (a Dataset or ``(x_train, y_train)``) for the ``log_likelihood``
        group that ``az.loo`` reads; ``None`` writes no such group (see the module docstring).
    """
    check_n_networks(n_networks, minimum=2)
    if max_weights < 1:
        raise ValueError(f"max_weights must be >= 1, got {max_weights}")
    if not hasattr(model, "sample_network"):
        raise ValueError(f"{type(model).__name__} is not an ensemble (no sample_network); use en.EnsembleMLP")
    xr = require("xarray", "bayes")

    az = _arviz()
    x, y = test_tensors(data)
    if train_data is not None:
        x_train, y_train = (train_data.x_train, train_data.y_train) if hasattr(train_data, "x_train") \
            else test_tensors(train_data)
    layers = named_layers(model)
    picker = torch.Generator().manual_seed(seed + 1)
    keep, thinned = {}, []
    for name, layer in layers:
        n = layer.pi.numel()
        if n > max_weights:
            keep[name] = torch.randperm(n, generator=picker)[:max_weights].sort().values
            thinned.append(name)
        else:
            keep[name] = torch.arange(n)

    generator = torch.Generator(device=x.device).manual_seed(seed)
    label_generator = torch.Generator(device=x.device).manual_seed(seed + 2)
    weights = {name: [] for name, _ in layers}
    predicted, log_lik, accuracy, test_nll = [], [], [], []
    for _ in range(n_networks):
        drawn = [layer.sample_weight(generator) for _, layer in layers]  # (out, in) each, the scale of m
        net = model._plain_copy(drawn)  # the same member as model.sample_network would build
        for (name, _), w in zip(layers, drawn):
            weights[name].append(w.flatten()[keep[name].to(w.device)].cpu())
        log_p = torch.log_softmax(logits_of(net, x, batch_size), -1)  # (N, C)
        test_nll.append(-log_p.gather(1, y[:, None])[:, 0].double().mean().item())
        if train_data is not None:
            log_p_train = torch.log_softmax(logits_of(net, x_train, batch_size), -1)  # (N_train, C)
            log_lik.append(log_p_train.gather(1, y_train[:, None])[:, 0].cpu())
        predicted.append(torch.multinomial(log_p.exp(), 1, generator=label_generator)[:, 0].cpu())
        accuracy.append((log_p.argmax(-1) == y).double().mean().item())

    posterior = {}
    for name, layer in layers:
        dim = f"w_{name}_index"
        rows, cols = keep[name] // layer.in_features, keep[name] % layer.in_features
        posterior[f"w_{name}"] = xr.DataArray(
            torch.stack(weights[name]).double().numpy()[None], dims=("chain", "draw", dim),
            coords={dim: np.arange(len(keep[name])), f"w_{name}_out": (dim, rows.numpy()),
                    f"w_{name}_in": (dim, cols.numpy())})
    posterior["accuracy"] = xr.DataArray(np.array(accuracy)[None], dims=("chain", "draw"))
    posterior["test_nll"] = xr.DataArray(np.array(test_nll)[None], dims=("chain", "draw"))
    coords = {"chain": [0], "draw": np.arange(n_networks), "example": np.arange(len(y))}
    if train_data is not None:
        coords["train_example"] = np.arange(len(y_train))
    attrs = {"source": "ensemble_nets: independent networks drawn from q", "n_networks": n_networks,
             "seed": seed, "max_weights": max_weights, "weights_subset": ",".join(thinned) or "none"}

    def dataset(values: dict) -> "xr.Dataset":
        return xr.Dataset(values, attrs=attrs).assign_coords(
            {k: v for k, v in coords.items() if any(k in da.dims for da in values.values())})

    observed = {"y": xr.DataArray(y.cpu().numpy(), dims=("example",))}
    groups = {}
    if train_data is not None:
        observed["y_train"] = xr.DataArray(y_train.cpu().numpy(), dims=("train_example",))
        groups["log_likelihood"] = dataset({"y_train": xr.DataArray(
            torch.stack(log_lik).double().numpy()[None], dims=("chain", "draw", "train_example"))})
    return az.InferenceData(
        posterior=dataset(posterior),
        posterior_predictive=dataset({"y": xr.DataArray(torch.stack(predicted).numpy()[None],
                                                        dims=("chain", "draw", "example"))}),
        observed_data=dataset(observed),
        **groups,
    )


def save_inference_data(idata, path: str | os.PathLike) -> Path:
    """Write ``idata`` as netCDF (h5netcdf) through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        require("h5netcdf", "bayes")
        idata.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_inference_data(path: str | os.PathLike):
    """Read an ``InferenceData`` written by :func:`save_inference_data`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no InferenceData at {path}; write it with experiments/analyze_run.py RUN_DIR")
    require("h5netcdf", "bayes")
    return _arviz().from_netcdf(path, engine="h5netcdf")
