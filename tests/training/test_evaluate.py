# SPDX-License-Identifier: MIT
import torch

import ensemble_nets as en
from ensemble_nets.training.evaluate import accuracy


def test_deterministic_ensemble_has_no_spread(tiny_mnist):
    model = en.EnsembleMLP((784, 16, 10), m_std=1.0)
    with torch.no_grad():
        for layer in model.linear_layers:
            layer.xi.zero_()
    result = en.evaluate(model, tiny_mnist.x_test, tiny_mnist.y_test, n_networks=4)
    assert result["acc_sampled_std"] == 0.0
    assert result["acc_sampled_mean"] == result["acc_mean"]


def test_evaluation_restores_mode_and_leaves_training_stream_alone(tiny_mnist):
    model = en.EnsembleMLP((784, 16, 10)).train()
    torch.manual_seed(7)
    expected = torch.randn(3)
    torch.manual_seed(7)
    en.evaluate(model, tiny_mnist.x_test, tiny_mnist.y_test, n_networks=3)
    assert model.training and model.eval_mode == "mean_field"
    assert torch.equal(torch.randn(3), expected)


def test_evaluation_is_reproducible_by_seed(tiny_mnist):
    model = en.EnsembleMLP((784, 16, 10), m_std=1.0)
    a = en.evaluate(model, tiny_mnist.x_test, tiny_mnist.y_test, n_networks=3, seed=5)
    b = en.evaluate(model, tiny_mnist.x_test, tiny_mnist.y_test, n_networks=3, seed=5)
    assert a == b


def test_a_dataloader_is_read_once_and_matches_the_tensors(tiny_mnist):
    """All 2 + n_networks networks are evaluated in one pass over a DataLoader, with the tensors' numbers."""
    from torch.utils.data import DataLoader, TensorDataset

    class Counting(TensorDataset):
        reads = 0

        def __getitem__(self, index):
            Counting.reads += 1
            return super().__getitem__(index)

    model = en.EnsembleMLP((784, 16, 10), m_std=1.0)
    n = tiny_mnist.x_test.shape[0]
    loader = DataLoader(Counting(tiny_mnist.x_test, tiny_mnist.y_test), batch_size=64)
    from_loader = en.evaluate(model, loader, None, n_networks=4, seed=3)
    assert Counting.reads == n
    from_tensors = en.evaluate(model, tiny_mnist.x_test, tiny_mnist.y_test, n_networks=4, seed=3, batch_size=64)
    for key in ("acc_mean", "acc_sampled_mean", "acc_sampled_std"):  # no noise in these: equal
        assert from_loader[key] == from_tensors[key]
    # the mean-field pass draws fresh noise, and iterating a DataLoader takes a seed from the global stream
    assert abs(from_loader["loss_mean_field"] - from_tensors["loss_mean_field"]) < 0.05
    manual = [accuracy(en.sample_network(model, g), tiny_mnist.x_test, tiny_mnist.y_test)[0]
              for g in [torch.Generator().manual_seed(3)] for _ in range(4)]
    assert from_tensors["acc_sampled_mean"] == sum(manual) / 4


def test_integer_inputs_from_a_dataloader_are_not_cast():
    from torch.utils.data import DataLoader, TensorDataset

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.readout = torch.nn.Embedding(5, 4), torch.nn.Linear(4, 3)

        def forward(self, tokens):
            assert not tokens.is_floating_point()
            return self.readout(self.embedding(tokens).mean(1))

    tokens = torch.randint(0, 5, (20, 6))
    loader = DataLoader(TensorDataset(tokens, torch.randint(0, 3, (20,))), batch_size=8)
    acc, loss = accuracy(Embed(), loader, None)
    assert 0.0 <= acc <= 1.0 and loss > 0
