"""What the linear solvers share: the result type and the checks of the direct solver.

They live here, beside the Krylov solvers, and :mod:`sciml.datasets.linsolve` re-exports
them, so imports run one way (``linsolve → krylov``) whichever module is imported first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

__all__ = ["SolveResult", "check_tolerance", "to_scipy"]


@dataclass
class SolveResult:
    """Outcome of one linear solve.

    Attributes
    ----------
    x : Tensor, shape (n,)
        The solution, on the device and in the dtype of ``b``.
    iterations : int
        Krylov iterations (0 for a direct solve).
    matvecs : int
        Products with ``A``, the residual check included.
    residual : float
        True relative residual ``‖b − A x‖ / ‖b‖`` (``‖b − A x‖`` when ``b = 0``).
    converged : bool
        Whether ``‖b − A x‖ ≤ max(rtol ‖b‖, atol)``.
    seconds : float
        Wall-clock time of the solve, transfers included (CUDA synchronized).
    recycle : object, optional
        What a recycling solver carries to the next system of a sequence (GCRO-DR's
        :class:`~sciml.datasets.krylov.RecycleSpace`); not data, never stored.
    """

    x: torch.Tensor
    iterations: int
    matvecs: int
    residual: float
    converged: bool
    seconds: float
    recycle: object = None


def to_scipy(A):
    """``A`` (torch sparse CSR or dense tensor, or scipy sparse) as a float64 scipy CSR copy."""
    if scipy.sparse.issparse(A):
        return scipy.sparse.csr_matrix(A, dtype=np.float64)
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"A must be a torch sparse CSR or dense tensor or a scipy sparse "
                        f"matrix, got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D, got shape {tuple(A.shape)}")
    if A.layout == torch.sparse_csr:
        return scipy.sparse.csr_matrix(
            (A.values().detach().cpu().double().numpy(),
             A.col_indices().cpu().numpy(), A.crow_indices().cpu().numpy()),
            shape=tuple(A.shape))
    if A.layout == torch.strided:
        return scipy.sparse.csr_matrix(A.detach().cpu().double().numpy())
    raise TypeError(f"A must have layout torch.sparse_csr or torch.strided, got {A.layout}")


def check_tolerance(name, value):
    """``value`` as a float, checked to be a finite number ≥ 0; errors name ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
