"""A sparse LU factorization (SuperLU) built once and applied as ``M = A⁻¹`` (CPU).

For a family whose matrix does not change between samples (Poisson with varying forcing,
the heat equation at a fixed time step), one factorization serves every right-hand side:
build it once, then any solver with ``M = lu(A)`` converges in one iteration, and its
result still reports the true residual. The ordering is minimum degree on ``Aᵀ + A``, the
fastest for five-point operators in NOTES.md (Li, "An overview of SuperLU", ACM TOMS 31,
2005).
"""
from __future__ import annotations

import scipy.sparse.linalg

from ._cpu import cpu_matrix, host_preconditioner

__all__ = ["lu"]


def lu(A, *, grid_shape=None, permc_spec="MMD_AT_PLUS_A"):
    """Build ``v -> A⁻¹ v`` from one sparse LU factorization of ``A`` (CPU only).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), on the CPU
        Non-singular.
    grid_shape : tuple, optional
        Unused (common builder signature).
    permc_spec : str
        Column ordering, as for :func:`scipy.sparse.linalg.splu`.

    Returns
    -------
    callable
        ``v -> A⁻¹ v`` for CPU ``v`` of shape (n,) or (s, n), in ``v``'s dtype.
    """
    factor = scipy.sparse.linalg.splu(cpu_matrix(A, "lu").tocsc(), permc_spec=permc_spec)
    return host_preconditioner(lambda rows: factor.solve(rows.T).T, "lu")
