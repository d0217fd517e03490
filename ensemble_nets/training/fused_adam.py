# SPDX-License-Identifier: MIT
"""AdamW and the projection of every spike-and-slab layer in one fused pass per step.

The reference step of a spike-and-slab layer is AdamW on each of pi, m, xi
followed by the projection (DESIGN.md section 2)::

    theta <- theta (1 - lr wd)                                  decoupled decay (wd = 0 for pi)
    a <- a + (1 - beta1)(g - a),   b <- beta2 b + (1 - beta2) g^2
    theta <- theta - lr / (1 - beta1^t) * a / (sqrt(b) / sqrt(1 - beta2^t) + eps)
    pi <- clip(pi, 0, 1),   xi <- max(xi, 0)

Eager, that is torch's fused AdamW (one pass over the 12 tensors) and then
several passes for the projection and its count. :class:`SpikeSlabAdamW`
does all of it in ONE pass over each layer's tensors, one compiled call per
step for all layers (``torch.compile``: optional, needs a C++ compiler on CPU,
compiles on first use); every other parameter (biases,
plain layers) takes torch's own AdamW. The state (``step``, ``exp_avg``,
``exp_avg_sq`` per parameter) is torch's, so checkpoints load into either.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ensemble_nets.layers.base import SpikeSlabLayer, spike_slab_layers
from ensemble_nets.layers.spike_slab import (
    DeferredGradients,
    SpikeSlabLinear,
    fused_kernel,
    param_grads,
    scaled_moments,
)

__all__ = ["SpikeSlabAdamW", "fusable_layers"]

#: Order of the per-parameter numbers handed to the kernel (one row per pi, m, xi).
_HYPER = ("lr", "weight_decay", "beta1", "beta2", "eps", "step_size", "bias_correction2_sqrt")


def _adamw_project_(pi, m, xi, grad_pi, grad_m, grad_xi, avg_pi, avg_m, avg_xi, sq_pi, sq_m, sq_xi, hyper,
                    decoupled):
    """AdamW on pi, m, xi, then pi to [0, 1] and xi to >= 0, in place; returns the entries the clip moved.

    ``hyper``: ``(3, 7)`` rows of :data:`_HYPER` for pi, m, xi. ``decoupled``: 1.0 for AdamW's decay
    (theta (1 - lr wd)), 0.0 for L2 inside Adam (g + wd theta). One fused pass when compiled.
    """
    new = []
    for i, (p, g, a, b) in enumerate(((pi, grad_pi, avg_pi, sq_pi), (m, grad_m, avg_m, sq_m),
                                      (xi, grad_xi, avg_xi, sq_xi))):
        lr, wd, beta1, beta2, eps, step_size, bc2_sqrt = (hyper[i, j] for j in range(7))
        g = g + (1.0 - decoupled) * wd * p
        p = p * (1.0 - decoupled * lr * wd)
        a_new = a + (1.0 - beta1) * (g - a)
        b_new = beta2 * b + (1.0 - beta2) * g * g
        p = p - step_size * a_new / (b_new.sqrt() / bc2_sqrt + eps)
        a.copy_(a_new)
        b.copy_(b_new)
        new.append(p)
    pi_new, m_new, xi_new = new
    # one sum of the three indicators, so that the count stays in the kernel's single loop
    flags = (pi_new < 0.0).to(torch.int32) + (pi_new > 1.0).to(torch.int32) + (xi_new < 0.0).to(torch.int32)
    moved = flags.sum()
    pi.copy_(pi_new.clamp(0.0, 1.0))
    m.copy_(m_new)
    xi.copy_(xi_new.clamp(min=0.0))
    return moved.to(torch.long)


def _adamw_project_layers_(*tensors):
    """:func:`_adamw_project_` over L layers in one call: ``tensors`` = 12 per layer (pi, m, xi, their
    gradients, exp_avg, exp_avg_sq, as :func:`_adamw_project_` takes them), then ``hyper`` ``(L, 3, 7)``
    and ``decoupled``. One compiled call per step, whatever the depth. Returns the entries moved.
    """
    *tensors, hyper, decoupled = tensors
    moved = None
    for layer in range(len(tensors) // 12):
        count = _adamw_project_(*tensors[12 * layer:12 * layer + 12], hyper[layer], decoupled)
        moved = count if moved is None else moved + count
    return moved


def _adamw_project_deferred_layers_(*tensors):
    """The step of :func:`_adamw_project_layers_` for layers whose backward left its products on the
    output's scale c (:class:`~ensemble_nets.layers.spike_slab.DeferredGradients`: G = dL/dmu / c,
    R = 2 dL/dvar / c^2), with the chain rule and the next moments in the same pass::

        dL/dpi, dL/dm, dL/dxi = param_grads(pi, m, xi, c G, c^2 R / 2) (+ pi.grad, m.grad, xi.grad)
        AdamW and the projection as in _adamw_project_
        mu_out, var_out = (1 - pi) m c, (1 - pi)(xi + pi m^2) c^2          of the updated pi, m, xi

    ``tensors`` = 16 per layer (pi, m, xi, G, R, the three ``.grad`` or None, the three exp_avg, the
    three exp_avg_sq, then mu_out and var_out, written in place), then ``hyper`` ``(L, 3, 7)``,
    ``scales`` ``(L,)`` (c per layer) and ``decoupled``. Returns the entries moved.
    """
    *tensors, hyper, scales, decoupled = tensors
    moved = None
    for layer in range(len(tensors) // 16):
        pi, m, xi, grad_mu, grad_var, *rest = tensors[16 * layer:16 * layer + 16]
        extra, state, (mu_out, var_out) = rest[:3], rest[3:9], rest[9:]
        c = scales[layer]
        grads = param_grads(pi, m, xi, grad_mu * c, grad_var * (0.5 * c * c))
        grads = [g if e is None else g + e for g, e in zip(grads, extra)]
        count = _adamw_project_(pi, m, xi, *grads, *state, hyper[layer], decoupled)
        mu, var = scaled_moments(pi, m, xi, c)
        mu_out.copy_(mu)
        var_out.copy_(var)
        moved = count if moved is None else moved + count
    return moved


def fusable_layers(model: nn.Module) -> list[SpikeSlabLayer]:
    """The spike-and-slab layers whose projection is the plain clip (pi to [0, 1], xi to >= 0).

    A layer that overrides ``project_`` with other constraints keeps its own projection.
    """
    clips = (SpikeSlabLayer.project_, SpikeSlabLinear.project_)  # both clip; the second may fuse it
    return [layer for _, layer in spike_slab_layers(model)
            if isinstance(layer, SpikeSlabLayer) and type(layer).project_ in clips]


class SpikeSlabAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` whose step also projects the spike-and-slab layers, in one fused pass.

    Same parameter groups, options and state as ``AdamW``; ``decoupled=False`` gives Adam with L2
    (``torch.optim.Adam``'s ``weight_decay``). For each layer of ``layers`` whose pi, m and xi are
    all in the optimizer, :meth:`step` runs AdamW on the three and the projection in one pass
    (``torch.compile``, one call per step for all layers); every other parameter goes through
    ``AdamW.step``. The entries moved by
    the projection since the last :meth:`projected` call accumulate in a 0-d tensor (no device sync).

    Inside :meth:`deferred_gradients` (``en.train`` holds it over each epoch) the step goes further for
    every ``SpikeSlabLinear`` with the hand-written gBP: its backward leaves dL/dmu and dL/dvar, and one
    pass applies the chain rule, AdamW, the projection and the moments the next forward reads
    (:class:`~ensemble_nets.layers.spike_slab.DeferredGradients`): the same update, fewer passes over
    the (out x in) tensors.

    :param layers: the spike-and-slab layers this optimizer projects (:func:`fusable_layers`);
        the training loop projects everything else (``project_(model, skip=optimizer.projected_layers)``).
    """

    def __init__(self, params: Iterable, layers: Iterable[SpikeSlabLayer], *, lr: float = 1e-3,
                 decoupled: bool = True, **kwargs) -> None:
        super().__init__(params, lr=lr, foreach=False, fused=False, **kwargs)
        self.decoupled = decoupled
        owned = {id(p) for group in self.param_groups for p in group["params"]}
        self.projected_layers = [layer for layer in layers
                                 if all(id(getattr(layer, n)) in owned for n in ("pi", "m", "xi"))]
        self._triples = [(layer.pi, layer.m, layer.xi) for layer in self.projected_layers]
        self._moved = None
        self._deferred = {id(layer): DeferredGradients() for layer in self.projected_layers
                          if isinstance(layer, SpikeSlabLinear)}
        self._cached_options: dict = {}  # see _options
        self._cached_scalars: dict = {}  # see _scalar
        self._depth = 0  # deferred_gradients() nesting

    @contextlib.contextmanager
    def deferred_gradients(self) -> Iterator[None]:
        """Within: the projected ``SpikeSlabLinear`` layers hand dL/dmu and dL/dvar to :meth:`step`.

        Their ``pi.grad``, ``m.grad`` and ``xi.grad`` then hold only what other terms of the loss give
        (an ELBO's KL, a penalty), or stay None; :meth:`step` adds the mean-field part itself, in the
        same pass as AdamW and the projection, and leaves the moments of the updated parameters for
        the next forward. Hold it over forward, backward and step (``en.train`` holds it over an epoch);
        outside, the layers give ordinary gradients. Layers with ``gbp="autograd"`` are not affected,
        nor is a layer whose pi, m or xi does not require a gradient. Re-entrant.

        Inside, as the price of the fused pass:

        - code that reads or changes ``.grad`` between backward and step (gradient clipping, norms,
          ``GradScaler.unscale_``) sees only the other terms' part: do that outside the context;
        - every backward through a layer counts for its parameters, also ``torch.autograd.grad(loss, x)``
          or ``backward(inputs=...)``: take input gradients outside the context;
        - clear gradients with ``optimizer.zero_grad()`` (``model.zero_grad()`` leaves the handed part);
        - the kept moments notice in-place changes to pi, m, xi (``load_state_dict``, edits under
          ``torch.no_grad()``), not changes through ``.data``: call :meth:`forget_moments` after those.
        """
        self._depth += 1
        if self._depth == 1:
            for layer in self.projected_layers:
                if id(layer) in self._deferred:
                    layer.deferred = self._deferred[id(layer)]
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                for layer in self.projected_layers:
                    if id(layer) in self._deferred:
                        layer.deferred = None
                self.forget_moments()

    def forget_moments(self) -> None:
        """Drop the moments kept for the next forward (needed only after edits to pi, m, xi through ``.data``)."""
        for deferred in self._deferred.values():
            deferred.forget_moments()

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for deferred in self._deferred.values():
            deferred.take()

    def projected(self) -> torch.Tensor:
        """Entries moved by the projection since the last call (0-d int64 tensor), then reset."""
        moved = self._moved
        self._moved = None
        if moved is None:
            return torch.zeros((), dtype=torch.long)
        return moved

    def _hyper(self, triples: list) -> torch.Tensor:
        """``hyper`` ``(L, 3, 7)`` (rows of :data:`_HYPER`) for the parameters of ``triples``, this step
        counted in their state (created for new parameters), as AdamW counts it."""
        steps = []
        for params in triples:
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                steps.append(state["step"])
        torch._foreach_add_(steps, 1.0)  # one call for every step count
        rows = []
        for (lr, wd, beta1, beta2, eps), t in zip(self._options(triples), torch.stack(steps).tolist()):
            rows.append([lr, wd, beta1, beta2, eps, lr / (1.0 - beta1 ** t), (1.0 - beta2 ** t) ** 0.5])
        like = triples[0][0]
        return torch.tensor(rows, dtype=like.dtype, device=like.device).view(-1, 3, len(_HYPER))

    def _options(self, triples: list) -> list:
        """(lr, weight_decay, beta1, beta2, eps) of each parameter of ``triples``; looked up again only when
        the groups change (a schedule's new lr, ``load_state_dict``, another set of layers)."""
        key = (tuple((id(g), float(g["lr"]), float(g["weight_decay"]), *map(float, g["betas"]),
                      float(g["eps"]), g.get("amsgrad"), g.get("maximize")) for g in self.param_groups),
               tuple(id(params[0]) for params in triples))  # floats: a tensor lr changed in place is seen
        cached = self._cached_options.get(key)
        if cached is None:
            group_of = {id(p): group for group in self.param_groups for p in group["params"]}
            cached = []
            for params in triples:
                for p in params:
                    group = group_of[id(p)]
                    if group.get("amsgrad") or group.get("maximize"):
                        raise ValueError("SpikeSlabAdamW does not implement amsgrad or maximize; "
                                         "use torch.optim.AdamW")
                    cached.append((float(group["lr"]), float(group["weight_decay"]), *map(float, group["betas"]),
                                   float(group["eps"])))
            if len(self._cached_options) >= 4:  # the fused and the deferred set of a step, and a schedule's last
                self._cached_options.clear()
            self._cached_options[key] = cached
        return cached

    def _scalar(self, value: float | tuple, like: torch.Tensor) -> torch.Tensor:
        """``value`` as a tensor like ``like``, kept while the same value is asked for (no per-step copy)."""
        key = (value, like.dtype, like.device)
        if key not in self._cached_scalars:
            self._cached_scalars[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
        return self._cached_scalars[key]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        fused, deferred, partial = [], [], []
        for layer, params in zip(self.projected_layers, self._triples):
            handed = self._deferred[id(layer)].take() if id(layer) in self._deferred else None
            if handed is not None:
                deferred.append((layer, params, handed))
            elif all(p.grad is not None for p in params):
                fused.append(params)
            elif any(p.grad is not None for p in params):  # e.g. pi frozen: AdamW steps the rest, then project
                partial.append(layer)
        # as AdamW: no gradient, no step (nor projection); the kernels' parameters are hidden from AdamW.step
        in_kernels = [p for params in fused + [params for _, params, _ in deferred] for p in params]
        kernel_ids = {id(p) for p in in_kernels}
        if any(p.grad is not None for group in self.param_groups for p in group["params"] if id(p) not in kernel_ids):
            held = [(p, p.grad) for p in in_kernels]
            for p, _ in held:
                p.grad = None
            try:
                super().step()
            finally:
                for p, grad in held:
                    p.grad = grad
            for layer in partial:
                self._count(layer.project_().to(torch.long))
        decoupled = 1.0 if self.decoupled else 0.0
        if fused:
            hyper = self._hyper(fused)  # first: creates the state of new parameters
            tensors = []
            for params in fused:
                tensors += [*params, *(p.grad for p in params), *(self.state[p]["exp_avg"] for p in params),
                            *(self.state[p]["exp_avg_sq"] for p in params)]
            self._count(fused_kernel(_adamw_project_layers_)(*tensors, hyper, self._scalar(decoupled, fused[0][0])))
        if deferred:
            triples = [params for _, params, _ in deferred]
            hyper = self._hyper(triples)
            tensors = []
            for layer, params, (grad_mu, grad_var) in deferred:
                tensors += [*params, grad_mu, grad_var, *(p.grad for p in params),
                            *(self.state[p]["exp_avg"] for p in params),
                            *(self.state[p]["exp_avg_sq"] for p in params),
                            *self._deferred[id(layer)].moment_buffers(grad_mu)]
            scales = self._scalar(tuple(self._deferred[id(layer)].scale for layer, _, _ in deferred), triples[0][0])
            self._count(fused_kernel(_adamw_project_deferred_layers_)(*tensors, hyper, scales,
                                                                      self._scalar(decoupled, triples[0][0])))
            for layer, params, _ in deferred:
                self._deferred[id(layer)].keep_moments(*params)
        return loss

    def _count(self, moved: torch.Tensor) -> None:
        self._moved = moved if self._moved is None else self._moved + moved
