# SPDX-License-Identifier: MIT
"""Deep narrow MLPs with BatchNorm and LeakyReLU: the phase-diagram networks (DESIGN.md 4.2).

:class:`PhaseMLP` is the reference network of Shi, Pan & Dokmanic (2024, official code): an
input ``BatchNorm1d(100)``, 7 blocks ``[Linear(100, 100), BatchNorm1d, LeakyReLU(alpha),
Dropout(p)]`` and ``Linear(100, 10)``, with its separation read after the input BatchNorm,
after every block and at the logits (:meth:`PhaseMLP.representations`).

:class:`DeepMLP` is this project's earlier variant (no input BatchNorm, 8 blocks by default,
features read after each LeakyReLU): ``depth`` hidden blocks, then a linear readout::

    block_l = Linear(n_{l-1}, width) -> BatchNorm1d(width) -> LeakyReLU(alpha) [-> Dropout(p)]
    logits  = Linear(width, n_classes)

``alpha`` is the nonlinearity knob of Shi, Pan & Dokmanic (2024): ``alpha = 0``
is ReLU, ``alpha = 1`` makes every block linear. ``layer="spike_slab"``
builds every weight layer as a :class:`~ensemble_nets.layers.SpikeSlabLinear`
(an ensemble of such networks, whose sampling noise is set by ``xi_max`` and
``pi_init``). :func:`ensemble_nets.analysis.separation` reads one feature per
block, after its LeakyReLU.
"""
from __future__ import annotations

import torch
from torch import nn

from ensemble_nets.layers import SpikeSlabLinear

__all__ = ["DeepMLP", "LAYER_KINDS", "PhaseMLP", "StackedPhaseMLP"]

LAYER_KINDS = ("linear", "spike_slab")


def _check(n_in: int, n_classes: int, width: int, depth: int, alpha: float, dropout: float, layer: str,
           layer_kwargs: dict) -> None:
    if min(n_in, n_classes, width, depth) < 1:
        raise ValueError(f"n_in, n_classes, width and depth must be >= 1, "
                         f"got {n_in}, {n_classes}, {width}, {depth}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (LeakyReLU slope) must lie in [0, 1], got {alpha}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if layer not in LAYER_KINDS:
        raise ValueError(f"layer must be one of {LAYER_KINDS}, got {layer!r}")
    if layer == "linear" and layer_kwargs:
        raise ValueError(f"layer_kwargs {sorted(layer_kwargs)} only apply to layer='spike_slab'")


def _linear(layer: str, n_in: int, n_out: int, bias: bool, layer_kwargs: dict) -> nn.Module:
    """``nn.Linear`` or :class:`SpikeSlabLinear` (``layer``), ``(n_in -> n_out)``."""
    if layer == "linear":
        return nn.Linear(n_in, n_out, bias=bias)
    return SpikeSlabLinear(n_in, n_out, bias, **layer_kwargs)


class DeepMLP(nn.Sequential):
    """``depth`` blocks Linear-BatchNorm-LeakyReLU(alpha)(-Dropout) and a linear readout.

    :param n_in: input width (100 for 10x10 MNIST).
    :param n_classes: output width.
    :param width: hidden width (reference: 100).
    :param depth: number of hidden blocks (reference: 8).
    :param alpha: LeakyReLU negative slope in [0, 1] (0: ReLU, 1: linear).
    :param dropout: dropout probability after every block, in [0, 1).
    :param batchnorm: BatchNorm1d after every hidden linear layer (reference: yes).
    :param layer: ``"linear"`` (``nn.Linear``) or ``"spike_slab"`` (:class:`SpikeSlabLinear`).
    :param layer_kwargs: passed to every :class:`SpikeSlabLinear` (``m_std``, ``xi_max``, ``pi_init``, ...).
    """

    kind = "deep"

    def __init__(self, n_in: int, n_classes: int, *, width: int = 100, depth: int = 8, alpha: float = 0.0,
                 dropout: float = 0.0, batchnorm: bool = True, layer: str = "linear", **layer_kwargs):
        _check(n_in, n_classes, width, depth, alpha, dropout, layer, layer_kwargs)

        def make(n_i, n_o, bias):
            return _linear(layer, n_i, n_o, bias, layer_kwargs)

        modules: list[nn.Module] = []
        for i in range(depth):
            modules.append(make(n_in if i == 0 else width, width, not batchnorm))
            if batchnorm:
                modules.append(nn.BatchNorm1d(width))
            modules.append(nn.LeakyReLU(alpha))
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
        modules.append(make(width, n_classes, True))
        super().__init__(*modules)
        self._args = {"n_in": n_in, "n_classes": n_classes, "width": width, "depth": depth, "alpha": alpha,
                      "dropout": dropout, "batchnorm": batchnorm, "layer": layer, **layer_kwargs}

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, **self._args}


