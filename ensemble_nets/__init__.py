# SPDX-License-Identifier: MIT
"""ensemble_nets: spike-and-slab network ensembles trained by generalized backpropagation.

>>> import ensemble_nets as en
>>> model = en.EnsembleMLP((784, 100, 100, 10))
>>> data = en.data.load_dataset("mnist5k")
>>> result = en.train(model, data, en.TrainConfig(epochs=5))
>>> en.analysis.categorize(model).table
"""
from ensemble_nets import analysis, data
from ensemble_nets.data import Dataset, load_dataset
from ensemble_nets.distributions import SpikeSlab
from ensemble_nets.layers import ScaledLinear, SpikeSlabConv1d, SpikeSlabConv2d, SpikeSlabLinear, spike_slab_layers
from ensemble_nets.models import MLP, EnsembleMLP, ModeMLP, build_model, mean_network, sample_network, to_ensemble
from ensemble_nets.training import ExperimentConfig, TrainConfig, evaluate, load_run, project_, train, train_many

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "EnsembleMLP",
    "ExperimentConfig",
    "MLP",
    "ModeMLP",
    "ScaledLinear",
    "SpikeSlab",
    "SpikeSlabConv1d",
    "SpikeSlabConv2d",
    "SpikeSlabLinear",
    "TrainConfig",
    "__version__",
    "analysis",
    "build_model",
    "data",
    "evaluate",
    "load_dataset",
    "load_run",
    "mean_network",
    "project_",
    "sample_network",
    "spike_slab_layers",
    "to_ensemble",
    "train",
    "train_many",
]
