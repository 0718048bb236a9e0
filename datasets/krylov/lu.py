"""A sparse LU factorization (SuperLU) built once and applied as ``M = A⁻¹`` (CPU).

For a family whose matrix does not change between samples (Poisson with varying forcing,
the heat equation at a fixed time step), one factorization serves every right-hand side:
build it once, then any solver with ``M = lu(A)`` converges in one iteration, and its
result still reports the true residual. The factorization is
:class:`sciml.datasets.linsolve.DirectFactorization`'s (SuperLU with the minimum-degree
ordering on ``Aᵀ + A``, the fastest for five-point operators in NOTES.md; Li, "An overview
of SuperLU", ACM TOMS 31, 2005), so the preconditioner and the direct solver share one setup.
"""
from __future__ import annotations

from ._cpu import check_cpu, host_preconditioner

__all__ = ["lu"]


def lu(A, *, grid_shape=None):
    """Build ``v -> A⁻¹ v`` from one sparse LU factorization of ``A`` (CPU only).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), on the CPU
        Non-singular.
    grid_shape : tuple, optional
        Unused (common builder signature).

    Returns
    -------
    callable
        ``v -> A⁻¹ v`` for CPU ``v`` of shape (n,) or (s, n), in ``v``'s dtype.
    """
    # linsolve imports this package, so its class is imported when a factorization is built.
    from sciml.datasets.linsolve import DirectFactorization

    factor = DirectFactorization(check_cpu(A, "lu")).lu
    return host_preconditioner(lambda rows: factor.solve(rows.T).T, "lu")
