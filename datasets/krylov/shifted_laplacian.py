"""Shifted-Laplacian multigrid preconditioner for the Helmholtz equation.

Erlangga, Vuik & Oosterlee, "On a class of preconditioners for solving the Helmholtz
equation", Appl. Numer. Math. 50 (2004), 409–425: precondition ``A = −Δ_h − K``
(``K = diag(k²)``) by the shifted operator

    M = −Δ_h + β K,                                                                    (1)

(their ``M_{(β₁, β₂)}`` with ``β₁ = −β``, ``β₂ = 0``; ``β = 1`` is their positive shift,
after Bayliss, Goldstein & Turkel, J. Comput. Phys. 49, 1983), whose inverse is approximated
by one multigrid V-cycle (:func:`.gs_multigrid`): for ``β ≥ 0`` the operator (1) is
symmetric positive definite and multigrid handles it as it handles a Poisson problem, while
``A M⁻¹`` has its eigenvalues ``(λ − k²)/(λ + β k²)`` in ``(−1/β, 1]``, bounded whatever the
grid. (The complex shift ``β₁ = 1, β₂ = ½`` of Erlangga, Oosterlee & Vuik, SIAM J. Sci.
Comput. 27, 2006, clusters them better but needs complex arithmetic; the solvers here are
real.) The few eigenvalues near zero that remain are what GMRES-DR deflates and GCRO-DR
recycles from one sample to the next.

``K`` is read off ``A`` itself: for the five/seven-point Laplacian with unit coefficient every
off-diagonal entry is ``−1/h²`` and the diagonal ``2d/h²``, so
``K_ii = 2d · max_j |A_ij| − A_ii`` (``j ≠ i``), exact for :mod:`..helmholtz`.
"""
from __future__ import annotations

import torch

from sciml.validation import finite_float

from .gs_multigrid import gs_multigrid
from .jacobi import check_matrix, matrix_diagonal

__all__ = ["shifted_laplacian", "helmholtz_shift"]


def helmholtz_shift(A, dim):
    """``K = diag(k²)`` of ``A = −Δ_h − K`` (unit-coefficient Laplacian), shape (N,)."""
    crow, col, values = A.crow_indices(), A.col_indices(), A.values()
    rows = torch.repeat_interleave(torch.arange(A.shape[0], device=A.device), crow.diff())
    off = torch.where(rows == col, torch.zeros_like(values), values.abs())
    largest = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device).scatter_reduce(
        0, rows, off, reduce="amax")
    return 2 * dim * largest - matrix_diagonal(A)          # diag(−Δ_h) − diag(A)


def shifted_laplacian(A, *, grid_shape=None, beta=1.0, smoothing_steps=1, dtype=None):
    """Build ``v -> V(M) v``, one multigrid V-cycle of the shifted Laplacian (1).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (N, N)
        ``−Δ_h − diag(k²)`` on the interior nodes of ``grid_shape`` (the Helmholtz family's
        matrix); symmetric, possibly indefinite.
    grid_shape : tuple of 2 or 3 ints
        Interior nodes per axis (required).
    beta : float
        Shift ``β ≥ 0`` of (1).
    smoothing_steps : int
        Gauss–Seidel sweeps of the V-cycle.
    dtype : torch.dtype, optional
        Precision of the V-cycle (``torch.float32`` for mixed precision).

    Returns
    -------
    callable
        ``v -> V(M) v`` for ``v`` of shape (N,) or (s, N).
    """
    A = check_matrix(A)
    if A.layout == torch.strided:
        A = A.to_sparse_csr()
    beta = finite_float("beta", beta)
    if beta < 0:
        raise ValueError(f"beta must be >= 0 (M = -Δ + βK is then positive definite), got "
                         f"{beta!r}")
    if not isinstance(grid_shape, (tuple, list)) or len(grid_shape) not in (2, 3):
        raise TypeError(f"grid_shape must be 2 or 3 ints, got {grid_shape!r}")
    K = helmholtz_shift(A, len(grid_shape))
    n = A.shape[0]
    diagonal = torch.sparse_csr_tensor(torch.arange(n + 1, device=A.device),
                                       torch.arange(n, device=A.device), (1 + beta) * K,
                                       (n, n), check_invariants=False)
    M = (A + diagonal).to_sparse_csr()                     # −Δ_h − K + (1 + β) K, eq. (1)
    return gs_multigrid(M, grid_shape=tuple(grid_shape), smoothing_steps=smoothing_steps,
                        dtype=dtype)
