# SPDX-License-Identifier: MIT
"""Perturbation evidence for the connection categories (Li & Huang 2020, DESIGN.md section 2).

For a fraction f of one layer's connections of a category, perturb the law q
of those connections and measure the test error of networks sampled from the
perturbed q. With ``|W| = |(1 - pi) m|`` the magnitude of a connection's mean
weight, ``n_del = round(f * n_important)`` and ``n_rand = round(f * n_unimportant)``
(each capped by its own pool)::

    delete_important         n_del important connections get pi = 1 (removed)
    delete_variable          control: n_del variable connections, chosen at random
    delete_variable_matched  magnitude control: n_del variable connections whose |W| matches,
                             quantile by quantile, the |W| of the important ones deleted
                             (the same connections delete_important deletes for that network)
    delete_largest_variable  magnitude control: the n_del variable connections of largest |W|
    delete_random            control: n_del connections of any category, chosen at random
    randomize_unimportant    n_rand unimportant connections become present with a random value:
                             pi = 0, xi = 0, m ~ N(0, 1) (the scale of m)
    randomize_variable       control: n_rand variable connections, the same random values
    randomize_important      control: n_rand important connections, the same random values

Without the magnitude controls "deleting important connections hurts" could
mean "deleting large weights hurts": important connections have larger mean
weights than variable ones. Each row records ``abs_weight_mean``, the mean |W|
of the connections perturbed, so the matching can be checked.

Quantile matching: with the important magnitudes sorted, ``a_(1) <= ... <= a_(n)``,
and the variable pool sorted, ``b_(1) <= ... <= b_(L)`` (ties in random order),
connection i takes index ``j_i = searchsorted(b, a_(i))``, pushed up just
enough to keep the indices distinct (``j_i >= j_(i-1) + 1``) and down just
enough to fit in the pool (``j_i <= L - n + i``): an order-preserving
assignment with the important ones' quantiles wherever the pool has room.

With ``train_data`` (training inputs, as in
:func:`~ensemble_nets.analysis.categorize`), connections whose input is zero
on every training example are left out of every pool: deleting a connection
that never carries a signal costs nothing by construction.

Any spike-and-slab layer: a connection is one entry of ``pi`` (a linear
weight, or a kernel entry ``(out_channel, in_channel, *offset)`` of a
convolution, counted in ``n_del`` like any other). Deleting a kernel entry
removes it at every position the kernel visits: the sampled networks share
one kernel over the image. Networks are drawn with ``model.sample_network``
when the model has it, else :func:`ensemble_nets.models.sample_network`, so
CNNs and models converted with ``en.to_ensemble`` work as the MLPs do.

Common random numbers: network k of every (perturbation, f) uses the same
generator seed, so at f = 0 all perturbations give the same networks, and the
differences between curves are not sampling noise; the random values of the
three randomizations are the same numbers. The original model is never
modified: the work is done on a deep copy.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ensemble_nets.analysis._common import (
    check_n_networks, draw_network, keeps_global_rng, logits_of, named_layers, resolve_layer, test_tensors,
)
from ensemble_nets.analysis.categories import IMPORTANT, INACTIVE, UNIMPORTANT, VARIABLE, Tolerance, categorize

__all__ = ["PERTURBATIONS", "perturbation_curves", "summarize_perturbations"]

#: Perturbations, in the order the figures show them.
PERTURBATIONS = ("delete_important", "randomize_unimportant", "delete_variable", "delete_random",
                 "delete_variable_matched", "delete_largest_variable", "randomize_variable", "randomize_important")
#: Fractions of the reference experiment: 0, 0.1, ..., 1.
DEFAULT_FRACTIONS = tuple(i / 10 for i in range(11))
#: The pool each perturbation draws from, and the category whose size sets its count.
_POOL = {"delete_important": IMPORTANT, "delete_variable": VARIABLE, "delete_variable_matched": VARIABLE,
         "delete_largest_variable": VARIABLE, "delete_random": None, "randomize_unimportant": UNIMPORTANT,
         "randomize_variable": VARIABLE, "randomize_important": IMPORTANT}
_RANDOMIZE = ("randomize_unimportant", "randomize_variable", "randomize_important")


def _pools(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Flat indices each perturbation draws from (inactive connections are in none)."""
    flat = labels.flatten()
    return {kind: torch.nonzero(flat != INACTIVE if category is None else flat == category).flatten()
            for kind, category in _POOL.items()}


