"""Incomplete LU factorization (scipy's SuperLU ``spilu``) as a CPU preconditioner.

Threshold ILU with a fill limit (Saad, "ILUT: a dual threshold incomplete LU
factorization", Numer. Linear Algebra Appl. 1, 1994; SuperLU's variant, Li & Shao, ACM TOMS
37, 2011). NOTES.md: with the default column ordering it is a poor preconditioner for
Darcy; ``permc_spec`` may be given.
"""
from __future__ import annotations

import scipy.sparse.linalg

from sciml.validation import finite_float

from ._cpu import cpu_matrix, host_preconditioner

__all__ = ["ilu"]


def ilu(A, *, grid_shape=None, drop_tol=1e-4, fill_factor=10.0, permc_spec="COLAMD"):
    """Build ``v -> (L U)⁻¹ v`` from scipy's ``spilu`` of ``A`` (CPU only).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), on the CPU
    grid_shape : tuple, optional
        Unused (common builder signature).
    drop_tol, fill_factor, permc_spec
        As for :func:`scipy.sparse.linalg.spilu`.

    Returns
    -------
    callable
        ``v -> (L U)⁻¹ v`` for CPU ``v`` of shape (n,) or (s, n), in ``v``'s dtype.
    """
    drop_tol = finite_float("drop_tol", drop_tol)
    fill_factor = finite_float("fill_factor", fill_factor)
    factor = scipy.sparse.linalg.spilu(cpu_matrix(A, "ilu").tocsc(), drop_tol=drop_tol,
                                       fill_factor=fill_factor, permc_spec=permc_spec)
    return host_preconditioner(lambda rows: factor.solve(rows.T).T, "ilu")
