# SPDX-License-Identifier: MIT
"""Spike-and-slab ensemble layer trained by generalized backpropagation.

Every weight of :class:`SpikeSlabLinear` is the law of
:class:`~ensemble_nets.distributions.SpikeSlab` (``pi``: probability the
connection is ABSENT; ``m``: slab mean; ``xi``: slab VARIANCE). The layer is
a whole ensemble of linear maps. Its forward pass is the mean-field (local
reparameterization) pass of Li & Huang, PRL 125, 178301 (2020), eqs. (2)-(3)::

    mu_ij  = (1 - pi_ij) m_ij                        mean weight
    var_ij = (1 - pi_ij) (xi_ij + pi_ij m_ij^2)      weight variance
    G_i     = sum_j mu_ij a_j
    Delta_i = sqrt( sum_j var_ij a_j^2 + floor )
    h_i     = (G_i + Delta_i eps_i) / sqrt(N_in),    eps_i ~ N(0, 1) per example and unit

Generalized backpropagation (gBP) is backprop through both channels, G and
Delta. :class:`_MeanFieldFunction` writes the gradients of DESIGN.md section 2
by hand; plain autograd through :func:`mean_field_preactivation` gives the same
numbers (the tests check both against each other and against ``gradcheck``).

Shapes: parameters ``(out_features, in_features)`` as in ``nn.Linear``;
inputs ``(..., in_features)``; outputs ``(..., out_features)``.

Parameters, init, projection, the law q, eval modes and ``moments`` come from
:class:`~ensemble_nets.layers.base.SpikeSlabLayer`, shared with the
convolutions (:mod:`ensemble_nets.layers.conv`); this module adds the matrix
product and its hand-written gBP. ``is_spike_slab`` and ``spike_slab_layers``
live in ``base`` and are re-exported here.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ensemble_nets.distributions import spike_slab_moments
from ensemble_nets.layers.base import (
    EVAL_MODES,
    REFERENCE_M_STD,
    SpikeSlabLayer,
    is_spike_slab,
    spike_slab_layers,
)
from ensemble_nets.layers.noise import noisy_output_, standard_normal

__all__ = [
    "DeferredGradients",
    "EVAL_MODES",
    "GBP_IMPLEMENTATIONS",
    "REFERENCE_M_STD",
    "SpikeSlabLinear",
    "is_spike_slab",
    "mean_field_preactivation",
    "spike_slab_layers",
]

#: How the gradients are computed: the hand-written gBP, the same with its elementwise work fused by
#: ``torch.compile`` (optional: needs a C++ compiler on CPU, compiles on first use), or autograd.
GBP_IMPLEMENTATIONS = ("manual", "compiled", "autograd")


def mean_field_preactivation(x, pi, m, xi, eps, floor: float) -> torch.Tensor:
    """Noisy mean-field pre-activation, differentiable by autograd::

        h = (x mu^T + sqrt(x^2 var^T + floor) * eps) / sqrt(N_in)

    :param x: ``(B, N_in)`` layer input.
    :param pi, m, xi: ``(N_out, N_in)`` spike-and-slab parameters.
    :param eps: ``(B, N_out)`` standard normal noise.
    :param floor: added to the variance under the square root (>= 0).
    """
    mu, var = spike_slab_moments(pi, m, xi)
    mean = x @ mu.t()  # (B, N_out)
    delta = torch.sqrt(x.square() @ var.t() + floor)  # (B, N_out)
    return (mean + delta * eps) / math.sqrt(x.shape[-1])


# -- the elementwise work on the (N_out, N_in) parameter tensors --------------------------------
# Each eager torch op is one pass over memory, and each fresh (N_out, N_in) tensor a large
# allocation; beyond twice a plain network's matrix products, these (with Adam over three
# tensors and the projection) are what an ensemble epoch pays. Eager: 4 passes and 3 fresh tensors forward,
# 8 passes and 1 fresh tensor backward (the gradients of m and xi overwrite dL/dmu and dL/dvar).
# Compiled (gbp="compiled"): one fused pass each way, and one for the projection.

def _moments(pi, m, xi):
    """Eager ``pm = pi m``, ``mu = m - pm`` and ``var = (1 - pi)(xi + pm m)``: 4 passes."""
    pm = pi * m
    var = torch.addcmul(xi, pm, m)
    return pm, torch.sub(m, pm), var.addcmul_(pi, var, value=-1.0)


def _param_grads_(pi, m, xi, pm, mu, grad_mu, grad_var):
    """Eager dL/dpi, dL/dm, dL/dxi from dL/dmu and dL/dvar, the last two written over them::

        dL/dpi = m ((1 - 2 pi) m dL/dvar - dL/dmu) - xi dL/dvar      ((1 - 2 pi) m = mu - pm)
        dL/dxi = (1 - pi) dL/dvar
        dL/dm  = (1 - pi) dL/dmu + 2 pi m dL/dxi
    """
    grad_pi = torch.sub(mu, pm).mul_(grad_var).sub_(grad_mu).mul_(m).addcmul_(xi, grad_var, value=-1.0)
    grad_xi = grad_var.addcmul_(pi, grad_var, value=-1.0)
    grad_m = grad_mu.addcmul_(pi, grad_mu, value=-1.0).addcmul_(pm, grad_xi, value=2.0)
    return grad_pi, grad_m, grad_xi


def _fused_moments(pi, m, xi):
    """mu = (1 - pi) m, var = (1 - pi)(xi + pi m^2): one pass when compiled."""
    keep = 1.0 - pi
    return keep * m, keep * (xi + pi * m * m)


def scaled_moments(pi, m, xi, scale):
    """The moments on the output's scale, ``(mu c, var c^2)`` with ``c = scale`` (a 0-d tensor, 1/sqrt(N_in)):
    what :class:`DeferredGradients` keeps, so that the forward needs no pass to scale its output."""
    mu, var = _fused_moments(pi, m, xi)
    return mu * scale, var * (scale * scale)


def param_grads(pi, m, xi, grad_mu, grad_var):
    """dL/dpi, dL/dm, dL/dxi from dL/dmu and dL/dvar (the chain rule of :func:`_fused_moments`), as new tensors::

        dL/dpi = (m^2 (1 - 2 pi) - xi) dL/dvar - m dL/dmu
        dL/dxi = (1 - pi) dL/dvar
        dL/dm  = (1 - pi) dL/dmu + 2 pi m dL/dxi

    Written for ``torch.compile``, which fuses it into the kernel that calls it.
    """
    keep = 1.0 - pi
    pm = pi * m
    grad_xi = keep * grad_var
    grad_pi = ((m - 2.0 * pm) * m - xi) * grad_var - m * grad_mu
    return grad_pi, keep * grad_mu + 2.0 * pm * grad_xi, grad_xi


def _fused_param_grads_(pi, m, xi, grad_mu, grad_var):
    """:func:`param_grads` in one pass when compiled, dL/dm and dL/dxi written over dL/dmu and dL/dvar;
    returns dL/dpi."""
    grad_pi, grad_m, grad_xi = param_grads(pi, m, xi, grad_mu, grad_var)
    grad_mu.copy_(grad_m)
    grad_var.copy_(grad_xi)
    return grad_pi


def _fused_project_(pi, xi):
    """Clip pi to [0, 1] and xi to >= 0 in place; entries moved per run (first axis). Fused when compiled."""
    n_runs = pi.shape[0]
    moved = ((xi < 0).reshape(n_runs, -1).sum(1) + (pi < 0).reshape(n_runs, -1).sum(1)
             + (pi > 1).reshape(n_runs, -1).sum(1))
    pi.copy_(pi.clamp(0.0, 1.0))
    xi.copy_(xi.clamp(min=0.0))
    return moved


_COMPILED: dict[str, Callable] = {}


def fused_kernel(fn: Callable) -> Callable:
    """``torch.compile(fn)``, compiled once per process on first use (shared by the layer and ``train_many``).

    A missing C++ compiler on CPU surfaces at the first call as torch's own error; use ``gbp="manual"``
    (the same numbers, eager) where compiling is not possible.
    """
    if fn.__name__ not in _COMPILED:
        compiled = torch.compile(fn, dynamic=True)  # one kernel for every layer shape

        def call(*tensors):  # plain tensors: dynamo would specialize on the shapes of nn.Parameters
            return compiled(*(t.detach() if isinstance(t, nn.Parameter) or getattr(t, "requires_grad", False)
                              else t for t in tensors))

        _COMPILED[fn.__name__] = call
    return _COMPILED[fn.__name__]


class DeferredGradients:
    """The hand-off between :class:`SpikeSlabLinear`'s gBP and an optimizer that applies the chain rule itself.

    While a layer's ``deferred`` is set (by an optimizer's context, e.g.
    :meth:`~ensemble_nets.training.fused_adam.SpikeSlabAdamW.deferred_gradients`), its backward
    leaves dL/dmu and dL/dvar here (summed over backward calls) and gives pi, m and xi no gradient
    from the mean-field pass; the optimizer's step applies :func:`param_grads` inside its own fused
    pass and leaves the moments of the updated parameters, which the next forward reads instead of
    recomputing them. Those moments are used only while pi, m and xi are the very tensors, at the
    very versions, they were computed from: an in-place change (``load_state_dict``, ``project_``,
    an edit under ``torch.no_grad()``) makes the forward compute them afresh; a change through
    ``.data`` is not seen (it bypasses the version counter): call ``forget_moments()`` after one.

    In this hand-off everything is on the output's scale c = 1/sqrt(N_in) (``scale``): the kept moments
    are ``(mu c, var c^2)`` (:func:`scaled_moments`) and the handed gradients are ``dL/dmu / c`` and
    ``2 dL/dvar / c^2``; the step multiplies them back inside its pass. This saves the forward and the
    backward three passes over the (batch x N_out) activations.
    """

    __slots__ = ("grad_mu", "grad_var", "mu", "var", "scale", "_key", "_buffers")

    def __init__(self) -> None:
        self.grad_mu = self.grad_var = self.mu = self.var = self.scale = self._key = self._buffers = None

    def add_products(self, grad_h: torch.Tensor, x: torch.Tensor, ratio: torch.Tensor, x2: torch.Tensor) -> None:
        """Accumulate one backward's ``grad_h^T x`` and ``ratio^T x2`` (as ``.grad`` accumulates), in buffers
        kept from step to step: the products are written in place, with no fresh (N_out, N_in) tensors."""
        if self.grad_mu is None:
            shape = (grad_h.shape[-1], x.shape[-1])
            if self._buffers is None or self._buffers[0].shape != shape or self._buffers[0].dtype != x.dtype \
                    or self._buffers[0].device != x.device:
                self._buffers = (x.new_empty(shape), x.new_empty(shape))
            self.grad_mu = torch.mm(grad_h.mT, x, out=self._buffers[0])
            self.grad_var = torch.mm(ratio.mT, x2, out=self._buffers[1])
        else:
            self.grad_mu.addmm_(grad_h.mT, x)
            self.grad_var.addmm_(ratio.mT, x2)

    def moment_buffers(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, var)``, the tensors the optimizer writes the next moments into (allocated like ``like``
        on first use or when its shape, dtype or device changes; reused from step to step)."""
        if self.mu is None or self.mu.shape != like.shape or self.mu.dtype != like.dtype \
                or self.mu.device != like.device:
            self.mu, self.var = torch.empty_like(like), torch.empty_like(like)
        return self.mu, self.var

    def take(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The accumulated (dL/dmu, dL/dvar), or None when no backward left any; then cleared."""
        grads = None if self.grad_mu is None else (self.grad_mu, self.grad_var)
        self.grad_mu = self.grad_var = None
        return grads

    @staticmethod
    def _key_of(pi, m, xi) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in (pi, m, xi))

    def keep_moments(self, pi, m, xi) -> None:
        """Mark ``self.mu`` / ``self.var`` (written by the optimizer) as the moments of pi, m, xi as they are now."""
        self._key = self._key_of(pi, m, xi)

    def moments_of(self, pi, m, xi) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The kept moments if they belong to pi, m, xi as they are now, else None."""
        if self._key is None or self._key != self._key_of(pi, m, xi):
            return None
        return self.mu, self.var

    def forget_moments(self) -> None:
        self._key = None


class _MeanFieldFunction(torch.autograd.Function):
    """Hand-written gBP for :func:`mean_field_preactivation` (DESIGN.md section 2), with or without a run axis.

    Shapes: x ``(B, N_in)``, pi/m/xi ``(N_out, N_in)``, eps ``(B, N_out)``; or, for ``train_many``'s
    stacked runs, x ``(K, B, N_in)``, pi/m/xi ``(K, N_out, N_in)``, eps ``(K, B, N_out)`` (batched
    products, run k sees only its own parameters). ``eps=None`` draws the noise inside, from the ``noise``
    source, in the pass that forms h (:func:`~ensemble_nets.layers.noise.noisy_output_`); only
    eps / Delta is kept for the backward. With g = dL/dh, c = 1/sqrt(N_in),
    gS = g c eps / (2 Delta) and x2 = x^2::

        dL/dmu  = (g c)^T x          dL/dvar = gS^T x2
        dL/dpi  = -m dL/dmu + (m^2 (1 - 2 pi) - xi) dL/dvar
        dL/dm   = (1 - pi) (dL/dmu + 2 pi m dL/dvar)
        dL/dxi  = (1 - pi) dL/dvar
        dL/dx   = (g c) mu + 2 x (gS var)

    The elementwise work on the parameters runs as :func:`_moments` / :func:`_param_grads_` (eager,
    few passes and fresh tensors) or, with ``compiled``, as the fused kernels :func:`_fused_moments` /
    :func:`_fused_param_grads_`. With ``deferred`` (a :class:`DeferredGradients`, set by an
    optimizer that applies the chain rule itself) it works on the output's scale, reads the moments
    the optimizer kept when they are current, and hands g^T x and (g eps / Delta)^T x2 to ``deferred``
    instead of returning dL/dpi, dL/dm, dL/dxi (:meth:`_deferred_backward`). First derivatives only:
    for Hessian-vector products or ``torch.func`` use ``gbp="autograd"``.
    """

    @staticmethod
    def forward(ctx, x, pi, m, xi, eps, floor, compiled=False, deferred=None, noise="torch"):
        scale = 1.0 / math.sqrt(x.shape[-1])
        x2 = x.square()
        if deferred is not None:  # moments on the output's scale; the optimizer applies the chain rule
            kept = deferred.moments_of(pi, m, xi)
            if kept is None:
                c = torch.tensor(scale, dtype=pi.dtype, device=pi.device)
                kept = fused_kernel(scaled_moments)(pi, m, xi, c)
            mu, var = kept
            deferred.scale = scale
            h, eps_over_delta = noisy_output_(torch.matmul(x, mu.mT), torch.matmul(x2, var.mT),
                                              floor=floor * scale * scale, noise=noise, eps=eps)  # delta times c
            ctx.save_for_backward(x, x2, mu, var, eps_over_delta)
            ctx.compiled, ctx.deferred = compiled, deferred
            return h
        if compiled:
            mu, var = fused_kernel(_fused_moments)(pi, m, xi)
            factors = (pi, m, xi)
        else:
            pm, mu, var = _moments(pi, m, xi)
            factors = (pi, m, xi, pm)
        h, eps_over_delta = noisy_output_(torch.matmul(x, mu.mT), torch.matmul(x2, var.mT), floor=floor,
                                          scale=scale, noise=noise, eps=eps)  # (..., B, N_out)
        ctx.save_for_backward(x, x2, mu, var, eps_over_delta, *factors)
        ctx.scale, ctx.compiled, ctx.deferred = scale, compiled, deferred
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        if ctx.deferred is not None:
            return _MeanFieldFunction._deferred_backward(ctx, grad_h)
        x, x2, mu, var, eps_over_delta, *factors = ctx.saved_tensors
        grad_mean = grad_h * ctx.scale  # (..., B, N_out): dL/dG
        grad_s = (grad_mean * eps_over_delta).mul_(0.5)  # (..., B, N_out): dL/dS, S = x^2 var^T
        grad_x = grad_pi = grad_m = grad_xi = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.addcmul(torch.matmul(grad_mean, mu), x, torch.matmul(grad_s, var), value=2.0)
        if any(ctx.needs_input_grad[1:4]):
            grad_mu = torch.matmul(grad_mean.mT, x)  # (..., N_out, N_in)
            grad_var = torch.matmul(grad_s.mT, x2)  # (..., N_out, N_in)
            if ctx.compiled:
                grad_pi = fused_kernel(_fused_param_grads_)(*factors, grad_mu, grad_var)
                grad_m, grad_xi = grad_mu, grad_var  # overwritten in place by the kernel
            else:
                grad_pi, grad_m, grad_xi = _param_grads_(*factors, mu, grad_mu, grad_var)
            grad_pi, grad_m, grad_xi = (g if need else None for g, need in
                                        zip((grad_pi, grad_m, grad_xi), ctx.needs_input_grad[1:4]))
        return grad_x, grad_pi, grad_m, grad_xi, None, None, None, None, None

    @staticmethod
    def _deferred_backward(ctx, grad_h):
        """The backward on the output's scale (mu, var, delta saved times c, c^2, c): with
        r = g eps / delta_c, dL/dx = g mu_c + x (r var_c); hands g^T x = dL/dmu / c and r^T x2 = 2 dL/dvar / c^2
        to ``ctx.deferred``, and gives pi, m, xi no gradient."""
        x, x2, mu, var, eps_over_delta = ctx.saved_tensors
        ratio = torch.mul(grad_h, eps_over_delta)  # (..., B, N_out)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.matmul(grad_h, mu).addcmul_(x, torch.matmul(ratio, var))
        if any(ctx.needs_input_grad[1:4]):
            ctx.deferred.add_products(grad_h, x, ratio, x2)
        return grad_x, None, None, None, None, None, None, None, None


class SpikeSlabLinear(SpikeSlabLayer):
    """A linear layer whose every weight is spike-and-slab: an ensemble of ``nn.Linear``.

    ::

        q(w_ij) = pi_ij delta(w_ij) + (1 - pi_ij) Normal(w_ij; m_ij, xi_ij)
        h = W a / sqrt(in_features) (+ bias),   W ~ q

    Training runs the noisy mean-field pass (see the module docstring). In
    eval mode ``eval_mode`` chooses: ``"mean_field"`` (default, the same noisy
    pass, as the reference measures), ``"mean"`` (noiseless, the mean weight
    (1 - pi) m), or ``"sample"`` (ONE weight matrix drawn from q at ``eval()``
    or :meth:`resample`, applied to every batch until the next draw). For a
    fixed member of the ensemble as plain modules use
    :func:`ensemble_nets.models.sample_network`.

    :param int in_features: fan-in N_in.
    :param int out_features: fan-out N_out.
    :param bool bias: add a deterministic bias after scaling (the reference has none).
    :param float m_std: init std of m (reference: sqrt(2/784) in every layer).
    :param float xi_max: init xi ~ xi_max * U(0, 1) (reference: 0.01).
    :param float pi_init: initial value of every pi, in [0, 1] (reference: 0).
    :param float floor: added to the variance under Delta's square root, so that
        the gradient stays finite where every weight of a unit is deterministic.
    :param str eval_mode: one of ``EVAL_MODES``.
    :param str gbp: ``"manual"`` (hand-written gBP, default), ``"compiled"`` (the same, its elementwise
        work and the projection fused by ``torch.compile``: faster on wide layers; needs a C++ compiler
        on CPU and compiles on first use) or ``"autograd"``; same gradients to rounding.
    :param bool decay_pi: weight-decay pi too (the 2022 revision); by default only m and xi are decayed.
    :param str noise: ``"torch"`` (``torch.randn``, default) or ``"counter"`` (same law, a counter-based
        generator fused with the output's arithmetic in one compiled CPU pass: :mod:`ensemble_nets.layers.noise`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        m_std: float = REFERENCE_M_STD,
        xi_max: float = 0.01,
        pi_init: float = 0.0,
        floor: float = 1e-8,
        eval_mode: str = "mean_field",
        gbp: str = "manual",
        decay_pi: bool = False,
        noise: str = "torch",
        device=None,
        dtype=None,
    ) -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got ({in_features}, {out_features})")
        self.in_features, self.out_features = in_features, out_features
        super().__init__((out_features, in_features), in_features, out_features, bias, m_std=m_std,
                         xi_max=xi_max, pi_init=pi_init, floor=floor, eval_mode=eval_mode, decay_pi=decay_pi,
                         noise=noise, device=device, dtype=dtype)
        self.gbp = gbp
        #: Set by an optimizer's context that applies the chain rule itself (:class:`DeferredGradients`).
        self.deferred: DeferredGradients | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["deferred"] = None  # a copy is not armed by the original's optimizer
        return state

    @classmethod
    def from_module(cls, module: nn.Linear, *, init: str = "from_weights", xi_init: float = 0.0,
                    **layer_kwargs) -> "SpikeSlabLinear":
        """The spike-and-slab counterpart of a trained ``nn.Linear`` (or :class:`ScaledLinear`).

        ``init="from_weights"``: pi = 0, xi = ``xi_init``, m = W sqrt(in_features) (the
        1/sqrt(N_in) convention folded in; a ``ScaledLinear``'s W is already on that scale),
        bias copied; with ``xi_init=0`` the mean network computes ``module`` exactly.
        ``init="reference"``: a fresh layer of the same shape (``layer_kwargs`` as in ``__init__``).
        """
        if not isinstance(module, nn.Linear):
            raise TypeError(f"SpikeSlabLinear.from_module takes an nn.Linear, got {type(module).__name__}")
        factory = {"device": module.weight.device, "dtype": module.weight.dtype}
        layer = cls(module.in_features, module.out_features, module.bias is not None, **factory, **layer_kwargs)
        return layer._init_from(module, init, xi_init)

    # -- the map ---------------------------------------------------------------------------
    gbp_kinds = GBP_IMPLEMENTATIONS

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x @ weight.t()  # (..., N_out)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.in_features}), got "
                f"{tuple(x.shape)}; flatten images first (x.flatten(1), or load_dataset(..., shape=\"flat\")) "
                f"or build the layer with in_features={x.shape[-1] if x.dim() else '?'}"
            )

    def _mean_field(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (B, N_in) for any leading shape
        if self.gbp != "autograd":  # the noise is drawn inside, fused with the output's arithmetic
            deferred = self.deferred
            if deferred is not None and not (self.pi.requires_grad and self.m.requires_grad and self.xi.requires_grad):
                deferred = None  # a frozen parameter: ordinary gradients for the others
            h = _MeanFieldFunction.apply(flat, self.pi, self.m, self.xi, None, self.floor, self.gbp == "compiled",
                                         deferred, self.noise)
        else:
            eps = standard_normal(flat.new_empty(flat.shape[0], self.out_features), self.noise)
            h = mean_field_preactivation(flat, self.pi, self.m, self.xi, eps, self.floor)
        return h.reshape(*x.shape[:-1], self.out_features)

    @torch.no_grad()
    def project_(self) -> torch.Tensor:
        """As :meth:`SpikeSlabLayer.project_`; with ``gbp="compiled"`` one fused pass (:func:`_fused_project_`)."""
        if self.gbp != "compiled":
            return super().project_()
        return fused_kernel(_fused_project_)(self.pi.unsqueeze(0), self.xi.unsqueeze(0)).reshape(())

    def _plain_module(self, weight: torch.Tensor) -> nn.Linear:
        # skip_init: no Kaiming init, so building a copy never moves the global RNG
        plain = nn.utils.skip_init(nn.Linear, self.in_features, self.out_features, bias=self.bias is not None,
                                   device=weight.device, dtype=weight.dtype)
        plain.weight.copy_(weight / math.sqrt(self.in_features))
        if self.bias is not None:
            plain.bias.copy_(self.bias)
        return plain

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, eval_mode={self.eval_mode!r}"
        )
