# SPDX-License-Identifier: MIT
"""Theory probes: reduced dynamics that simulations are compared against (one theory per module)."""