class PhaseMLP(nn.Module):
    """The reference phase-diagram network of Shi, Pan & Dokmanic (2024), with its readout points.

    ::

        h_0 = BatchNorm1d(n_in)(x)                                              "input"
        h_l = Dropout(p)(LeakyReLU(alpha)(BatchNorm1d(W_l h_{l-1} + b_l)))      "block1".."block{depth}"
        z   = W_out h_depth + b_out                                              "logits"

    Reference: ``n_in = 100`` (10x10 MNIST), ``width = 100``, ``depth = 7``, ``n_classes = 10``;
    ``alpha = 0`` is ReLU, ``alpha = 1`` makes every block linear. The separation ``D_l`` is read
    at the ``depth + 2`` points of :meth:`representations` (in eval mode Dropout is the identity,
    so "after the block" and "after its LeakyReLU" coincide).

    :param n_in: input width (100).
    :param n_classes: output width (10).
    :param width: hidden width (100).
    :param depth: number of blocks (7).
    :param alpha: LeakyReLU negative slope in [0, 1].
    :param dropout: dropout probability ``p`` in every block, in [0, 1) (the dropout knob).
    :param layer: ``"linear"`` (``nn.Linear``, with bias as in the reference) or ``"spike_slab"``
        (:class:`SpikeSlabLinear` for every weight layer: the ensemble on the diagram).
    :param layer_kwargs: passed to every :class:`SpikeSlabLinear` (``xi_max``, ``pi_init``, ...).
    """

    kind = "phase"

    def __init__(self, n_in: int = 100, n_classes: int = 10, *, width: int = 100, depth: int = 7,
                 alpha: float = 0.0, dropout: float = 0.0, layer: str = "linear", **layer_kwargs):
        super().__init__()
        _check(n_in, n_classes, width, depth, alpha, dropout, layer, layer_kwargs)
        self.input_norm = nn.BatchNorm1d(n_in)
        self.blocks = nn.ModuleList([
            nn.Sequential(_linear(layer, n_in if i == 0 else width, width, True, layer_kwargs),
                          nn.BatchNorm1d(width), nn.LeakyReLU(alpha), nn.Dropout(dropout))
            for i in range(depth)])
        self.readout = _linear(layer, width, n_classes, True, layer_kwargs)
        self._args = {"n_in": n_in, "n_classes": n_classes, "width": width, "depth": depth, "alpha": alpha,
                      "dropout": dropout, "layer": layer, **layer_kwargs}

    @property
    def model_args(self) -> dict:
        return {"kind": self.kind, **self._args}

    @property
    def readout_points(self) -> list[tuple[str, nn.Module]]:
        """``[(name, module)]``: the module whose output is each representation, in forward order.

        Names ``"input"``, ``"block1"``, ..., ``"logits"``; for forward hooks
        (``module.register_forward_hook``) when the representations are read inside another pass.
        """
        return ([("input", self.input_norm)] + [(f"block{i + 1}", block) for i, block in enumerate(self.blocks)]
                + [("logits", self.readout)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)`` of inputs ``x`` ``(n, n_in)``."""
        return self.representations(x)[-1][1]

    def representations(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Every readout point of one pass, ``[("input", (n, n_in)), ("block1", (n, width)), ...,
        ("logits", (n, n_classes))]``, in the module's current mode (call ``eval()`` for separation)."""
        if x.ndim != 2 or x.shape[1] != self.input_norm.num_features:
            raise ValueError(f"x must be (n, {self.input_norm.num_features}) (flattened 10x10 images for the "
                             f"reference), got {tuple(x.shape)}")
        h = self.input_norm(x)
        out = [("input", h)]
        for i, block in enumerate(self.blocks):
            h = block(h)  # (n, width)
            out.append((f"block{i + 1}", h))
        out.append(("logits", self.readout(h)))
        return out


class StackedPhaseMLP(nn.Module):
    """``K`` plain :class:`PhaseMLP` of one shape as one module: the phase grid's vectorized trainer.

    Every parameter and BatchNorm buffer gains a leading run axis ``K`` (``(K, *shape)``); the
    matrix products are batched (``torch.baddbmm``), so one step trains ``K`` runs with one
    Python-level pass. Runs may differ in ``alpha`` and ``dropout`` (per-run buffers) and in
    everything the caller feeds them (data, labels, learning rate). Slice ``k`` of every gradient
    is run ``k``'s gradient alone (the runs share no parameter). ``to_models()`` copies the runs
    back into :class:`PhaseMLP` for measurement; a test checks the forward and the gradients
    against :class:`PhaseMLP` itself.

    Dropout masks are drawn by the caller (``masks``), so each run can take them from its own
    generator; ``masks=None`` uses no dropout (eval mode or ``p = 0``).

    :param models: ``PhaseMLP`` of one structure with ``layer="linear"`` (their parameters and
        BatchNorm statistics are copied; their ``alpha`` and ``dropout`` may differ).
    """

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("StackedPhaseMLP needs at least one PhaseMLP")
        shape = {k: v for k, v in models[0].model_args.items() if k not in ("alpha", "dropout", "kind")}
        for k, model in enumerate(models):
            if not isinstance(model, PhaseMLP):
                raise ValueError(f"models[{k}] is a {type(model).__name__}; StackedPhaseMLP stacks PhaseMLP only")
            args = {key: v for key, v in model.model_args.items() if key not in ("alpha", "dropout", "kind")}
            if args != shape or args["layer"] != "linear":
                raise ValueError(f"models[{k}] has {args}, models[0] {shape}; stack PhaseMLPs of one shape with "
                                 "layer='linear' (spike-and-slab ones train one at a time)")
        self.depth, self.shape = shape["depth"], shape
        norms = [lambda m: m.input_norm] + [lambda m, i=i: m.blocks[i][1] for i in range(self.depth)]
        linears = [lambda m, i=i: m.blocks[i][0] for i in range(self.depth)] + [lambda m: m.readout]

        def stack(get, name):  # (K, *shape)
            return torch.stack([getattr(get(m), name).detach().clone() for m in models])

        self.norm_weight = nn.ParameterList([nn.Parameter(stack(g, "weight")) for g in norms])  # (K, n)
        self.norm_bias = nn.ParameterList([nn.Parameter(stack(g, "bias")) for g in norms])
        for i, g in enumerate(norms):
            self.register_buffer(f"running_mean{i}", stack(g, "running_mean"))  # (K, n)
            self.register_buffer(f"running_var{i}", stack(g, "running_var"))
        self.weight = nn.ParameterList([nn.Parameter(stack(g, "weight")) for g in linears])  # (K, n_out, n_in)
        self.bias = nn.ParameterList([nn.Parameter(stack(g, "bias")) for g in linears])  # (K, n_out)
        first = models[0].input_norm
        self.momentum, self.eps = first.momentum, first.eps
        self.run_args = [{"alpha": m.model_args["alpha"], "dropout": m.model_args["dropout"]} for m in models]
        self.register_buffer("alpha", torch.tensor([float(m.model_args["alpha"]) for m in models],
                                                        dtype=self.weight[0].dtype)[:, None, None])
        self.register_buffer("dropout", torch.tensor([float(m.model_args["dropout"]) for m in models],
                                                          dtype=self.weight[0].dtype)[:, None, None])

    @property
    def n_runs(self) -> int:
        return self.alpha.shape[0]

    def _norm(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """BatchNorm1d of ``h`` ``(K, B, n)`` with run ``k``'s statistics and affine (torch's kernel and semantics)."""
        n_runs, batch, n = h.shape
        out = nn.functional.batch_norm(
            h.transpose(0, 1).reshape(batch, n_runs * n),  # (B, K*n): run k's feature j is channel k*n + j
            getattr(self, f"running_mean{i}").view(-1), getattr(self, f"running_var{i}").view(-1),
            self.norm_weight[i].view(-1), self.norm_bias[i].view(-1), self.training, self.momentum, self.eps)
        return out.view(batch, n_runs, n).transpose(0, 1).contiguous()  # (K, B, n)

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(K, B, n_classes)`` of inputs ``x`` ``(K, B, n_in)`` (run k reads ``x[k]``).

        :param masks: ``(depth, K, B, width)`` dropout multipliers (0 or 1/(1-p)), or None for none.
        """
        if x.ndim != 3 or x.shape[0] != self.n_runs:
            raise ValueError(f"x must be (K={self.n_runs}, batch, n_in), got {tuple(x.shape)}")
        h = self._norm(0, x)
        for i in range(self.depth):
            h = torch.baddbmm(self.bias[i][:, None], h, self.weight[i].transpose(1, 2))  # (K, B, width)
            h = self._norm(i + 1, h)
            h = torch.lerp(h, torch.relu(h), 1 - self.alpha)  # LeakyReLU(alpha_k) = alpha_k h + (1 - alpha_k) relu(h)
            if masks is not None:
                h = h * masks[i]
        return torch.baddbmm(self.bias[-1][:, None], h, self.weight[-1].transpose(1, 2))  # (K, B, n_classes)

    @torch.no_grad()
    def to_models(self) -> list[PhaseMLP]:
        """The ``K`` runs as :class:`PhaseMLP` (parameters and BatchNorm statistics copied)."""
        out = []
        for k in range(self.n_runs):
            model = PhaseMLP(**{**self.shape, **self.run_args[k]})
            norms = [model.input_norm] + [block[1] for block in model.blocks]
            for i, norm in enumerate(norms):
                norm.weight.copy_(self.norm_weight[i][k])
                norm.bias.copy_(self.norm_bias[i][k])
                norm.running_mean.copy_(getattr(self, f"running_mean{i}")[k])
                norm.running_var.copy_(getattr(self, f"running_var{i}")[k])
            for i, linear in enumerate([block[0] for block in model.blocks] + [model.readout]):
                linear.weight.copy_(self.weight[i][k])
                linear.bias.copy_(self.bias[i][k])
            out.append(model)
        return out
