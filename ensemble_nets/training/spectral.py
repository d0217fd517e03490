# SPDX-License-Identifier: MIT
"""Spectral parametrization: init and per-parameter learning rates for feature learning at every width.

The spectral condition (Yang, Simon & Bernstein 2023, arXiv 2310.17813; DESIGN.md
section 4.1) asks every layer with fan-in n_in and fan-out n_out for::

    ||W||_2 ~ sqrt(n_out / n_in)     and     ||dW||_2 ~ sqrt(n_out / n_in)

of its EFFECTIVE weight W, the matrix the forward pass multiplies the input by.
This module composes with the layer classes (it never changes them): it knows,
per layer kind, how the raw parameters map to the effective weight, and sets

- the init: effective entries N(0, (gain c / sqrt(n_in))^2), c = min(1, sqrt(n_out/n_in));
  a Gaussian matrix then has ||W||_2 ~ (1 + sqrt(min/max)) sqrt(n_out/n_in) (Bai-Yin);
- the learning rate of every parameter as ``base_lr * lr_mult``, ``base_lr`` in
  spectral units (the normalized step ||dW||_2 / sqrt(n_out/n_in)).

Rules by layer kind (``raw`` = the parameter the optimizer sees)::

                     init of raw            Adam mult         SGD mult              normalized
    nn.Linear            N(0, (g c)^2 / n_in)   1/n_in            n_out/n_in            sqrt(n_out/n_in)
    ScaledLinear         N(0, (g c)^2)          1/sqrt(n_in)      n_out                 sqrt(n_out)
    SpikeSlabLinear  m   N(0, (g c)^2)          1/sqrt(n_in)      n_out                 sqrt(n_out)
                     xi  r (g c)^2 U(0, 1)      k c^2             k c^3 n_in n_out      k c^2 sqrt(n_in n_out)
                     pi  pi_init (unchanged)    1/(c sqrt(n_in))  n_out / c^2           sqrt(n_out)/c
    bias (n_in = 1)      0                      1                 n_out                 sqrt(n_out)
    ModeLinear  modes    N(0, g^2)              1/sqrt(P)         (not derived)         sqrt(n) (n: its width)
                strengths N(0, (g / (s n_in))^2) 1/(s n_in)       (not derived)         1/(s n_in)

For a mode layer W = s modes_out diag(strengths) modes_in^T (s = 1 or 1/sqrt(n_in), its ``scale``)
with O(1) mode entries, ||modes_out|| ~ sqrt(n_out) and ||modes_in|| ~ sqrt(n_in), so strengths of
size 1/(s n_in) give ||W||_2 ~ sqrt(n_out/n_in); the width sits in the strengths, and a mode tensor
shared by two layers (``ModeMLP(shared=True)``) gets the same rule from both.

(g: ``gain``, r: ``xi_ratio``, P: number of modes, k = :data:`XI_LR_SCALE` = 1/8). Effective weights:
``weight`` (nn.Linear), ``weight / sqrt(n_in)`` (ScaledLinear), the mean ``(1 - pi) m / sqrt(n_in)``
(SpikeSlabLinear).

Adam's step is sign-like and low rank: a rank-one sign matrix has ||.||_2 =
sqrt(n_in n_out), hence Adam mult = normalized mult / sqrt(n_in n_out). The
normalized column is the target spectral norm of the raw step, used by
:class:`SpectralSGD` (W <- W - lr mult G / ||G||_2). The spike-and-slab rows
are derived in docs/spectral.md ("Derivation"). xi has the units of m^2 (init c^2) and
moves the weight FLUCTUATION N_ij = sqrt(var_ij / n_in) eps_ij, whose signs eps are random:
an update of N is never aligned with the inputs, so ||dN||_2 ~ (entry) (sqrt(n_in) + sqrt(n_out))
where the aligned (rank-one) update of the mean has ||.||_2 = (entry) sqrt(n_in n_out). The xi
step is therefore k lr c^2 per entry, width-free in hidden layers: it moves each unit's noise
variance sum_j var_ij a_j^2 / n_in by k lr mean(a^2) at every width. (Before 2026-12 the rule was
c/sqrt(n_in), from matching d sqrt(xi) to dm entry by entry; it froze the noise channel of wide
layers: the hidden layer's noise changed as width^-0.44 after one step.) The constant k = 1/8 makes
the hidden-layer rate equal to the old rule's at width 64; on 200 Adam steps it trained to a lower
loss than k = 1, whose steps of lr c^2 move xi by its own size (docs/spectral.md).
pi multiplies m (step dm / m ~ dm / c); the pi Adam rate 1/sqrt(min(n_in, n_out)) never exceeds
``base_lr``, so pi's per-step change stays O(1) or smaller at every width and the projection keeps
it in [0, 1].

Symbols as in DESIGN.md: ``pi`` is the probability that a connection is ABSENT,
``xi`` the slab VARIANCE.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ensemble_nets.layers import ModeLinear, ScaledLinear, SpikeSlabLinear
from ensemble_nets.training.optim import project_

__all__ = ["OPTIMIZERS", "PARAMETRIZATIONS", "SHRINK_MODES", "SpectralSGD", "XI_LR_SCALE", "effective_noise",
           "effective_weight", "init_scale", "lr_multipliers", "make_parametrized_optimizer", "spectral_init_",
           "spectral_layers", "spectral_param_groups", "train_steps"]

#: ``standard``: the layers' own init and one learning rate; ``spectral``: this module's rules.
PARAMETRIZATIONS = ("standard", "spectral")
#: Which layers take the factor c = min(1, sqrt(n_out/n_in)) at init: every layer (the paper),
#: all but the first (whose fan-in, the data dimension, does not grow with width), or none.
SHRINK_MODES = ("all", "not_input", "none")
#: The O(1) constant k of the xi rule (Adam mult k c^2): 1/8 equals the pre-2026-12 rule c/sqrt(n_in)
#: in a hidden layer of width 64 and keeps that rate at every width.
XI_LR_SCALE = 0.125
#: Optimizers the multipliers are derived for (``normalized``: :class:`SpectralSGD`).
OPTIMIZERS = ("adam", "sgd", "normalized")


def init_scale(n_in: int, n_out: int, shrink: bool = True) -> float:
    """c = min(1, sqrt(n_out / n_in)): the init factor of the spectral condition (1 with ``shrink=False``).

    ``shrink=False`` is muP's fan-in init for layers narrower than their input: it keeps the
    per-coordinate scale of outputs for inputs not aligned with W (a random W of std 1/sqrt(n_in)
    maps x to coordinates of size |x| / sqrt(n_in)) at the price of ||W||_2 ~ 1 > sqrt(n_out/n_in).
    The two agree once n_out >= n_in, e.g. an input layer 784 -> width at widths >= 784.
    """
    return min(1.0, math.sqrt(n_out / n_in)) if shrink else 1.0


def _kind(layer: nn.Module) -> str | None:
    if isinstance(layer, SpikeSlabLinear):
        return "spike_slab"
    if isinstance(layer, ModeLinear):
        return "modes"
    if isinstance(layer, ScaledLinear):  # before nn.Linear: ScaledLinear subclasses it
        return "scaled"
    if isinstance(layer, nn.Linear):
        return "linear"
    return None


def _shrinks(model: nn.Module, shrink: str) -> list[bool]:
    if shrink not in SHRINK_MODES:
        raise ValueError(f"shrink must be one of {SHRINK_MODES}, got {shrink!r}")
    count = len(list(spectral_layers(model)))
    return [shrink == "all" or (shrink == "not_input" and i > 0) for i in range(count)]


def spectral_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, layer)`` for every layer this module has a rule for, in forward order."""
    for name, module in model.named_modules():
        if _kind(module) is not None:
            yield name or "layer", module


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The matrix the forward pass applies, ``(n_out, n_in)``: the MEAN weight for a spike-and-slab layer."""
    kind = _kind(layer)
    if kind == "linear":
        return layer.weight
    if kind == "scaled":
        return layer.weight / math.sqrt(layer.in_features)
    if kind == "spike_slab":
        return layer.weight / math.sqrt(layer.in_features)
    if kind == "modes":
        return layer.weight * layer.scale
    raise ValueError(f"no spectral rule for {type(layer).__name__}; supported: nn.Linear, ScaledLinear, "
                     f"SpikeSlabLinear, ModeLinear")


def effective_noise(layer: SpikeSlabLinear, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw of the weight fluctuation of a spike-and-slab layer, ``(n_out, n_in)``::

        N_ij = sqrt(var_ij / n_in) eps_ij,   var = (1 - pi)(xi + pi m^2),   eps ~ N(0, 1)

    (a sampled network's weight, to second order, is effective_weight + N).
    """
    var = layer.weight_variance.detach()
    eps = torch.randn(var.shape, generator=generator, dtype=var.dtype, device=var.device)
    return (var / layer.in_features).sqrt() * eps


