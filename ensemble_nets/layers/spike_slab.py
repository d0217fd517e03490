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
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ensemble_nets.distributions import SpikeSlab, spike_slab_moments

__all__ = [
    "EVAL_MODES",
    "GBP_IMPLEMENTATIONS",
    "REFERENCE_M_STD",
    "SpikeSlabLinear",
    "is_spike_slab",
    "mean_field_preactivation",
    "spike_slab_layers",
]

#: Reference initialization of the slab means, m ~ N(0, 2/784) in every layer.
REFERENCE_M_STD = math.sqrt(2.0 / 784.0)
#: What ``forward`` computes in eval mode; training always uses ``"mean_field"``.
EVAL_MODES = ("mean_field", "mean", "sample")
#: How the gradients are computed: the hand-written gBP or autograd through the forward.
GBP_IMPLEMENTATIONS = ("manual", "autograd")


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


class _MeanFieldFunction(torch.autograd.Function):
    """Hand-written gBP for :func:`mean_field_preactivation` (DESIGN.md section 2).

    With g = dL/dh, c = 1/sqrt(N_in), gS = g c eps / (2 Delta) and x2 = x^2::

        dL/dmu  = (g c)^T x          dL/dvar = gS^T x2
        dL/dpi  = -m dL/dmu + (m^2 (1 - 2 pi) - xi) dL/dvar
        dL/dm   = (1 - pi) (dL/dmu + 2 pi m dL/dvar)
        dL/dxi  = (1 - pi) dL/dvar
        dL/dx   = (g c) mu + 2 x (gS var)

    Written for few passes over memory (in-place updates of fresh tensors):
    on a CPU the elementwise work is a large part of a small layer's cost.
    First derivatives only: for Hessian-vector products or ``torch.func`` use
    ``gbp="autograd"``.
    """

    @staticmethod
    def forward(ctx, x, pi, m, xi, eps, floor):
        keep = 1.0 - pi
        pm = pi * m
        mu = keep * m
        var = torch.addcmul(xi, pm, m).mul_(keep)  # (1 - pi)(xi + pi m^2)
        x2 = x.square()
        delta = torch.addmm(var.new_full((), floor), x2, var.t()).sqrt_()  # (B, N_out)
        scale = 1.0 / math.sqrt(x.shape[-1])
        h = torch.addcmul(x @ mu.t(), delta, eps).mul_(scale)  # (B, N_out)
        ctx.save_for_backward(x, x2, m, xi, keep, pm, mu, var, eps, delta)
        ctx.scale = scale
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        x, x2, m, xi, keep, pm, mu, var, eps, delta = ctx.saved_tensors
        grad_mean = grad_h * ctx.scale  # (B, N_out): dL/dG
        grad_s = (grad_mean * eps).div_(delta).mul_(0.5)  # (B, N_out): dL/dS, S = x^2 var^T
        grad_x = grad_pi = grad_m = grad_xi = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.addcmul(grad_mean @ mu, x, grad_s @ var, value=2.0)
        if any(ctx.needs_input_grad[1:4]):
            grad_mu = grad_mean.t() @ x  # (N_out, N_in)
            grad_var = grad_s.t() @ x2  # (N_out, N_in)
            if ctx.needs_input_grad[1]:  # (m (m - 2 pi m) - xi) dL/dvar - m dL/dmu
                grad_pi = torch.add(m, pm, alpha=-2.0).mul_(m).sub_(xi).mul_(grad_var).addcmul_(m, grad_mu, value=-1.0)
            if ctx.needs_input_grad[2]:  # (1 - pi)(dL/dmu + 2 pi m dL/dvar)
                grad_m = torch.addcmul(grad_mu, pm, grad_var, value=2.0).mul_(keep)
            if ctx.needs_input_grad[3]:
                grad_xi = grad_var.mul_(keep)
        return grad_x, grad_pi, grad_m, grad_xi, None, None


