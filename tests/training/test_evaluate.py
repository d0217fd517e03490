# SPDX-License-Identifier: MIT
import torch

import ensemble_nets as en


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
