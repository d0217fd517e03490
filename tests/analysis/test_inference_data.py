# SPDX-License-Identifier: MIT
import warnings

import numpy as np
import pytest
import torch

from ensemble_nets.analysis import load_inference_data, save_inference_data, to_inference_data
from ensemble_nets.analysis._common import sampled_log_probs
from ensemble_nets.analysis.inference_data import _arviz


@pytest.fixture(scope="module")
def idata(trained_ensemble, test_split):
    return to_inference_data(trained_ensemble, test_split, n_networks=8, seed=1, max_weights=100)


def test_groups_and_dimensions(idata, trained_ensemble, test_split):
    n = len(test_split[1])
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "observed_data"}  # no test-set loo
    post = idata.posterior
    assert post["w_layer1"].shape == (1, 8, 100)  # 784 * 32 weights thinned to 100
    assert post["w_layer2"].shape == (1, 8, 100)
    assert post["accuracy"].shape == (1, 8) and post["test_nll"].shape == (1, 8)
    assert post.attrs["weights_subset"] == "layer1,layer2"
    assert idata.posterior_predictive["y"].shape == (1, 8, n)
    assert np.array_equal(idata.observed_data["y"].values, test_split[1].numpy())
    predicted = idata.posterior_predictive["y"].values
    assert predicted.min() >= 0 and predicted.max() <= 9


def test_weight_coordinates_point_at_the_right_connections(trained_ensemble, idata):
    """Deterministic connections (pi = 0, xi = 0) must show their m in every draw at their (out, in)."""
    layer = trained_ensemble.linear_layers[0]
    post = idata.posterior["w_layer1"]
    rows, cols = post["w_layer1_out"].values, post["w_layer1_in"].values
    pi, xi, m = (t.detach()[rows, cols].numpy() for t in (layer.pi, layer.xi, layer.m))
    fixed = (pi == 0) & (xi == 0)
    absent = pi == 1
    assert fixed.any()
    assert np.array_equal(post.values[0][:, fixed], np.broadcast_to(m[fixed], (8, fixed.sum())))
    assert (post.values[0][:, absent] == 0).all()


def test_training_log_likelihood_is_that_of_the_same_members(trained_ensemble, test_split, tiny_mnist):
    x_train, y_train = tiny_mnist.x_train[:300], tiny_mnist.y_train[:300]
    data = to_inference_data(trained_ensemble, test_split, n_networks=5, seed=1, max_weights=10,
                             train_data=(x_train, y_train))
    log_lik = data.log_likelihood["y_train"].values[0]  # (draw, train_example)
    members = sampled_log_probs(trained_ensemble, x_train, 5, seed=1).double()  # the same five networks
    assert np.allclose(log_lik, members.gather(2, y_train[None, :, None].expand(5, -1, 1))[..., 0].numpy())
    assert np.array_equal(data.observed_data["y_train"].values, y_train.numpy())
    test_members = sampled_log_probs(trained_ensemble, test_split[0], 5, seed=1).double()
    test_nll = -test_members.gather(2, test_split[1][None, :, None].expand(5, -1, 1))[..., 0].mean(1)
    assert np.allclose(data.posterior["test_nll"].values[0], test_nll.numpy())


def test_netcdf_round_trip_and_arviz_functions(trained_ensemble, test_split, tiny_mnist, tmp_path):
    idata = to_inference_data(trained_ensemble, test_split, n_networks=8, seed=1, max_weights=100,
                              train_data=tiny_mnist)
    path = save_inference_data(idata, tmp_path / "run" / "inference_data.nc")
    back = load_inference_data(path)
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data"):
        assert getattr(back, group).equals(getattr(idata, group)), group
    az = _arviz()
    summary = az.summary(back, var_names=["accuracy"], kind="stats", round_to="none")
    assert summary.loc["accuracy", "mean"] == pytest.approx(float(idata.posterior["accuracy"].mean()))
    interval = az.hdi(back, var_names=["accuracy"], hdi_prob=0.94)["accuracy"].values
    assert interval[0] <= float(idata.posterior["accuracy"].mean()) <= interval[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings: 8 draws are few for PSIS
        loo = az.loo(back)
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == len(tiny_mnist.y_train)  # training examples
    assert not list(path.parent.glob(".*.tmp"))


def test_small_layers_keep_every_weight(trained_ensemble, test_split):
    data = to_inference_data(trained_ensemble, (test_split[0][:20], test_split[1][:20]), n_networks=2,
                             max_weights=400)
    assert data.posterior["w_layer2"].shape == (1, 2, 320) and data.posterior.attrs["weights_subset"] == "layer1"


def test_errors(trained_ensemble, test_split, tmp_path):
    with pytest.raises(ValueError, match="n_networks"):
        to_inference_data(trained_ensemble, test_split, n_networks=1)
    with pytest.raises(ValueError, match="not an ensemble"):
        to_inference_data(torch.nn.Linear(784, 10), test_split)
    with pytest.raises(FileNotFoundError, match="analyze_run.py"):
        load_inference_data(tmp_path / "missing.nc")
