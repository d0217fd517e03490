# SPDX-License-Identifier: MIT
"""Data sets as device-resident tensors."""
from ensemble_nets.data.domains import PermutedDomains
from ensemble_nets.data.mnist import DATASETS, SHAPES, Dataset, find_mnist_file, load_dataset, read_idx
from ensemble_nets.data.teacher import ModeTeacher

__all__ = ["DATASETS", "SHAPES", "Dataset", "ModeTeacher", "PermutedDomains", "find_mnist_file", "load_dataset", "read_idx"]
