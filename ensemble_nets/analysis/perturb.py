# SPDX-License-Identifier: MIT
"""Perturbation evidence for the connection categories (Li & Huang 2020, DESIGN.md section 2).

For a fraction f of one layer's connections of a category, perturb the law q
of those connections and measure the test error of networks sampled from the
perturbed q::

    delete_important       f * n_important important connections get pi = 1 (removed)
    randomize_unimportant  f * n_unimportant unimportant connections become present with a
                           random value: pi = 0, xi = 0, m ~ N(0, 1) (the scale of m)
    delete_variable        control: as many variable connections as delete_important removes
    delete_random          control: as many connections of any category, chosen at random

The counts of the three deletions are the same, ``round(f * n_important)``
(capped by the pool), so they are compared at equal damage. Expected: deleting
important connections hurts much more than the controls; randomizing
unimportant ones hardly matters.

Common random numbers: network k of every (perturbation, f) uses the same
generator seed, so at f = 0 all perturbations give the same networks, and the
differences between curves are not sampling noise. The original model is never
modified: the work is done on a deep copy.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import (
    check_n_networks, keeps_global_rng, logits_of, resolve_layer, named_layers, test_tensors,
)
from ensemble_nets.analysis.categories import IMPORTANT, UNIMPORTANT, VARIABLE, connection_categories

__all__ = ["PERTURBATIONS", "perturbation_curves", "summarize_perturbations"]

#: Perturbations, in the order the figures show them.
PERTURBATIONS = ("delete_important", "randomize_unimportant", "delete_variable", "delete_random")
#: Fractions of the reference experiment: 0, 0.1, ..., 1.
DEFAULT_FRACTIONS = tuple(i / 10 for i in range(11))


def _pools(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Flat indices each perturbation draws from."""
    flat = labels.flatten()
    return {
        "delete_important": torch.nonzero(flat == IMPORTANT).flatten(),
        "randomize_unimportant": torch.nonzero(flat == UNIMPORTANT).flatten(),
        "delete_variable": torch.nonzero(flat == VARIABLE).flatten(),
        "delete_random": torch.arange(flat.numel(), device=flat.device),
    }


def _count(kind: str, fraction: float, pools: dict[str, torch.Tensor]) -> int:
    base = "randomize_unimportant" if kind == "randomize_unimportant" else "delete_important"
    return min(round(fraction * len(pools[base])), len(pools[kind]))


@torch.no_grad()
def _perturb_(layer: nn.Module, kind: str, chosen: torch.Tensor, generator: torch.Generator) -> None:
    pi, m, xi = (p.view(-1) for p in (layer.pi, layer.m, layer.xi))  # flat views of the copy's parameters
    if kind == "randomize_unimportant":
        pi[chosen] = 0.0
        xi[chosen] = 0.0
        m[chosen] = torch.randn(len(chosen), generator=generator, dtype=m.dtype, device=m.device)
    else:
        pi[chosen] = 1.0


@keeps_global_rng
@torch.no_grad()
def perturbation_curves(model: nn.Module, data, layer: int | str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        n_networks: int = 10, seed: int = 0, *, perturbations: Sequence[str] = PERTURBATIONS,
                        tol: float = 0.0, batch_size: int = 10_000, progress: bool = False) -> pd.DataFrame:
    """Test error of networks sampled from q after each perturbation of one layer.

    :param model: a trained ensemble (e.g. :class:`~ensemble_nets.models.EnsembleMLP`); left untouched.
    :param data: a :class:`~ensemble_nets.data.Dataset` (its test split is used) or ``(x, y)``.
    :param layer: which layer, ``1``-based or ``"layerN"`` as in :func:`categorize`.
    :param fractions: fractions f in [0, 1] of the category to perturb.
    :param n_networks: networks sampled from the perturbed q per point (>= 1).
    :param seed: seeds the choice of connections, the random values and the sampled networks.
    :param perturbations: a subset of :data:`PERTURBATIONS`.
    :param tol: category tolerance, as in :func:`categorize`.
    :returns: a tidy frame, one row per (perturbation, fraction, network): ``layer``,
        ``perturbation``, ``fraction``, ``n_perturbed``, ``network``, ``error``.
    """
    name, index = resolve_layer(model, layer)
    x, y = test_tensors(data)
    check_n_networks(n_networks)
    unknown = [kind for kind in perturbations if kind not in PERTURBATIONS]
    if unknown or not perturbations:
        raise ValueError(f"perturbations must be a non-empty subset of {PERTURBATIONS}, got {list(perturbations)}")
    bad = [f for f in fractions if not 0.0 <= f <= 1.0]
    if bad or not len(fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in [0, 1], got {list(fractions)}")

    work = copy.deepcopy(model).eval()  # every change happens on this copy
    target = named_layers(work)[index][1]
    original = {p: getattr(target, p).detach().clone() for p in ("pi", "m", "xi")}
    pools = _pools(connection_categories(original["pi"], original["xi"], tol))

    from tqdm.auto import tqdm

    rows = []
    steps = [(kind, f) for kind in perturbations for f in fractions]
    for kind, fraction in tqdm(steps, disable=not progress, desc=f"perturb {name}", unit="point", leave=False):
        n = _count(kind, fraction, pools)
        for k in range(n_networks):
            generator = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + k)
            choice = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + 7919 * k + 1)
            with torch.no_grad():
                for p, value in original.items():
                    getattr(target, p).copy_(value)
            pool = pools[kind]
            chosen = pool[torch.randperm(len(pool), generator=choice, device=pool.device)[:n]]
            _perturb_(target, kind, chosen, choice)
            logits = logits_of(work.sample_network(generator), x, batch_size)
            error = (logits.argmax(-1) != y).double().mean().item()
            rows.append({"layer": name, "perturbation": kind, "fraction": float(fraction), "n_perturbed": n,
                         "network": k, "error": error})
    return pd.DataFrame(rows)


def summarize_perturbations(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (std over sampled networks) of the error per layer, perturbation and fraction."""
    grouped = curves.groupby(["layer", "perturbation", "fraction"], sort=False)
    summary = grouped.agg(n_perturbed=("n_perturbed", "first"), error_mean=("error", "mean"),
                          error_std=("error", "std"), n_networks=("error", "size"))
    return summary.reset_index()
