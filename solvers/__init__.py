"""Trainable solvers on the :class:`sciml.Solver` contract: one Trainer trains them all."""
from __future__ import annotations

from importlib import import_module

__all__ = ["OperatorSolver", "NeuralODESolver", "DiffusionSolver", "RectifiedFlowSolver", "PDERefinerSolver", "PINNSolver",
           "SDGDSolver", "LagrangianPINNSolver"]

_LAZY = {
    "OperatorSolver": "sciml.solvers.operator",
    "NeuralODESolver": "sciml.solvers.neural_ode",
    "DiffusionSolver": "sciml.solvers.diffusion",
    "RectifiedFlowSolver": "sciml.solvers.diffusion",
    "PDERefinerSolver": "sciml.solvers.diffusion",
    "PINNSolver": "sciml.solvers.pinn",
    "SDGDSolver": "sciml.solvers.sdgd",
    "LagrangianPINNSolver": "sciml.solvers.lpinn",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sciml.solvers' has no attribute {name!r}")
