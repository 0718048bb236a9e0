"""Linear solvers for the generated systems: a common result type and a registry by name.

Every solver has the scipy.sparse.linalg signature
``solver(A, b, *, x0=None, rtol, atol=0.0, maxiter=None, M=None, callback=None)`` and
returns a :class:`SolveResult` whose ``residual`` is the *true* relative residual
``‖b − A x‖₂ / ‖b‖₂`` recomputed from the returned ``x``, never a recurrence estimate, and
``converged = ‖b − A x‖₂ ≤ max(rtol ‖b‖₂, atol)`` (scipy's stopping rule).

The reference is a sparse direct LU (SuperLU through :func:`scipy.sparse.linalg.spsolve`)
with the minimum-degree ordering on ``Aᵀ + A`` (``permc_spec="MMD_AT_PLUS_A"``), the
fastest ordering for five-point operators in the measurements of NOTES.md (31 ms for a
128² Darcy system on two cores).
"""
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

__all__ = ["SolveResult", "solve_direct", "LINEAR_SOLVERS", "get_linear_solver"]


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
        Wall-clock time of the solve, transfers included.
    """

    x: torch.Tensor
    iterations: int
    matvecs: int
    residual: float
    converged: bool
    seconds: float


def _to_scipy(A):
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


def _check_tolerance(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def solve_direct(A, b, *, x0=None, rtol=1e-8, atol=0.0, maxiter=None, M=None, callback=None):
    """Solve ``A x = b`` by sparse LU on a CPU copy; the reference for the Krylov solvers.

    ``x0``, ``maxiter``, ``M`` and ``callback`` are accepted for the common solver signature
    and have no effect on a direct solve.

    Parameters
    ----------
    A : Tensor (sparse CSR or dense) or scipy sparse matrix, shape (n, n)
        Non-singular matrix, on any device.
    b : Tensor, shape (n,)
        Right-hand side; floating point.
    rtol, atol : float
        Tolerances of the convergence check ``‖b − A x‖ ≤ max(rtol ‖b‖, atol)``.

    Returns
    -------
    SolveResult
        ``x`` on ``b``'s device and dtype; ``iterations = 0``, ``matvecs = 1`` (the check).
    """
    start = time.perf_counter()
    rtol = _check_tolerance("rtol", rtol)
    atol = _check_tolerance("atol", atol)
    if not isinstance(b, torch.Tensor) or not b.is_floating_point():
        raise TypeError(f"b must be a floating-point torch.Tensor, got {type(b).__name__}")
    matrix = _to_scipy(A)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A must be square, got shape {matrix.shape}")
    if b.ndim != 1 or b.shape[0] != matrix.shape[0]:
        raise ValueError(f"b must have shape ({matrix.shape[0]},) to match A, got "
                         f"{tuple(b.shape)}")
    rhs = b.detach().cpu().double().numpy()
    x = np.atleast_1d(scipy.sparse.linalg.spsolve(matrix, rhs, permc_spec="MMD_AT_PLUS_A"))
    # The true residual of the returned x, in float64 on the CPU copy.
    r_norm = float(np.linalg.norm(rhs - matrix @ x))
    b_norm = float(np.linalg.norm(rhs))
    residual = r_norm / b_norm if b_norm > 0 else r_norm
    converged = bool(np.isfinite(r_norm)) and r_norm <= max(rtol * b_norm, atol)
    x = torch.from_numpy(x).to(device=b.device, dtype=b.dtype)
    return SolveResult(x=x, iterations=0, matvecs=1, residual=residual, converged=converged,
                       seconds=time.perf_counter() - start)


LINEAR_SOLVERS = {"direct": solve_direct}


def get_linear_solver(name):
    """The linear solver registered as ``name`` in :data:`LINEAR_SOLVERS`.

    Parameters
    ----------
    name : str

    Returns
    -------
    callable
        ``solver(A, b, *, x0=None, rtol, atol=0.0, maxiter=None, M=None, callback=None)
        -> SolveResult``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    if name not in LINEAR_SOLVERS:
        raise ValueError(f"unknown linear solver {name!r}; expected one of: "
                         f"{', '.join(sorted(LINEAR_SOLVERS))}")
    return LINEAR_SOLVERS[name]
