# SPDX-License-Identifier: MIT
"""Adam over a :class:`~ensemble_nets.training.stacked.StackedModel`: every run its own rate, decay and step count.

The update is torch's own (``torch.optim.adam.adam``, fused where
``make_optimizer`` would fuse), applied to whole stacked tensors when the runs
agree on their hyperparameters, so run k gets exactly the arithmetic of
``torch.optim.AdamW`` (or ``Adam`` with L2) on run k alone (DESIGN.md section 2:
decoupled decay, theta <- theta - lr (adam_step + wd theta)). Runs that differ
only in their learning rate (a rate sweep) are updated together too, the rate a
``(K, 1, ...)`` tensor in the same formula (equal to torch's to rounding); runs
that differ in anything else go through per-run views.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ensemble_nets.training.stacked import StackedModel

__all__ = ["ParameterStack", "StackedAdam"]


@dataclass
class ParameterStack:
    """Stacked parameters for :class:`StackedAdam` from any module: ``params[name]`` is ``(K, *shape)``.

    A :class:`~ensemble_nets.training.stacked.StackedModel` is one; :meth:`of` wraps any module whose
    parameters carry a leading run axis (e.g. :class:`~ensemble_nets.models.StackedPhaseMLP`).
    """

    params: dict[str, torch.Tensor]
    names: list[str]
    n_runs: int

    @classmethod
    def of(cls, module: torch.nn.Module) -> "ParameterStack":
        params = dict(module.named_parameters())
        sizes = {p.shape[0] for p in params.values()}
        if len(sizes) != 1:
            raise ValueError(f"every parameter needs the same leading run axis, got sizes {sorted(sizes)}")
        return cls(params, list(params), sizes.pop())


class StackedAdam:
    """Adam (decoupled or coupled decay) over a :class:`StackedModel`, run by run identical to ``make_optimizer``.

    Each run k has its own learning rate, weight decay per parameter and decoupling flag; runs that
    agree on all of them (and on the step count) are updated by ONE call of torch's fused Adam over the
    whole stacked tensors, others through per-run views. The update is torch's own
    (``torch.optim.adam.adam``, betas (0.9, 0.999), eps 1e-8), elementwise, so run k's numbers are
    those of ``torch.optim.AdamW`` on run k alone.

    :param stack: the stacked model.
    :param decays: ``decays[k][name]``, the weight decay of parameter ``name`` in run k (0: not decayed).
    :param decoupled: ``decoupled[k]``: AdamW-style decay (True) or L2 inside Adam (False).
    """

    def __init__(self, stack: StackedModel | ParameterStack, decays: Sequence[dict[str, float]],
                 decoupled: Sequence[bool]):
        self.stack = stack
        self.decays, self.decoupled = list(decays), list(decoupled)
        self.exp_avg = {n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in stack.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p, memory_format=torch.contiguous_format)
                           for n, p in stack.params.items()}
        self.steps = [0] * stack.n_runs
        params = list(stack.params.values())
        self.fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)

    def zero_grad(self) -> None:
        for p in self.stack.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: Sequence[float]) -> None:
        """One Adam step of every run, run k at learning rate ``lrs[k]``."""
        from torch.optim.adam import adam

        names = self.stack.names
        rest = [(bool(self.decoupled[k]), self.steps[k], tuple(self.decays[k][n] for n in names))
                for k in range(self.stack.n_runs)]
        if len(set(rest)) == 1 and len({float(lr) for lr in lrs}) > 1:  # a rate sweep: every run at once
            self._step_rates(lrs, *rest[0])
            self.steps = [s + 1 for s in self.steps]
            return
        keys = [(float(lrs[k]), *rest[k]) for k in range(self.stack.n_runs)]
        groups: dict[tuple, list[int]] = {}
        for k, key in enumerate(keys):
            groups.setdefault(key, []).append(k)
        for (lr, decoupled, step, decays), runs in groups.items():
            whole = len(runs) == self.stack.n_runs
            by_decay: dict[float, list[str]] = {}
            for name, wd in zip(names, decays):
                by_decay.setdefault(wd, []).append(name)
            for wd, chosen in by_decay.items():
                tensors = ([self.stack.params[n].detach() for n in chosen], [self.stack.params[n].grad for n in chosen],
                           [self.exp_avg[n] for n in chosen], [self.exp_avg_sq[n] for n in chosen])
                if not whole:  # per-run views of the stacked tensors
                    tensors = tuple([t[k] for t in group for k in runs] for group in tensors)
                device = tensors[0][0].device
                steps = [torch.tensor(float(step), dtype=torch.float32, device=device if self.fused else "cpu")
                         for _ in tensors[0]]
                adam(*tensors, [], steps, fused=self.fused or None, foreach=None if self.fused else True,
                     decoupled_weight_decay=decoupled, amsgrad=False, beta1=0.9, beta2=0.999, lr=lr,
                     weight_decay=wd, eps=1e-8, maximize=False)
        self.steps = [s + 1 for s in self.steps]

    @torch.no_grad()
    def _step_rates(self, lrs: Sequence[float], decoupled: bool, step: int, decays: tuple[float, ...],
                    betas=(0.9, 0.999), eps=1e-8) -> None:
        """Every run at once, run k at rate ``lrs[k]`` (torch's single-tensor Adam with the rate broadcast)::

            decoupled: theta <- theta (1 - lr wd);   else g <- g + wd theta
            a <- a + (1 - b1)(g - a),   b <- b2 b + (1 - b2) g^2
            theta <- theta - lr / (1 - b1^t) * a / (sqrt(b) / sqrt(1 - b2^t) + eps)
        """
        b1, b2 = betas
        t = step + 1
        for name, wd in zip(self.stack.names, decays):
            p = self.stack.params[name].detach()
            grad, avg, sq = self.stack.params[name].grad, self.exp_avg[name], self.exp_avg_sq[name]
            lr = torch.as_tensor([float(v) for v in lrs], dtype=p.dtype, device=p.device).view(-1, *[1] * (p.ndim - 1))
            if wd:
                if decoupled:
                    p.mul_(1.0 - lr * wd)
                else:
                    grad = grad.add(p, alpha=wd)
            avg.lerp_(grad, 1.0 - b1)
            sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
            denom = sq.sqrt().div_(math.sqrt(1.0 - b2 ** t)).add_(eps)
            p.addcdiv_(avg * (lr / (1.0 - b1 ** t)), denom, value=-1.0)

    @torch.no_grad()
    def keep_(self, runs: Sequence[int]) -> None:
        """Keep only the runs ``runs`` (after :meth:`StackedModel.keep_` with the same indices)."""
        runs = list(runs)
        index = torch.as_tensor(runs, dtype=torch.long, device=next(iter(self.exp_avg.values())).device)
        self.exp_avg = {n: t.index_select(0, index) for n, t in self.exp_avg.items()}
        self.exp_avg_sq = {n: t.index_select(0, index) for n, t in self.exp_avg_sq.items()}
        self.decays = [self.decays[k] for k in runs]
        self.decoupled = [self.decoupled[k] for k in runs]
        self.steps = [self.steps[k] for k in runs]

    def run_state(self, k: int) -> dict[str, dict[str, torch.Tensor]]:
        """Run k's Adam state by parameter name: ``{"exp_avg", "exp_avg_sq"}`` copies (and ``step`` in ``steps``)."""
        return {n: {"exp_avg": self.exp_avg[n][k].clone(), "exp_avg_sq": self.exp_avg_sq[n][k].clone()}
                for n in self.stack.names}

    @torch.no_grad()
    def load_run_state_(self, k: int, state: dict[str, dict[str, torch.Tensor]], step: int) -> None:
        """Set run k's Adam state (by parameter name) and step count."""
        for n, entry in state.items():
            self.exp_avg[n][k].copy_(entry["exp_avg"])
            self.exp_avg_sq[n][k].copy_(entry["exp_avg_sq"])
        self.steps[k] = int(step)