def _count(kind: str, fraction: float, pools: dict[str, torch.Tensor]) -> int:
    base = "randomize_unimportant" if kind in _RANDOMIZE else "delete_important"
    return min(round(fraction * len(pools[base])), len(pools[kind]))


def quantile_match(targets: torch.Tensor, pool_values: torch.Tensor) -> torch.Tensor:
    """Indices into ``pool_values`` of ``len(targets)`` distinct entries matched quantile by quantile.

    Order-preserving: the i-th smallest target gets ``searchsorted(sorted pool, target)``,
    moved up to keep indices distinct and down to stay inside the pool (see the module docstring).
    Ties in ``pool_values`` keep their given order (shuffle the pool first for random tie-breaking).
    """
    n, size = len(targets), len(pool_values)
    if n > size:
        raise ValueError(f"cannot match {n} connections from a pool of {size}")
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=pool_values.device)
    order = torch.sort(pool_values, stable=True).indices  # pool positions, ascending magnitude
    sorted_pool = pool_values[order]
    sorted_targets, target_order = torch.sort(targets, stable=True)
    steps = torch.arange(n, device=pool_values.device)
    ideal = torch.searchsorted(sorted_pool.contiguous(), sorted_targets.contiguous()).clamp(max=size - 1)
    distinct = torch.cummax(ideal - steps, dim=0).values + steps  # j_i >= j_(i-1) + 1
    fitted = torch.minimum(distinct, size - n + steps)  # j_i <= L - n + i, still strictly increasing
    picked = torch.empty(n, dtype=torch.long, device=pool_values.device)
    picked[target_order] = order[fitted]
    return picked


def _choose(kind: str, n: int, pools: dict[str, torch.Tensor], magnitude: torch.Tensor,
            choice_seed: int) -> torch.Tensor:
    """Flat indices of the ``n`` connections ``kind`` perturbs for one network."""
    def shuffled(pool_kind: str) -> torch.Tensor:
        pool = pools[pool_kind]
        generator = torch.Generator(device="cpu").manual_seed(choice_seed)
        return pool[torch.randperm(len(pool), generator=generator).to(pool.device)]

    if kind == "delete_variable_matched":
        deleted = shuffled("delete_important")[:n]  # the connections delete_important removes for this network
        pool = shuffled(kind)
        return pool[quantile_match(magnitude[deleted], magnitude[pool])]
    if kind == "delete_largest_variable":
        pool = shuffled(kind)
        return pool[torch.sort(magnitude[pool], descending=True, stable=True).indices[:n]]
    return shuffled(kind)[:n]


@torch.no_grad()
def _perturb_(layer: nn.Module, kind: str, chosen: torch.Tensor, values: torch.Tensor | None = None) -> None:
    """Delete (pi = 1) or randomize (pi = 0, xi = 0, m = ``values``) the flat entries ``chosen`` of ``layer``."""
    pi, m, xi = (p.view(-1) for p in (layer.pi, layer.m, layer.xi))  # flat views of the copy's parameters
    if kind in _RANDOMIZE:
        if values is None or len(values) < len(chosen):
            raise ValueError(f"{kind} needs a random value for each of the {len(chosen)} connections")
        pi[chosen] = 0.0
        xi[chosen] = 0.0
        m[chosen] = values[:len(chosen)].to(m)
    elif kind in _POOL:
        pi[chosen] = 1.0
    else:
        raise ValueError(f"unknown perturbation {kind!r}; known: {PERTURBATIONS}")


