# SPDX-License-Identifier: MIT
"""Theory: reduced models that the experiments are compared against (one model per module)."""
from ensemble_nets.analysis.theory.spring_block import SpringBlockResult, simulate_spring_block, spring_forces

__all__ = ["SpringBlockResult", "simulate_spring_block", "spring_forces"]
