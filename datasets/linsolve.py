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

The iterative solvers live in :mod:`sciml.datasets.krylov` and are registered here by name:
``"gmres"`` (GMRES(m), option ``restart``), ``"gmresdr"`` (GMRES-DR(m, k)), ``"gcrodr"``
(GCRO-DR(m, k), option ``recycle`` to carry its space to the next system), ``"cg"`` and
``"amg"`` (CG preconditioned by pyamg, CPU). ``"gpu_direct"`` is the sparse direct solve on the
GPU (``torch.sparse.spsolve`` with cuDSS, :func:`~sciml.datasets.krylov.gpu_direct`); where
torch has no such kernel it raises, naming the reason, and never falls back to the CPU.
"""
import time

import numpy as np
import scipy.sparse.linalg
import torch

# SolveResult and the checks shared with the Krylov solvers live beside them, so that the
# import runs one way (linsolve -> krylov) whichever module is imported first.
from .krylov import amg_cg, cg, gcro_dr, gmres, gmres_dr, gpu_direct
from .krylov._shared import SolveResult
from .krylov._shared import check_tolerance as _check_tolerance
from .krylov._shared import to_scipy as _to_scipy

__all__ = ["SolveResult", "solve_direct", "DirectFactorization", "LINEAR_SOLVERS",
           "get_linear_solver"]


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


class DirectFactorization:
    """One sparse LU of ``A``, reused for many right-hand sides.

    For a family whose matrix is the same for every sample (Poisson with variable forcing,
    the heat equation's implicit steps), factorizing once and back-substituting per sample
    is the natural competitor of any Krylov method.

    Parameters
    ----------
    A : Tensor (sparse CSR or dense) or scipy sparse matrix, shape (n, n)
        Non-singular matrix, on any device.
    """

    def __init__(self, A):
        start = time.perf_counter()
        self.matrix = _to_scipy(A)
        if self.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"A must be square, got shape {self.matrix.shape}")
        self.lu = scipy.sparse.linalg.splu(self.matrix.tocsc(), permc_spec="MMD_AT_PLUS_A")
        self._setup = time.perf_counter() - start  # charged to the first solve

    def solve(self, B, *, rtol=1e-8, atol=0.0, maxiter=None):
        """Solve ``A x_i = b_i`` for the rows ``b_i`` of ``B``.

        Parameters
        ----------
        B : Tensor, shape (s, n)
        rtol, atol : float
            Tolerances of the convergence check ``‖b − A x‖ ≤ max(rtol ‖b‖, atol)``.
        maxiter : None
            Accepted for the common signature; unused.

        Returns
        -------
        list of SolveResult
            One per row; the factorization time is charged to the first call's results,
            and the time of a call is shared equally by its rows.
        """
        start = time.perf_counter()
        rtol = _check_tolerance("rtol", rtol)
        atol = _check_tolerance("atol", atol)
        if not isinstance(B, torch.Tensor) or not B.is_floating_point() or B.ndim != 2 \
                or B.shape[1] != self.matrix.shape[0]:
            raise ValueError(f"B must be a floating-point tensor of shape (s, "
                             f"{self.matrix.shape[0]}), got {getattr(B, 'shape', type(B))}")
        rhs = B.detach().cpu().double().numpy().T
        X = self.lu.solve(np.ascontiguousarray(rhs))
        r_norms = np.linalg.norm(rhs - self.matrix @ X, axis=0)
        b_norms = np.linalg.norm(rhs, axis=0)
        seconds = (time.perf_counter() - start + self._setup) / B.shape[0]
        self._setup = 0.0
        x = torch.from_numpy(X.T.copy()).to(device=B.device, dtype=B.dtype)
        return [SolveResult(x=x[i], iterations=0, matvecs=1,
                            residual=float(r / b) if b > 0 else float(r),
                            converged=bool(np.isfinite(r)) and r <= max(rtol * b, atol),
                            seconds=seconds)
                for i, (r, b) in enumerate(zip(r_norms, b_norms))]


LINEAR_SOLVERS = {"direct": solve_direct, "gmres": gmres, "gmresdr": gmres_dr,
                  "gcrodr": gcro_dr, "cg": cg, "amg": amg_cg, "gpu_direct": gpu_direct}


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
