"""Jacobi (diagonal) preconditioning: ``M⁻¹ = ω D⁻¹`` with ``D = diag(A)``.

The oldest preconditioner (Jacobi 1845; Saad, "Iterative Methods for Sparse Linear Systems",
2nd ed., Sec. 10.2). One elementwise division per application, on any device; it is also
the smoother of the geometric multigrid and the inner scaling of the Chebyshev polynomial.
"""
from __future__ import annotations

import torch

from sciml.validation import finite_float

__all__ = ["jacobi", "matrix_diagonal", "check_matrix"]


def check_matrix(A, name: str = "A") -> torch.Tensor:
    """``A`` as a square floating-point torch sparse CSR or dense matrix (a preconditioner
    needs its entries, so a callable is refused here)."""
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch sparse CSR or dense tensor to build a "
                        f"preconditioner, got {type(A).__name__}")
    if A.layout not in (torch.sparse_csr, torch.strided):
        raise TypeError(f"{name} must have layout torch.sparse_csr or torch.strided, got "
                        f"{A.layout}")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape "
                         f"{tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {A.dtype}")
    return A.detach()


def matrix_diagonal(A: torch.Tensor) -> torch.Tensor:
    """The diagonal of a sparse CSR or dense matrix, shape (n,), on its device."""
    if A.layout == torch.strided:
        return A.diagonal().clone()
    crow, col, values = A.crow_indices(), A.col_indices(), A.values()
    n = A.shape[0]
    rows = torch.repeat_interleave(torch.arange(n, device=A.device), crow.diff())
    on_diagonal = rows == col
    return torch.zeros(n, dtype=A.dtype, device=A.device).index_add_(
        0, rows[on_diagonal], values[on_diagonal])


def jacobi(A, *, grid_shape=None, omega=1.0):
    """Build ``v -> ω D⁻¹ v``.

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n)
        With a non-zero diagonal. A block-diagonal stack of ``s`` systems (see
        :func:`~sciml.datasets.krylov.block_diagonal`) gives a preconditioner for blocks
        ``(s, n / s)``.
    grid_shape : tuple, optional
        Unused (common builder signature).
    omega : float
        Damping factor, > 0.

    Returns
    -------
    callable
        ``v -> ω D⁻¹ v`` for ``v`` of shape (n,) or (s, n) (or (s, n / s) for a stack), in
        ``v``'s dtype.
    """
    A = check_matrix(A)
    omega = finite_float("omega", omega)
    if omega <= 0:
        raise ValueError(f"omega must be > 0 (M⁻¹ = ω D⁻¹ must keep the sign of D⁻¹), got "
                         f"{omega!r}")
    diagonal = matrix_diagonal(A)
    if not bool((diagonal != 0).all()):
        raise ValueError("A must have a non-zero diagonal for Jacobi preconditioning")
    inverse = omega / diagonal
    size = inverse.shape[0]

    def apply(v):
        d = inverse.to(v.dtype)
        return (v.reshape(-1, size) * d).reshape(v.shape)

    return apply