@torch.no_grad()
def spectral_init_(model: nn.Module, *, gain: float = 1.0, xi_ratio: float = 2.0,
                   shrink: str = "not_input") -> nn.Module:
    """Re-initialize every supported layer of ``model`` in place so that ||W||_2 ~ sqrt(n_out/n_in).

    :param gain: multiplies the init std of every effective weight (sqrt(2) suits deep ReLU stacks).
    :param xi_ratio: spike-and-slab slab variances xi ~ xi_ratio (gain c)^2 U(0, 1): the default 2 gives
        E[xi] = Var[m], so the fluctuation matrix has the mean weight's spectral scale. pi keeps
        ``pi_init``.
    :param shrink: which layers take the factor c = min(1, sqrt(n_out/n_in)) (:data:`SHRINK_MODES`):
        ``"all"`` is the paper's rule; ``"not_input"`` keeps the fan-in init 1/sqrt(n_in) in the first
        layer, whose fan-in is the data dimension (see :func:`init_scale`).
    :returns: ``model``.
    """
    if not (gain > 0 and math.isfinite(gain)):
        raise ValueError(f"gain must be a positive number, got {gain!r}")
    if not (xi_ratio >= 0 and math.isfinite(xi_ratio)):
        raise ValueError(f"xi_ratio must be >= 0, got {xi_ratio!r}")
    done: set[int] = set()  # shared mode tensors are initialized once
    for (_, layer), shrunk in zip(spectral_layers(model), _shrinks(model, shrink)):
        n_in, n_out = layer.in_features, layer.out_features
        std = gain * init_scale(n_in, n_out, shrunk)
        kind = _kind(layer)
        if kind == "modes":
            for modes in (layer.modes_in, layer.modes_out):
                if id(modes) not in done:
                    modes.normal_(0.0, gain)
                    done.add(id(modes))
            layer.strengths.normal_(0.0, gain / (layer.scale * n_in))
            continue
        if kind == "linear":
            layer.weight.normal_(0.0, std / math.sqrt(n_in))
        elif kind == "scaled":
            layer.weight.normal_(0.0, std)
        else:
            layer.pi.fill_(layer.pi_init)
            layer.m.normal_(0.0, std)
            layer.xi.uniform_(0.0, 1.0).mul_(xi_ratio * std ** 2)
        if layer.bias is not None:
            layer.bias.zero_()
    return model


