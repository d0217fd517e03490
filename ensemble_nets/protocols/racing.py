# SPDX-License-Identifier: MIT
"""The race between pathways (Saxe, Sodhani & Lewallen, ICML 2022; DESIGN.md 4.3; issue 12 item 6a).

A gated deep linear network in which a shared pathway and private per-domain pathways can each
solve the task, trained by full-batch gradient descent and compared with the reduced theory of
:mod:`ensemble_nets.analysis.theory.gdln` (one ODE term per pathway)::

    x (items) --shared_in-->  shared (H)     --shared_out-->     y (features)    gated on for domains m < D
    x (items) --private_in{m}--> private{m} (H) --private_out{m}--> y            gated on for domain m only

``M`` domains each present the same ``n_items = 4`` one-hot items with the hierarchical targets of
:func:`ensemble_nets.data.routing.hierarchical_targets` (singular values 13.60, 6.40, 3, 3). Every
domain has its own private pathway; the shared pathway serves the first ``D`` (``n_shared``)
domains. The prediction for an example of domain ``m`` is the sum of the pathways gated on for
it, so a shared domain's solution can be carried by either pathway: they race. The shared
pathway's gradient sums the errors of ``D`` domains, a private one's a single domain's, so
the shared pathway learns ``D`` times faster and, from a small initialisation, carries the
solution (:func:`ensemble_nets.analysis.theory.gdln.race_outcome`).

Initialisations: ``"aligned"`` (every weight ``gain R[:, :r] V^T`` or ``gain U R[:, :r]^T`` with a
random orthogonal ``R`` per pathway: each pathway is ``gain^2 U V^T``, the theory is exact up to
the step size) or ``"orthogonal"`` (``torch.nn.init``-style random orthogonal weights of scale
``gain``: the theory is then an approximation, started from the measured initial strengths).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ensemble_nets.analysis.theory.gdln import integrate_race_ode, race_outcome
from ensemble_nets.data.routing import hierarchical_targets
from ensemble_nets.layers.gated import GatedDeepLinearNetwork
from ensemble_nets.protocols.gated import train_gdln

__all__ = ["INITS", "RaceBatch", "RaceConfig", "pathway_layer_scales", "pathway_strengths", "race_batch",
           "race_network", "race_sweep", "run_race"]

INITS = ("aligned", "orthogonal")


@dataclass(frozen=True)
class RaceConfig:
    """One race. Defaults: 7 domains, all served by the shared pathway, small aligned init."""

    n_domains: int = 7        # M: domains, each with a private pathway
    n_shared: int | None = None  # D: domains the shared pathway is gated on for (the first D); None: all
    hidden: int = 16          # H: width of every hidden node
    gain: float = 0.1         # scale of every weight at init (pathway strength gain^2 when aligned)
    private_gain: float | None = None  # scale of the private pathways' weights (None: gain)
    init: str = "aligned"     # one of INITS
    lr: float = 0.01          # full-batch gradient-descent step
    n_steps: int = 3000       # gradient steps
    record_every: int = 50    # steps between recorded strengths
    seed: int = 0

    def __post_init__(self):
        if self.n_shared is None:
            object.__setattr__(self, "n_shared", self.n_domains)
        if self.n_domains < 1 or not 1 <= self.n_shared <= self.n_domains:
            raise ValueError(f"need n_domains >= 1 and 1 <= n_shared <= n_domains, got n_domains={self.n_domains}, "
                             f"n_shared={self.n_shared}")
        if self.hidden < 4:
            raise ValueError(f"hidden={self.hidden} must be >= 4 (the number of items) to carry every mode")
        if not self.gain > 0 or (self.private_gain is not None and not self.private_gain > 0):
            raise ValueError(f"gain={self.gain} and private_gain={self.private_gain} must be positive")
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r}; use one of {INITS}")
        if not self.lr > 0 or self.n_steps < 1 or self.record_every < 1:
            raise ValueError(f"need lr > 0, n_steps >= 1, record_every >= 1; got {self.lr}, {self.n_steps}, "
                             f"{self.record_every}")

    @property
    def membership(self) -> np.ndarray:
        """``(1 + M, M)`` gating of the pathways (shared first, then private0..) by domain."""
        out = np.zeros((1 + self.n_domains, self.n_domains))
        out[0, :self.n_shared] = 1.0
        out[1:] = np.eye(self.n_domains)
        return out


@dataclass
class RaceBatch:
    """The full batch: one example per (domain, item), ``P = M * 4``."""

    inputs: dict[str, torch.Tensor]      # x: (P, 4) one-hot items
    targets: dict[str, torch.Tensor]     # y: (P, 7)
    node_gates: dict[str, torch.Tensor]  # shared, private{m}: (P,)
    domain: torch.Tensor                 # (P,)


def race_batch(cfg: RaceConfig, *, dtype: torch.dtype = torch.float64) -> RaceBatch:
    """Every (domain, item) example with its pathway gates."""
    y_items = hierarchical_targets(dtype=dtype)                      # (7, 4), column i = item i
    n_items = y_items.shape[1]
    domain = torch.arange(cfg.n_domains).repeat_interleave(n_items)  # (P,)
    item = torch.arange(n_items).repeat(cfg.n_domains)              # (P,)
    gates = {"shared": (domain < cfg.n_shared).to(dtype)}
    gates.update({f"private{m}": (domain == m).to(dtype) for m in range(cfg.n_domains)})
    return RaceBatch({"x": torch.eye(n_items, dtype=dtype)[item]}, {"y": y_items.T[item]}, gates, domain)


def _task_svd(dtype=torch.float64):
    u, s, vh = torch.linalg.svd(hierarchical_targets(dtype=dtype), full_matrices=False)
    return u, s, vh.T


def _haar(n_rows: int, n_cols: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(max(n_rows, n_cols), min(n_rows, n_cols), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    return q if n_rows >= n_cols else q.T  # (n_rows, n_cols)


def race_network(cfg: RaceConfig) -> GatedDeepLinearNetwork:
    """The shared-plus-private GDLN of the module docstring, initialised by ``cfg.init`` (float64)."""
    u, _, v = _task_svd()
    n_items, n_features, r = v.shape[0], u.shape[0], v.shape[1]
    names = ["shared"] + [f"private{m}" for m in range(cfg.n_domains)]
    nodes = {"x": n_items, "y": n_features, **{name: cfg.hidden for name in names}}
    edges = [e for name in names for e in ((f"{name}_in", "x", name), (f"{name}_out", name, "y"))]
    net = GatedDeepLinearNetwork(nodes, edges, dtype=torch.float64)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for name in names:
            g = cfg.gain if name == "shared" or cfg.private_gain is None else cfg.private_gain
            if cfg.init == "aligned":
                rot = _haar(cfg.hidden, cfg.hidden, gen)
                net.weights[f"{name}_in"].copy_(g * rot[:, :r] @ v.T)   # (H, 4)
                net.weights[f"{name}_out"].copy_(g * u @ rot[:, :r].T)  # (7, H)
            else:
                net.weights[f"{name}_in"].copy_(g * _haar(cfg.hidden, n_items, gen))
                net.weights[f"{name}_out"].copy_(g * _haar(n_features, cfg.hidden, gen))
    return net


def pathway_strengths(net: GatedDeepLinearNetwork, cfg: RaceConfig) -> np.ndarray:
    """``(1 + M, n_modes)``: ``u_alpha^T W_p v_alpha`` of every pathway (shared first) on every task mode."""
    u, _, v = _task_svd()
    with torch.no_grad():
        maps = [net.pathway_map(["shared_in", "shared_out"])] + [
            net.pathway_map([f"private{m}_in", f"private{m}_out"]) for m in range(cfg.n_domains)]
        return torch.stack([(u * (w @ v)).sum(0) for w in maps]).numpy()  # diag(U^T W V) per pathway


def pathway_layer_scales(net: GatedDeepLinearNetwork, cfg: RaceConfig) -> np.ndarray:
    """``(n_modes, 1 + M, 2)``: ``(||W_in v_alpha||, ||W_out^T u_alpha||)`` of every pathway, the ODE's ``b``.

    For aligned init these are exactly the layer scalars of the reduction (``gain`` each); for a
    random init they are the scales each layer offers the mode before the pathway aligns
    (as :func:`~ensemble_nets.analysis.theory.gdln.routing_modes` reads the routing network).
    """
    u, _, v = _task_svd()
    names = ["shared"] + [f"private{m}" for m in range(cfg.n_domains)]
    with torch.no_grad():
        b_in = torch.stack([(net.weight(f"{n}_in") @ v).norm(dim=0) for n in names], dim=-1)     # (r, paths)
        b_out = torch.stack([(net.weight(f"{n}_out").T @ u).norm(dim=0) for n in names], dim=-1)  # (r, paths)
    return torch.stack([b_in, b_out], dim=-1).numpy()


def run_race(cfg: RaceConfig) -> tuple[pd.DataFrame, dict]:
    """Train the race by gradient descent and integrate its reduced theory on the same clock.

    ODE time ``t = step * lr * 2 / P`` (``P = 4 M`` examples). The theory starts from the layer
    scales of :func:`pathway_layer_scales` (exact for aligned init; for a random init it assumes
    each pathway aligns with the task before it grows, the silent-alignment picture).

    :returns: ``(frame, summary)``.
        ``frame``: one row per (step, pathway, mode): ``step``, ``time``, ``pathway`` (``"shared"``
        or ``"private{m}"``), ``mode`` (0 = largest), ``s``, ``simulation``, ``theory``.
        ``summary``: the config, ``shared_share_sim`` / ``shared_share_theory`` (per mode: what the
        shared pathway carries over what the shared domains are fitted with, at the end),
        ``shared_share_closed_form`` (:func:`race_outcome`, aligned init only), ``winner`` (the
        pathway carrying most of the largest mode in domain 0: ``"shared"``, ``"private"``, or ``"tie"``
        when they differ by less than 5% of ``s``), ``max_error`` (largest
        ``|simulation - theory| / s`` over steps, pathways and modes), ``final_loss``.
    """
    net, batch = race_network(cfg), race_batch(cfg)
    scales0 = pathway_layer_scales(net, cfg)
    _, s, _ = _task_svd()
    s = s.numpy()
    n_examples = batch.domain.numel()
    sims = {}

    def record(step, network):
        sims[step] = pathway_strengths(network, cfg)
        return {}

    rows_loss = train_gdln(net, batch, lr=cfg.lr, n_epochs=cfg.n_steps, record=record, record_every=cfg.record_every)
    steps = np.array(sorted(sims))
    times = steps * cfg.lr * 2.0 / n_examples
    b0 = scales0                                                          # (n_modes, n_paths, 2)
    theory = integrate_race_ode(s, b0, cfg.membership, times, max_step=min(1e-3, times[1] / 4)).prod(-1)
    sim = np.stack([sims[k].T for k in steps])                            # (T, n_modes, n_paths)
    names = ["shared"] + [f"private{m}" for m in range(cfg.n_domains)]
    frame = pd.DataFrame([
        {"step": int(k), "time": float(t), "pathway": name, "mode": mode, "s": float(s[mode]),
         "simulation": float(sim[i, mode, p]), "theory": float(theory[i, mode, p])}
        for i, (k, t) in enumerate(zip(steps, times)) for p, name in enumerate(names) for mode in range(len(s))])

    def share(x):  # shared / (shared + private0) per mode at the end, domain 0 (a shared domain)
        return x[-1, :, 0] / (x[-1, :, 0] + x[-1, :, 1])

    summary = {**asdict(cfg), "s": s.tolist(), "shared_share_sim": share(sim).tolist(),
               "shared_share_theory": share(theory).tolist(),
               "winner": ("tie" if abs(sim[-1, 0, 0] - sim[-1, 0, 1]) < 0.05 * s[0]
                          else "shared" if sim[-1, 0, 0] > sim[-1, 0, 1] else "private"),
               "max_error": float((np.abs(sim - theory) / s[None, :, None]).max()),
               "final_loss": rows_loss[-1]["train_loss"]}
    if cfg.init == "aligned":
        a0 = scales0.prod(-1)  # (n_modes, n_paths): gain^2 (shared), private_gain^2 (private)
        a_inf, _ = race_outcome(s, a0[0, 0], a0[0, 1], cfg.n_shared)
        summary["shared_share_closed_form"] = (a_inf / s).tolist()
    return frame, summary


def race_sweep(n_shared=(1, 2, 4, 7), seeds=(0,), **config) -> pd.DataFrame:
    """:func:`run_race` over the number of domains sharing the pathway (and seeds): one row per (D, seed, mode).

    Columns ``n_shared``, ``seed``, ``mode``, ``s``, ``share_sim``, ``share_theory``, ``share_closed_form``
    (NaN unless aligned), ``winner`` and ``max_error`` (of the whole run); ``config`` sets the rest of
    :class:`RaceConfig`.
    """
    rows = []
    for d in n_shared:
        for seed in seeds:
            _, summary = run_race(RaceConfig(n_shared=d, seed=seed, **config))
            closed = summary.get("shared_share_closed_form", [float("nan")] * len(summary["s"]))
            for mode, s in enumerate(summary["s"]):
                rows.append({"n_shared": d, "seed": seed, "mode": mode, "s": s,
                             "share_sim": summary["shared_share_sim"][mode],
                             "share_theory": summary["shared_share_theory"][mode], "share_closed_form": closed[mode],
                             "winner": summary["winner"], "max_error": summary["max_error"]})
    return pd.DataFrame(rows)
