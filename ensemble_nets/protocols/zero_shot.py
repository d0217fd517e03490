# SPDX-License-Identifier: MIT
"""Zero-shot routing on permuted MNIST domains against the init gain (DESIGN.md 4.3; issue 12 item 6b).

The naturalistic validation of Saxe, Sodhani & Lewallen (ICML 2022): a gated deep linear network
with one linear encoder per input domain, one shared hidden layer and one decoder per output
domain::

    in{m} (784) --enc{m}--> enc (H) --hid--> hid (H) --dec{n}--> out{n} (10)

trained by full-batch gradient descent on the squared loss of
:func:`~ensemble_nets.layers.gated.gdln_loss` over the trained pairs of
:class:`~ensemble_nets.data.domains.PermutedDomains`. For budget the loss is evaluated from the
data's second moments (:func:`~ensemble_nets.data.domains.domain_statistics`; the same number as
``gdln_loss`` on the gated batch, checked in the tests) and the images are average-pooled to
14x14 before the pixel permutations (``image_size``). Small initial weights (the rich regime)
let the shared hidden layer win the race, so encoders of different input domains map a digit to
the same hidden code and a decoder solves input domains it never saw (zero-shot); a large gain
(lazy regime) fits the trained pairs with pathway-specific weights and loses zero-shot accuracy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch

from ensemble_nets.data.domains import PermutedDomains, domain_statistics, pool_images
from ensemble_nets.layers.gated import GatedDeepLinearNetwork

__all__ = ["ZeroShotConfig", "moment_loss", "pair_accuracy", "run_zero_shot", "zero_shot_network",
           "zero_shot_sweep"]


@dataclass(frozen=True)
class ZeroShotConfig:
    """One run: the task, the network and its training (small budgets by default)."""

    n_domains: int = 4    # M input and M output domains
    n_trained: int = 2    # K output domains trained per input domain
    hidden: int = 64      # H: encoder and hidden width
    gain: float = 0.1     # orthogonal init scale of every weight
    lr: float = 1.0       # base gradient-descent step; the step taken is lr / max(1, gain)^4
    n_steps: int = 300    # gradient steps
    n_train: int = 5000   # training images (of the 5,000 embedded digits)
    image_size: int = 14  # images average-pooled to image_size x image_size (28: none)
    seed: int = 0         # init seed; the domains' permutations use task_seed
    task_seed: int = 0

    def __post_init__(self):
        if 28 % self.image_size:
            raise ValueError(f"image_size={self.image_size} must divide 28 (28, 14, 7, 4, 2)")
        if not self.gain > 0 or not self.lr > 0 or self.n_steps < 1 or self.hidden < 1 or self.n_train < 10:
            raise ValueError(f"need gain > 0, lr > 0, n_steps >= 1, hidden >= 1, n_train >= 10; got {self.gain}, "
                             f"{self.lr}, {self.n_steps}, {self.hidden}, {self.n_train}")

    @property
    def task(self) -> PermutedDomains:
        return PermutedDomains(self.n_domains, self.n_trained, n_pixels=self.image_size**2, seed=self.task_seed)


def zero_shot_network(cfg: ZeroShotConfig) -> GatedDeepLinearNetwork:
    """Encoders ``(H, image_size^2)``, the shared ``(H, H)`` and decoders ``(10, H)``, orthogonal of scale ``gain``."""
    m_dom = cfg.n_domains
    nodes = {**{f"in{m}": cfg.image_size**2 for m in range(m_dom)}, "enc": cfg.hidden, "hid": cfg.hidden,
             **{f"out{n}": 10 for n in range(m_dom)}}
    edges = ([(f"enc{m}", f"in{m}", "enc") for m in range(m_dom)] + [("hid", "enc", "hid")]
             + [(f"dec{n}", "hid", f"out{n}") for n in range(m_dom)])
    net = GatedDeepLinearNetwork(nodes, edges)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for w in net.weights.values():
            torch.nn.init.orthogonal_(w, gain=cfg.gain, generator=gen)
    return net


@torch.no_grad()
def pair_accuracy(net: GatedDeepLinearNetwork, task: PermutedDomains, x: torch.Tensor, y: torch.Tensor,
                  pairs: list[tuple[int, int]]) -> float:
    """Mean accuracy of ``argmax out{n}`` against ``tau_n(y)`` on images ``sigma_m(x)`` over ``pairs``."""
    pix, cls = task.permutations()
    correct = []
    for m, n in pairs:
        path = net.pathway_map([f"enc{m}", "hid", f"dec{n}"])  # (n_classes, n_pixels)
        pred = (x[:, pix[m]] @ path.T).argmax(1)
        correct.append((pred == cls[n][y]).float().mean())
    return float(torch.stack(correct).mean())


def moment_loss(net: GatedDeepLinearNetwork, stats: dict) -> torch.Tensor:
    """The gated squared loss from second moments (:func:`~ensemble_nets.data.domains.domain_statistics`)."""
    total = stats["y_sq"].sum()
    hidden = {m: net.weight("hid") @ net.weight(f"enc{m}") for m in {m for m, _ in stats["pairs"]}}  # (H, n_pixels)
    for i, (m, n) in enumerate(stats["pairs"]):
        w = net.weight(f"dec{n}") @ hidden[m]  # (n_classes, n_pixels) pathway map
        total = total - 2 * (w * stats["sigma_yx"][i]).sum() + (w @ stats["sigma_xx"][m] * w).sum()
    return total


def _prepare(x: torch.Tensor, size: int, mean: torch.Tensor | None = None, scale: float | None = None):
    x = pool_images(x.double(), size) if size != 28 else x.double()
    if mean is None:
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / x.shape[0]
        scale = float(torch.linalg.eigvalsh(cov)[-1].sqrt())  # top principal std -> 1
    return (x - mean) / scale, mean, scale


def run_zero_shot(cfg: ZeroShotConfig, data) -> dict:
    """Train one network; accuracy on the test images for trained and held-out (zero-shot) pairs.

    :param data: a :class:`~ensemble_nets.data.Dataset` (e.g. ``load_dataset("mnist5k", ...)``); its first
        ``n_train`` training images are pooled, centred on their mean image and scaled so that the top
        principal component has unit variance (the test images with the same mean and scale).
    :returns: the config plus ``train_loss``, ``acc_trained``, ``acc_zero_shot`` (test images) and
        ``acc_trained_train`` (training images, trained pairs).
    """
    task = cfg.task
    x, mean, scale = _prepare(data.x_train[:cfg.n_train], cfg.image_size)
    y = data.y_train[:cfg.n_train]
    x_test, _, _ = _prepare(data.x_test, cfg.image_size, mean, scale)
    y_test = data.y_test
    stats = domain_statistics(task, x, y, "train")
    net = zero_shot_network(cfg).double()
    lr = cfg.lr / max(1.0, cfg.gain) ** 4  # the loss curvature grows like gain^4 (three layers)
    for step in range(cfg.n_steps + 1):
        net.zero_grad(set_to_none=True)
        loss = moment_loss(net, stats)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr={cfg.lr} (step {lr:g}) "
                                     f"or gain={cfg.gain}")
        if step == cfg.n_steps:
            break
        loss.backward()
        with torch.no_grad():
            for w in net.parameters():
                w -= lr * w.grad
    return {**asdict(cfg), "train_loss": loss.item(),
            "acc_trained_train": pair_accuracy(net, task, x, y, task.trained_pairs()),
            "acc_trained": pair_accuracy(net, task, x_test, y_test, task.trained_pairs()),
            "acc_zero_shot": pair_accuracy(net, task, x_test, y_test, task.held_out_pairs())}


def zero_shot_sweep(data, gains=(0.05, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1), **config) -> pd.DataFrame:
    """:func:`run_zero_shot` over init gains and seeds: one row per run."""
    return pd.DataFrame([run_zero_shot(ZeroShotConfig(gain=g, seed=s, **config), data) for g in gains for s in seeds])