@keeps_global_rng
@torch.no_grad()
def perturbation_curves(model: nn.Module, data, layer: int | str, *, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        n_networks: int = 10, seed: int = 0, perturbations: Sequence[str] = PERTURBATIONS,
                        tol: float | Tolerance = 0.0, train_data=None, batch_size: int = 10_000,
                        progress: bool = False) -> pd.DataFrame:
    """Test error of networks sampled from q after each perturbation of one layer.

    :param model: a trained ensemble (any model holding spike-and-slab layers: an
        :class:`~ensemble_nets.models.EnsembleMLP`, an :class:`~ensemble_nets.models.EnsembleCNN`, ...); left untouched.
    :param data: a :class:`~ensemble_nets.data.Dataset` (its test split is used) or ``(x, y)``.
    :param layer: which layer, ``1``-based or ``"layerN"`` as in :func:`categorize`.
    :param fractions: fractions f in [0, 1] of the category to perturb.
    :param n_networks: networks sampled from the perturbed q per point (>= 1).
    :param seed: seeds the choice of connections, the random values and the sampled networks.
    :param perturbations: a subset of :data:`PERTURBATIONS`.
    :param tol: category tolerance, as in :func:`categorize`.
    :param train_data: training inputs; inactive connections leave every pool (see the module docstring).
    :returns: a tidy frame, one row per (perturbation, fraction, network): ``layer``,
        ``perturbation``, ``fraction``, ``n_perturbed``, ``abs_weight_mean`` (mean |(1 - pi) m| of the
        perturbed connections, NaN when none), ``network``, ``error``.
    """
    name, index = resolve_layer(model, layer)
    x, y = test_tensors(data)
    check_n_networks(n_networks)
    unknown = [kind for kind in perturbations if kind not in PERTURBATIONS]
    if unknown or not perturbations:
        raise ValueError(f"unknown perturbations {unknown}: perturbations must be a non-empty subset of "
                         f"{PERTURBATIONS}, got {list(perturbations)}")
    bad = [f for f in fractions if not 0.0 <= f <= 1.0]
    if bad or not len(fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in [0, 1], got {list(fractions)}")

    labels = categorize(model, tol=tol, data=train_data).labels[name]
    work = copy.deepcopy(model).eval()  # every change happens on this copy
    target = named_layers(work)[index][1]
    original = {p: getattr(target, p).detach().clone() for p in ("pi", "m", "xi")}
    pools = _pools(labels.to(original["pi"].device))
    magnitude = ((1.0 - original["pi"]) * original["m"]).abs().flatten()

    from tqdm.auto import tqdm

    rows = []
    steps = [(kind, f) for kind in perturbations for f in fractions]
    for kind, fraction in tqdm(steps, disable=not progress, desc=f"perturb {name}", unit="point", leave=False):
        n = _count(kind, fraction, pools)
        n_values = round(fraction * len(pools["randomize_unimportant"]))
        for k in range(n_networks):
            generator = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + k)
            for p, value in original.items():
                getattr(target, p).copy_(value)
            chosen = _choose(kind, n, pools, magnitude, seed * 1_000_003 + 7919 * k + 1)
            values = None
            if kind in _RANDOMIZE:  # the same numbers for the three randomizations of network k
                value_generator = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + 7919 * k + 2)
                values = torch.randn(n_values, generator=value_generator, dtype=torch.float64)
            _perturb_(target, kind, chosen, values)
            logits = logits_of(draw_network(work, generator), x, batch_size)
            error = (logits.argmax(-1) != y).double().mean().item()
            rows.append({"layer": name, "perturbation": kind, "fraction": float(fraction), "n_perturbed": n,
                         "abs_weight_mean": magnitude[chosen].double().mean().item() if n else float("nan"),
                         "network": k, "error": error})
    return pd.DataFrame(rows)


def summarize_perturbations(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (std over sampled networks) of the error per layer, perturbation and fraction."""
    grouped = curves.groupby(["layer", "perturbation", "fraction"], sort=False)
    summary = grouped.agg(n_perturbed=("n_perturbed", "first"), error_mean=("error", "mean"),
                          error_std=("error", "std"), n_networks=("error", "size"))
    return summary.reset_index()
