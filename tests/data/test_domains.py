# SPDX-License-Identifier: MIT
"""Permuted-domain MNIST task: permutations, pairs, the gated batch and its second moments."""
import pytest
import torch

from ensemble_nets.data.domains import PermutedDomains, domain_batch, domain_statistics, pool_images


def test_permutations_and_pairs():
    task = PermutedDomains(5, 2, seed=3)
    pix, cls = task.permutations()
    assert pix.shape == (5, 784) and cls.shape == (5, 10)
    assert torch.equal(pix[0], torch.arange(784)) and torch.equal(cls[0], torch.arange(10))
    assert all(torch.equal(p.sort().values, torch.arange(784)) for p in pix)
    assert not torch.equal(pix[1], pix[2])
    trained, held = task.trained_pairs(), task.held_out_pairs()
    assert len(trained) == 10 and len(held) == 15 and not set(trained) & set(held)
    assert all(sum(n == k for _, n in trained) == 2 for k in range(5))  # every output trained from K inputs
    torch.testing.assert_close(PermutedDomains(5, 2, seed=3).permutations()[0], pix)


def test_batch_targets_follow_the_permutations():
    task = PermutedDomains(3, 1, n_pixels=6, n_classes=4, seed=0)
    pix, cls = task.permutations()
    x, y = torch.arange(12.0).reshape(2, 6), torch.tensor([1, 3])
    batch = domain_batch(task, x, y)
    assert batch.inputs["in2"].shape == (6, 6)
    torch.testing.assert_close(batch.inputs["in2"][4], x[0][pix[2]])  # example (domain 2, image 0)
    assert batch.inputs["in2"][:4].abs().sum() == 0
    assert batch.targets["out1"][1].argmax() == cls[1][3]
    # train: pair (m, m) only; test: the others
    assert batch.node_gates["out1"].tolist() == [0, 0, 1, 1, 0, 0]
    assert domain_batch(task, x, y, "test").node_gates["out1"].tolist() == [1, 1, 0, 0, 1, 1]


@pytest.mark.parametrize("split", ["train", "test"])
def test_statistics_are_the_batch_moments(split):
    task = PermutedDomains(3, 2, n_pixels=8, n_classes=5, seed=1)
    x, y = torch.randn(15, 8, dtype=torch.float64), torch.randint(0, 5, (15,))
    batch, stats = domain_batch(task, x, y, split), domain_statistics(task, x, y, split)
    for i, (m, n) in enumerate(stats["pairs"]):
        on = batch.node_gates[f"out{n}"].bool() & (batch.domain == m)
        x_m, y_n = batch.inputs[f"in{m}"][on], batch.targets[f"out{n}"][on]
        torch.testing.assert_close(y_n.T @ x_m / 45, stats["sigma_yx"][i])
        torch.testing.assert_close(x_m.T @ x_m / 45, stats["sigma_xx"][m])
        assert stats["y_sq"][i] == pytest.approx((y_n**2).sum().item() / 45)


def test_pool_and_errors():
    x = torch.arange(784.0).reshape(1, 784)
    pooled = pool_images(x, 14)
    assert pooled.shape == (1, 196) and pooled[0, 0] == (0 + 1 + 28 + 29) / 4
    with pytest.raises(ValueError, match="size must divide 28"):
        pool_images(x, 5)
    with pytest.raises(ValueError, match="n_trained"):
        PermutedDomains(3, 3)
    with pytest.raises(ValueError, match="split"):
        domain_batch(PermutedDomains(), torch.zeros(2, 784), torch.zeros(2, dtype=torch.long), "val")