class SpikeSlabLinear(nn.Module):
    """A linear layer whose every weight is spike-and-slab: an ensemble of ``nn.Linear``.

    ::

        q(w_ij) = pi_ij delta(w_ij) + (1 - pi_ij) Normal(w_ij; m_ij, xi_ij)
        h = W a / sqrt(in_features) (+ bias),   W ~ q

    Training runs the noisy mean-field pass (see the module docstring). In
    eval mode ``eval_mode`` chooses: ``"mean_field"`` (default, the same noisy
    pass, as the reference measures), ``"mean"`` (noiseless, the mean weight
    (1 - pi) m), or ``"sample"`` (each call draws ONE weight matrix from q and
    applies it to the whole batch). For a fixed member of the ensemble use
    :meth:`sample_weight` or ``EnsembleMLP.sample_network``.

    :param int in_features: fan-in N_in.
    :param int out_features: fan-out N_out.
    :param bool bias: add a deterministic bias after scaling (the reference has none).
    :param float m_std: init std of m (reference: sqrt(2/784) in every layer).
    :param float xi_max: init xi ~ xi_max * U(0, 1) (reference: 0.01).
    :param float pi_init: initial value of every pi, in [0, 1] (reference: 0).
    :param float floor: added to the variance under Delta's square root, so that
        the gradient stays finite where every weight of a unit is deterministic.
    :param str eval_mode: one of ``EVAL_MODES``.
    :param str gbp: ``"manual"`` (hand-written gBP, default) or ``"autograd"``; same gradients.
    :param bool decay_pi: weight-decay pi too (the 2022 revision); by default only m and xi are decayed.
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
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got ({in_features}, {out_features})")
        if not 0.0 <= pi_init <= 1.0:
            raise ValueError(f"pi_init is a probability and must lie in [0, 1], got {pi_init}")
        if not all(math.isfinite(v) and v >= 0 for v in (m_std, xi_max, floor)):
            raise ValueError(f"m_std, xi_max and floor must be finite and >= 0, got {m_std}, {xi_max}, {floor}")
        self.in_features, self.out_features = in_features, out_features
        self.m_std, self.xi_max, self.pi_init, self.floor = m_std, xi_max, pi_init, floor
        self.eval_mode = eval_mode
        self.gbp = gbp
        #: Parameters that receive weight decay (read by ``ensemble_nets.training.parameter_groups``).
        self.decayed_parameters = ("pi", "m", "xi") if decay_pi else ("m", "xi")
        factory = {"device": device, "dtype": dtype}
        shape = (out_features, in_features)
        self.pi = nn.Parameter(torch.empty(shape, **factory))
        self.m = nn.Parameter(torch.empty(shape, **factory))
        self.xi = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.zeros(out_features, **factory)) if bias else None
        self.reset_parameters()

    # -- options --------------------------------------------------------------------------
    @property
    def eval_mode(self) -> str:
        return self._eval_mode

    @eval_mode.setter
    def eval_mode(self, mode: str) -> None:
        if mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {mode!r}")
        self._eval_mode = mode

    @property
    def gbp(self) -> str:
        return self._gbp

    @gbp.setter
    def gbp(self, kind: str) -> None:
        if kind not in GBP_IMPLEMENTATIONS:
            raise ValueError(f"gbp must be one of {GBP_IMPLEMENTATIONS}, got {kind!r}")
        self._gbp = kind

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Reference init: pi = pi_init, m ~ N(0, m_std^2), xi ~ xi_max U(0, 1)."""
        self.pi.fill_(self.pi_init)
        self.m.normal_(0.0, self.m_std)
        self.xi.uniform_(0.0, 1.0).mul_(self.xi_max)
        if self.bias is not None:
            self.bias.zero_()

    # -- the law of the weights ----------------------------------------------------------
    def distribution(self) -> SpikeSlab:
        """q as a :class:`SpikeSlab` with batch shape ``(out_features, in_features)``."""
        return SpikeSlab(self.pi, self.m, self.xi, validate_args=False)

    @property
    def weight(self) -> torch.Tensor:
        """Mean weight (1 - pi) m, shape ``(out_features, in_features)``, before the 1/sqrt(N_in) scale."""
        return (1.0 - self.pi) * self.m

    @property
    def weight_variance(self) -> torch.Tensor:
        """Weight variance (1 - pi)(xi + pi m^2), shape ``(out_features, in_features)``."""
        return spike_slab_moments(self.pi, self.m, self.xi)[1]

    def sample_weight(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One weight matrix drawn from q (absent with probability pi, else N(m, xi))."""
        return self.distribution().sample(generator=generator)

    # -- forward --------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.in_features}), got "
                f"{tuple(x.shape)}; flatten images first (e.g. x.flatten(1)) or build the layer "
                f"with in_features={x.shape[-1] if x.dim() else '?'}"
            )

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the pre-activation h over q, without the floor::

            E[h_i]   = sum_j (1 - pi_ij) m_ij x_j / sqrt(N_in)
            Var[h_i] = sum_j (1 - pi_ij)(xi_ij + pi_ij m_ij^2) x_j^2 / N_in
        """
        self._check_input(x)
        mu, var = spike_slab_moments(self.pi, self.m, self.xi)
        mean = x @ mu.t() / math.sqrt(self.in_features)
        variance = x.square() @ var.t() / self.in_features
        if self.bias is not None:
            mean = mean + self.bias
        return mean, variance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        mode = "mean_field" if self.training else self.eval_mode
        if mode == "mean_field":
            flat = x.reshape(-1, self.in_features)  # (B, N_in) for any leading shape
            eps = torch.randn(flat.shape[0], self.out_features, dtype=flat.dtype, device=flat.device)
            if self.gbp == "manual":
                h = _MeanFieldFunction.apply(flat, self.pi, self.m, self.xi, eps, self.floor)
            else:
                h = mean_field_preactivation(flat, self.pi, self.m, self.xi, eps, self.floor)
            h = h.reshape(*x.shape[:-1], self.out_features)
        elif mode == "mean":
            h = x @ self.weight.t() / math.sqrt(self.in_features)
        else:  # "sample": validated by the eval_mode setter
            h = x @ self.sample_weight().t() / math.sqrt(self.in_features)
        return h if self.bias is None else h + self.bias

    # -- constraints ----------------------------------------------------------------------
    @torch.no_grad()
    def project_(self) -> torch.Tensor:
        """Project onto the constraints: pi clipped to [0, 1], xi to >= 0.

        Returns the number of entries moved (a 0-d tensor, so no device sync).
        """
        moved = torch.count_nonzero(self.xi < 0) + torch.count_nonzero((self.pi - 0.5).abs_() > 0.5)
        self.pi.clamp_(0.0, 1.0)
        self.xi.clamp_(min=0.0)
        return moved

    def check_constraints(self) -> None:
        """Raise ``ValueError`` if pi leaves [0, 1], xi is negative or anything is not finite."""
        for name in ("pi", "m", "xi"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} holds NaN or inf values")
        if (self.pi < 0).any() or (self.pi > 1).any():
            raise ValueError(
                f"pi must lie in [0, 1] (it is the probability that a connection is absent); "
                f"found values in [{self.pi.min().item():.4g}, {self.pi.max().item():.4g}]"
            )
        if (self.xi < 0).any():
            raise ValueError(f"xi is a variance and must be >= 0; found min {self.xi.min().item():.4g}")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, eval_mode={self.eval_mode!r}"
        )


def is_spike_slab(module: nn.Module) -> bool:
    """True when ``module`` is a spike-and-slab layer: it holds parameters ``pi``, ``m`` and ``xi``."""
    return all(isinstance(getattr(module, name, None), torch.Tensor) for name in ("pi", "m", "xi"))


def spike_slab_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every spike-and-slab layer of ``model``, ``[(module_name, layer), ...]`` from input to output.

    ``module_name`` is the name in ``model.named_modules()`` (``""`` when ``model`` is itself a layer).
    The one place that decides what counts as a spike-and-slab layer (:func:`is_spike_slab`).
    """
    return [(name, module) for name, module in model.named_modules() if is_spike_slab(module)]
