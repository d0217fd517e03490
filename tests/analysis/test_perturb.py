# SPDX-License-Identifier: MIT
import pytest
import torch

import ensemble_nets as en
from ensemble_nets.analysis import PERTURBATIONS, categorize, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.perturb import _perturb_


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_original_model_is_untouched(trained_ensemble, test_split):
    before = _snapshot(trained_ensemble)
    mode = trained_ensemble.eval_mode
    state = torch.get_rng_state()
    perturbation_curves(trained_ensemble, test_split, 1, [0.5, 1.0], n_networks=2)
    after = trained_ensemble.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert trained_ensemble.eval_mode == mode and not trained_ensemble.training
    assert torch.equal(torch.get_rng_state(), state)  # seeded generators only: the global stream is left alone


def test_counts_and_common_random_numbers(trained_ensemble, test_split):
    curves = perturbation_curves(trained_ensemble, test_split, "layer2", [0.0, 0.5, 1.0], n_networks=3, seed=4)
    counts = categorize(trained_ensemble).table.set_index(["layer", "category"])["count"]
    full = curves[curves["fraction"] == 1.0].groupby("perturbation")["n_perturbed"].first()
    n_important, n_unimportant = counts[("layer2", "important")], counts[("layer2", "unimportant")]
    assert full["delete_important"] == n_important
    assert full["randomize_unimportant"] == n_unimportant
    assert full["delete_variable"] == min(n_important, counts[("layer2", "variable")])
    assert full["delete_random"] == n_important
    # f = 0 perturbs nothing, and network k is the same draw under every perturbation
    start = curves[curves["fraction"] == 0.0].pivot(index="network", columns="perturbation", values="error")
    assert (start.nunique(axis=1) == 1).all()
    summary = summarize_perturbations(curves)
    assert len(summary) == len(PERTURBATIONS) * 3 and (summary["n_networks"] == 3).all()


def test_deleting_important_connections_hurts_more_than_controls(trained_ensemble, test_split):
    curves = perturbation_curves(trained_ensemble, test_split, 1, [1.0], n_networks=3)
    error = curves.groupby("perturbation")["error"].mean()
    assert error["delete_important"] > error["delete_random"] + 0.05
    assert error["delete_important"] > error["delete_variable"] + 0.05
    assert abs(error["randomize_unimportant"] - curves[curves["perturbation"] == "delete_random"]["error"].min()) < 0.1


def test_perturb_sets_the_law():
    layer = en.SpikeSlabLinear(4, 3)
    chosen = torch.tensor([0, 5, 11])
    _perturb_(layer, "randomize_unimportant", chosen, torch.Generator().manual_seed(0))
    assert (layer.pi.view(-1)[chosen] == 0).all() and (layer.xi.view(-1)[chosen] == 0).all()
    _perturb_(layer, "delete_random", chosen, torch.Generator().manual_seed(0))
    assert (layer.pi.view(-1)[chosen] == 1).all()


def test_bad_arguments_fail_clearly(trained_ensemble, test_split):
    with pytest.raises(ValueError, match="layer must be one of"):
        perturbation_curves(trained_ensemble, test_split, 5)
    with pytest.raises(ValueError, match="fractions"):
        perturbation_curves(trained_ensemble, test_split, 1, [1.5])
    with pytest.raises(ValueError, match="perturbations"):
        perturbation_curves(trained_ensemble, test_split, 1, perturbations=["shuffle"])
    with pytest.raises(ValueError, match="n_networks"):
        perturbation_curves(trained_ensemble, test_split, 1, n_networks=0)
