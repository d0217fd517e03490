# SPDX-License-Identifier: MIT
"""What every spike-and-slab layer shares, whatever its linear map.

A spike-and-slab layer holds three tensors shaped like the weight of the
plain layer it generalizes (``nn.Linear``: ``(out, in)``; ``nn.Conv2d``:
``(out, in / groups, kH, kW)``)::

    pi   probability that the connection is ABSENT, in [0, 1]
    m    slab mean
    xi   slab VARIANCE, >= 0

and applies a linear map ``A(x, w)`` (a matrix product, a convolution) with
the 1/sqrt(fan_in) convention of Li & Huang, PRL 125, 178301 (2020)::

    h = A(x, w) / sqrt(fan_in) (+ bias),    w ~ q = pi delta + (1 - pi) Normal(m, xi)

:class:`SpikeSlabLayer` owns the parameters, their initialization, the
projection, the law q, ``sample_weight``, the eval modes and ``moments``.
A subclass only says what ``A`` is (``_apply_weight``), how to check an
input, and which plain module carries one draw (``_plain_module``); it may
override ``_mean_field`` with a faster pass (``SpikeSlabLinear`` has a
hand-written gBP). The generic mean-field pass (DESIGN.md section 2)::

    mean = A(x, mu),   var = A(x^2, var_w),   h = (mean + sqrt(var + floor) eps) / sqrt(fan_in)

is exact for any ``A`` that is linear in ``w`` with each output a sum of
products ``w_j x_j`` over distinct weights (matrix products, convolutions).

Eval modes (training always runs ``"mean_field"``)::

    "mean_field"  the noisy pass above (what the reference measures)
    "mean"        the mean weight (1 - pi) m, no noise
    "sample"      ONE weight drawn from q, fixed until the next eval() or resample()
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ensemble_nets.distributions import SpikeSlab, spike_slab_moments
from ensemble_nets.layers.noise import NOISE_SOURCES, standard_normal

__all__ = ["EVAL_MODES", "REFERENCE_M_STD", "SpikeSlabLayer", "is_spike_slab", "project_counts_", "spike_slab_layers"]

#: Reference initialization of the slab means, m ~ N(0, 2/784) in every layer.
REFERENCE_M_STD = math.sqrt(2.0 / 784.0)
#: What ``forward`` computes in eval mode; training always uses ``"mean_field"``.
EVAL_MODES = ("mean_field", "mean", "sample")


class SpikeSlabLayer(nn.Module):
    """Base of the spike-and-slab layers: parameters ``pi``, ``m``, ``xi`` shaped like a plain weight.

    :param weight_shape: shape of pi, m and xi (the plain layer's ``weight.shape``).
    :param fan_in: N_in of the 1/sqrt(N_in) scale (inputs summed into one output).
    :param n_out: number of output features or channels (size of the bias).
    :param bias: add a deterministic bias after scaling (the reference has none).
    :param m_std: init std of m (reference: sqrt(2/784) in every layer).
    :param xi_max: init xi ~ xi_max * U(0, 1) (reference: 0.01).
    :param pi_init: initial value of every pi, in [0, 1] (reference: 0).
    :param floor: added to the variance under the square root, so that the
        gradient stays finite where every weight of a unit is deterministic.
    :param eval_mode: one of :data:`EVAL_MODES`.
    :param decay_pi: weight-decay pi too (the 2022 revision); by default only m and xi.
    :param noise: where the mean-field pass's noise comes from, one of
        :data:`~ensemble_nets.layers.noise.NOISE_SOURCES`: ``"torch"`` (``torch.randn``, default) or
        ``"counter"`` (a counter-based generator with a compiled CPU kernel: same law, faster on a CPU).
    """

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int, n_out: int, bias: bool = False, *,
                 m_std: float = REFERENCE_M_STD, xi_max: float = 0.01, pi_init: float = 0.0,
                 floor: float = 1e-8, eval_mode: str = "mean_field", decay_pi: bool = False,
                 noise: str = "torch", device=None, dtype=None) -> None:
        super().__init__()
        if not 0.0 <= pi_init <= 1.0:
            raise ValueError(f"pi_init is a probability and must lie in [0, 1], got {pi_init}")
        if not all(math.isfinite(v) and v >= 0 for v in (m_std, xi_max, floor)):
            raise ValueError(f"m_std, xi_max and floor must be finite and >= 0, got {m_std}, {xi_max}, {floor}")
        self.fan_in = int(fan_in)
        self.m_std, self.xi_max, self.pi_init, self.floor = m_std, xi_max, pi_init, floor
        self._drawn: torch.Tensor | None = None  # the weight eval_mode="sample" applies
        self.eval_mode = eval_mode
        self.noise = noise
        #: Parameters that receive weight decay (read by ``ensemble_nets.training.parameter_groups``).
        self.decayed_parameters = ("pi", "m", "xi") if decay_pi else ("m", "xi")
        factory = {"device": device, "dtype": dtype}
        self.pi = nn.Parameter(torch.empty(weight_shape, **factory))
        self.m = nn.Parameter(torch.empty(weight_shape, **factory))
        self.xi = nn.Parameter(torch.empty(weight_shape, **factory))
        self.bias = nn.Parameter(torch.zeros(n_out, **factory)) if bias else None
        self.reset_parameters()

    # -- what a subclass provides ---------------------------------------------------------
    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A(x, w): the layer's linear map, unscaled and without bias."""
        raise NotImplementedError(f"{type(self).__name__} must define _apply_weight")

    def _check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the expected shape and the fix."""

    def _plain_module(self, weight: torch.Tensor) -> nn.Module:
        """The plain torch module computing x -> A(x, weight) / sqrt(fan_in) (+ bias)."""
        raise NotImplementedError(f"{type(self).__name__} must define _plain_module")

    def _add_bias(self, h: torch.Tensor) -> torch.Tensor:
        """h + bias, the bias broadcast over the output's feature or channel axis."""
        return h + self.bias

    # -- options --------------------------------------------------------------------------
    #: The ``gbp`` kinds a subclass implements (how its training pass is differentiated).
    gbp_kinds: tuple[str, ...] = ("autograd",)

    @property
    def gbp(self) -> str:
        """How the training pass is differentiated: one of :attr:`gbp_kinds`."""
        return self._gbp

    @gbp.setter
    def gbp(self, kind: str) -> None:
        if kind not in self.gbp_kinds:
            raise ValueError(f"gbp must be one of {self.gbp_kinds} for {type(self).__name__}, got {kind!r}")
        self._gbp = kind

    _noise = "torch"  # layers pickled before the option existed

    @property
    def noise(self) -> str:
        """Where the mean-field noise comes from: one of :data:`~ensemble_nets.layers.noise.NOISE_SOURCES`."""
        return self._noise

    @noise.setter
    def noise(self, source: str) -> None:
        if source not in NOISE_SOURCES:
            raise ValueError(f"noise must be one of {NOISE_SOURCES}, got {source!r}")
        self._noise = source

    @property
    def eval_mode(self) -> str:
        return self._eval_mode

    @eval_mode.setter
    def eval_mode(self, mode: str) -> None:
        if mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got {mode!r}")
        self._eval_mode = mode
        self._drawn = None  # "sample" draws afresh at its next use

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Reference init: pi = pi_init, m ~ N(0, m_std^2), xi ~ xi_max U(0, 1)."""
        self.pi.fill_(self.pi_init)
        self.m.normal_(0.0, self.m_std)
        self.xi.uniform_(0.0, 1.0).mul_(self.xi_max)
        if self.bias is not None:
            self.bias.zero_()
        self._drawn = None

    @torch.no_grad()
    def _init_from(self, module: nn.Module, init: str, xi_init: float) -> "SpikeSlabLayer":
        """Fill this fresh layer from a plain ``module`` of the same shape (see ``from_module``)."""
        if not (isinstance(xi_init, (int, float)) and math.isfinite(xi_init) and xi_init >= 0):
            raise ValueError(f"xi_init is a variance and must be a finite number >= 0, got {xi_init!r}")
        if init == "from_weights":
            if module.weight.shape != self.m.shape:
                raise ValueError(f"{type(module).__name__} weight has shape {tuple(module.weight.shape)}, "
                                 f"expected {tuple(self.m.shape)}")
            # A plain module applies W; this layer applies m / sqrt(fan_in). Modules that already
            # divide by sqrt(fan_in) (ScaledLinear, ScaledConv2d) say so with applies_fan_in_scale.
            scale = 1.0 if getattr(module, "applies_fan_in_scale", False) else math.sqrt(self.fan_in)
            self.m.copy_(module.weight * scale)
            self.pi.zero_()
            self.xi.fill_(xi_init)
            if self.bias is not None:
                self.bias.copy_(module.bias)
        elif init != "reference":  # "reference": the fresh init of __init__ stands
            raise ValueError(f"init must be 'from_weights' or 'reference', got {init!r}")
        return self.train(module.training)

    # -- the law of the weights ----------------------------------------------------------
    def distribution(self) -> SpikeSlab:
        """q as a :class:`SpikeSlab` with batch shape ``weight_shape``."""
        return SpikeSlab(self.pi, self.m, self.xi, validate_args=False)

    @property
    def weight(self) -> torch.Tensor:
        """Mean weight (1 - pi) m, shape ``weight_shape``, before the 1/sqrt(fan_in) scale."""
        return (1.0 - self.pi) * self.m

    @property
    def weight_variance(self) -> torch.Tensor:
        """Weight variance (1 - pi)(xi + pi m^2), shape ``weight_shape``."""
        return spike_slab_moments(self.pi, self.m, self.xi)[1]

    def sample_weight(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One weight tensor drawn from q (absent with probability pi, else N(m, xi)), shape ``weight_shape``."""
        return self.distribution().sample(generator=generator)

    @torch.no_grad()
    def resample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw the ONE network that ``eval_mode="sample"`` applies until the next ``eval()`` or ``resample()``.

        ``eval()`` calls it for every layer in ``"sample"`` mode, so each ``eval()`` picks a new
        member of the ensemble and every forward pass until then uses that member. Draw after
        changing the parameters in eval mode (e.g. ``load_state_dict``). Returns the weight.
        """
        self._drawn = self.sample_weight(generator)
        return self._drawn

    def plain_module(self, weight: torch.Tensor | None = None) -> nn.Module:
        """A plain torch module (``nn.Linear``, ``nn.Conv2d``, ...) applying ``weight`` with the scale folded in.

        :param weight: shape ``weight_shape``, on the scale of m (default: the mean weight).
        """
        weight = self.weight if weight is None else weight
        if weight.shape != self.m.shape:
            raise ValueError(f"weight must have shape {tuple(self.m.shape)}, got {tuple(weight.shape)}")
        with torch.no_grad():
            return self._plain_module(weight.detach()).train(self.training)

    # -- forward --------------------------------------------------------------------------
    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of each output over q, without the floor::

            E[h]   = A(x, (1 - pi) m) / sqrt(fan_in) (+ bias)
            Var[h] = A(x^2, (1 - pi)(xi + pi m^2)) / fan_in
        """
        self._check_input(x)
        mu, var = spike_slab_moments(self.pi, self.m, self.xi)
        mean = self._apply_weight(x, mu) / math.sqrt(self.fan_in)
        variance = self._apply_weight(x.square(), var) / self.fan_in
        return (mean if self.bias is None else self._add_bias(mean)), variance

    def _mean_field(self, x: torch.Tensor) -> torch.Tensor:
        """Noisy mean-field pre-activation (no bias), differentiable by autograd; eps fresh per output."""
        # The 1/sqrt(fan_in) scale goes into the (small) weights, not the (large) activations:
        # (A(x, mu) + sqrt(A(x^2, var) + floor) eps) / sqrt(n) = A(x, mu/sqrt(n)) + sqrt(A(x^2, var/n) + floor/n) eps
        mu, var = spike_slab_moments(self.pi, self.m, self.xi)
        mean = self._apply_weight(x, mu / math.sqrt(self.fan_in))
        delta = torch.add(self._apply_weight(x.square(), var / self.fan_in), self.floor / self.fan_in).sqrt_()
        return torch.addcmul(mean, delta, standard_normal(mean, self.noise))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        mode = "mean_field" if self.training else self.eval_mode
        if mode == "mean_field":
            h = self._mean_field(x)
        elif mode == "mean":
            h = self._apply_weight(x, self.weight) / math.sqrt(self.fan_in)
        else:  # "sample": validated by the eval_mode setter
            if self._drawn is None:
                self.resample()
            h = self._apply_weight(x, self._drawn) / math.sqrt(self.fan_in)
        return h if self.bias is None else self._add_bias(h)

    def train(self, mode: bool = True) -> "SpikeSlabLayer":
        """As ``nn.Module.train``; entering eval mode with ``eval_mode="sample"`` draws one network."""
        super().train(mode)
        self._drawn = None
        if not mode and self.eval_mode == "sample":
            self.resample()
        return self

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        if self._drawn is not None:  # .to(), .double(), .cuda() move the drawn network too
            self._drawn = fn(self._drawn)
        return module

    # -- constraints ----------------------------------------------------------------------
    @torch.no_grad()
    def project_(self) -> torch.Tensor:
        """Project onto the constraints: pi clipped to [0, 1], xi to >= 0.

        Returns the number of entries moved (a 0-d tensor, so no device sync).
        """
        return project_counts_(self.pi.detach(), self.xi.detach()).reshape(())

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


@torch.no_grad()
def project_counts_(pi: torch.Tensor, xi: torch.Tensor, n_runs: int = 1) -> torch.Tensor:
    """Clip pi to [0, 1] and xi to >= 0 in place; entries moved per run, ``(n_runs,)`` int64.

    ``pi`` and ``xi`` are contiguous, with ``n_runs`` runs along their first axis (``train_many``'s
    stacks) or one. Written for few passes of vectorized kernels (comparisons producing bool
    tensors are slow on CPU): the moved entries are those where the clipped value differs, and
    the clipped value is written exactly (pi: a copy of the clamp; xi: xi - min(xi, 0)).
    """
    # 0/1 flags summed in their own dtype count exactly up to 2^24 (float32) per run; beyond, in float64
    exact = None if pi.numel() // n_runs < 2 ** 24 else torch.float64
    clipped = pi.clamp(0.0, 1.0)
    moved = pi.sub_(clipped).ne_(0).view(n_runs, -1).sum(1, dtype=exact)  # pi is scratch here
    pi.copy_(clipped)
    below = xi.clamp_max(0.0)
    xi.sub_(below)  # xi - min(xi, 0) = max(xi, 0), exactly
    moved += below.ne_(0).view(n_runs, -1).sum(1, dtype=exact)
    return moved.long()


def is_spike_slab(module: nn.Module) -> bool:
    """True when ``module`` is a spike-and-slab layer: it holds parameters ``pi``, ``m`` and ``xi``."""
    return all(isinstance(getattr(module, name, None), torch.Tensor) for name in ("pi", "m", "xi"))


def spike_slab_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every spike-and-slab layer of ``model``, ``[(module_name, layer), ...]`` from input to output.

    ``module_name`` is the name in ``model.named_modules()`` (``""`` when ``model`` is itself a layer).
    The one place that decides what counts as a spike-and-slab layer (:func:`is_spike_slab`).
    """
    return [(name, module) for name, module in model.named_modules() if is_spike_slab(module)]