def lr_multipliers(layer: nn.Module, optimizer: str = "adam", shrink: bool = True) -> dict[str, float]:
    """Learning-rate multiplier of every parameter of ``layer`` (see the module table).

    ``shrink`` must match the init's (:func:`spectral_init_`): c is the scale of m.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    kind = _kind(layer)
    if kind is None:
        raise ValueError(f"no spectral rule for {type(layer).__name__}")
    n_in, n_out = layer.in_features, layer.out_features
    if kind == "modes":
        if optimizer == "sgd":
            raise ValueError("no SGD rule is derived for mode layers; use optimizer='adam' or 'normalized'")
        strengths = 1.0 / (layer.scale * n_in)
        if optimizer == "adam":
            return {"strengths": strengths, "modes_in": 1 / math.sqrt(layer.n_modes),
                    "modes_out": 1 / math.sqrt(layer.n_modes)}
        return {"strengths": strengths, "modes_in": math.sqrt(n_in), "modes_out": math.sqrt(n_out)}
    c = init_scale(n_in, n_out, shrink)
    # Target spectral norm of the raw parameter's step, per unit base_lr.
    if kind == "linear":
        norm = {"weight": math.sqrt(n_out / n_in)}
        sgd = {"weight": n_out / n_in}
    elif kind == "scaled":
        norm = {"weight": math.sqrt(n_out)}
        sgd = {"weight": float(n_out)}
    else:
        norm = {"m": math.sqrt(n_out), "xi": XI_LR_SCALE * c * c * math.sqrt(n_in * n_out), "pi": math.sqrt(n_out) / c}
        sgd = {"m": float(n_out), "xi": XI_LR_SCALE * c ** 3 * n_in * n_out, "pi": n_out / (c * c)}
    if optimizer == "normalized":
        mult = dict(norm)
    elif optimizer == "adam":
        mult = {k: v / math.sqrt(n_in * n_out) for k, v in norm.items()}
    else:
        mult = dict(sgd)
    if layer.bias is not None:
        mult["bias"] = {"normalized": math.sqrt(n_out), "adam": 1.0, "sgd": float(n_out)}[optimizer]
    return mult


def spectral_param_groups(model: nn.Module, base_lr: float, optimizer: str = "adam", *,
                          weight_decay: float = 0.0, parametrization: str = "spectral",
                          shrink: str = "not_input") -> list[dict]:
    """One optimizer group per parameter: ``lr = base_lr * lr_mult``.

    Decay goes to the parameters each layer lists in ``decayed_parameters`` (m and xi; the
    weight), decoupled as in the reference (the step shrinks theta by ``lr * weight_decay``).
    With ``parametrization="standard"`` every multiplier is 1 (one global learning rate);
    ``shrink`` must match :func:`spectral_init_`'s.
    Parameters of unsupported modules get multiplier 1 and a warning-free group ``"other"``.

    Each group carries ``name`` (``layer.param``), ``lr_mult`` and, for :class:`SpectralSGD`, ``scale``.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise ValueError(f"base_lr must be a positive number, got {base_lr!r}")
    groups, seen = [], set()
    for (name, layer), shrunk in zip(spectral_layers(model), _shrinks(model, shrink)):
        mult = lr_multipliers(layer, optimizer, shrunk)
        decayed = set(getattr(layer, "decayed_parameters", ("weight",)))
        params = dict(layer.named_parameters(recurse=False))
        if _kind(layer) == "modes":  # bound (shared) mode tensors are parameters of the model, not the layer
            params.update({k: getattr(layer, k) for k in ("modes_in", "modes_out") if k not in params})
            decayed |= {"modes_in", "modes_out"}
        for pname, param in params.items():
            if id(param) in seen:
                continue
            m = mult[pname] if parametrization == "spectral" else 1.0
            groups.append({"params": [param], "lr": base_lr * m, "lr_mult": m, "scale": m,
                           "weight_decay": weight_decay if pname in decayed else 0.0, "name": f"{name}.{pname}"})
            seen.add(id(param))
    other = [p for p in model.parameters() if id(p) not in seen]
    if other:
        groups.append({"params": other, "lr": base_lr, "lr_mult": 1.0, "scale": 1.0, "weight_decay": 0.0,
                       "name": "other"})
    if optimizer == "normalized":  # SpectralSGD: lr stays the base rate, the multiplier is the scale
        for group in groups:
            group["lr"] = base_lr
    return groups


class SpectralSGD(torch.optim.Optimizer):
    """Spectrally normalized steepest descent: every matrix moves by a fixed spectral norm::

        W <- (1 - lr weight_decay) W - lr scale G / ||G||_2

    ``scale`` comes per group (``spectral_param_groups(..., optimizer="normalized")`` puts the
    target sqrt(n_out/n_in) of the effective weight in raw units there), so ||dW||_2 = lr scale
    exactly. Vectors (biases) use the Euclidean norm. A zero gradient leaves the parameter alone.
    """

    def __init__(self, params, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "scale": 1.0})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, scale, decay = group["lr"], group["scale"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                norm = torch.linalg.matrix_norm(g, ord=2) if g.dim() == 2 else g.norm()
                if decay:
                    p.mul_(1.0 - lr * decay)
                if norm > 0:
                    p.add_(g / norm, alpha=-lr * scale)
        return loss


def make_parametrized_optimizer(model: nn.Module, parametrization: str, lr: float, optimizer: str = "adam", *,
                                weight_decay: float = 0.0, shrink: str = "not_input",
                                fused: bool | None = None) -> torch.optim.Optimizer:
    """The optimizer of ``parametrization`` (AdamW, SGD or :class:`SpectralSGD`) with its groups.

    ``fused`` is passed to ``torch.optim.AdamW`` (True: one fused kernel per step, the same update to
    float rounding; its step took a third of the default's time on CPU at width 2048).
    Note: the groups' ``lr`` already holds ``lr * lr_mult``; a schedule must scale it, not overwrite it.
    """
    groups = spectral_param_groups(model, lr, optimizer, weight_decay=weight_decay, parametrization=parametrization,
                                   shrink=shrink)
    if optimizer == "adam":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    return SpectralSGD(groups, lr=lr)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                n_steps: int, batch_size: int, generator: torch.Generator) -> list[float]:
    """``n_steps`` optimizer steps on mini-batches of ``(x, y)``; the mini-batch loss of every step.

    Batches are consecutive slices of a fresh permutation (from ``generator``) each pass over the
    data; every step is cross-entropy, backward, ``optimizer.step()`` and the projection of pi and xi
    (:func:`~ensemble_nets.training.optim.project_`). A non-finite loss ends the run: the list is then
    shorter than ``n_steps`` and ends with that loss.

    :param x: ``(n, n_features)`` inputs on the model's device; ``y``: ``(n,)`` integer labels.
    """
    if n_steps < 1 or batch_size < 1:
        raise ValueError(f"need n_steps >= 1 and batch_size >= 1, got {n_steps} and {batch_size}")
    if x.shape[0] < batch_size:
        raise ValueError(f"x holds {x.shape[0]} examples, fewer than batch_size {batch_size}; lower batch_size")
    model.train()
    losses: list[float] = []
    order, start = torch.randperm(x.shape[0], generator=generator), 0
    while len(losses) < n_steps:
        if start + batch_size > order.numel():  # a new pass: fresh order, no short last batch
            order, start = torch.randperm(x.shape[0], generator=generator), 0
        pick = order[start:start + batch_size].to(x.device)  # (batch_size,)
        start += batch_size
        loss = F.cross_entropy(model(x[pick]), y[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        project_(model)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
    return losses
