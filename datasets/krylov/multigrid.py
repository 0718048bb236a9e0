"""Geometric multigrid V-cycle for operators on a structured grid, as a preconditioner.

The unknowns are the interior nodes of an ``ny × nx`` grid in row-major order (as in
:meth:`sciml.datasets.pdes.Darcy.assemble`). Each level coarsens by two in each direction
(vertex-centred: coarse node ``J`` is fine node ``2J + 1``) with bilinear interpolation
``P = P_y ⊗ P_x``, restriction ``R = Pᵀ`` and Galerkin coarse operators ``A_c = Pᵀ A P``
(Trottenberg, Oosterlee & Schüller, "Multigrid", 2001, Ch. 2; Briggs, Henson &
McCormick, "A Multigrid Tutorial", 2nd ed., Ch. 3), all sparse matrices on the device of
``A``. Smoothing is damped Jacobi, the coarsest level is solved by a dense LU. Galerkin
coarsening makes the method robust to the variable coefficients of Darcy flow, and with
equal pre- and post-smoothing the V-cycle is a symmetric positive definite operator for SPD
``A``, so it can precondition CG (iterations nearly independent of the resolution).
A block-diagonal stack of systems on one grid is coarsened system by system
(``I ⊗ P``, a batched dense LU at the bottom): one preconditioner for the batched solvers.
"""
from __future__ import annotations

import warnings

import torch

from sciml.validation import finite_float, positive_int

from .jacobi import check_matrix, matrix_diagonal

__all__ = ["multigrid", "interpolation"]


def _interpolation_1d(m: int, device, dtype):
    """Entries ``(fine, coarse, weight)`` of 1-D linear interpolation from ``m // 2`` nodes."""
    coarse = torch.arange(m // 2, device=device)
    fine = 2 * coarse + 1
    rows = torch.cat([fine, fine - 1, fine + 1])
    cols = torch.cat([coarse, coarse, coarse])
    weights = torch.cat([torch.ones(len(coarse)), torch.full((2 * len(coarse),), 0.5)])
    keep = rows < m                           # node m is the Dirichlet boundary
    return rows[keep], cols[keep], weights.to(device=device, dtype=dtype)[keep]


def _block_diagonal_csr(rows, cols, values, shape, batch):
    """``I_batch ⊗ B`` as sparse CSR, for the block ``B`` given by distinct ``(rows, cols, values)``
    entries of ``shape``: the block is sorted once and its index arrays repeated with offsets,
    which is much cheaper than coalescing the whole stack."""
    order = torch.argsort(rows * shape[1] + cols)
    rows, cols, values = rows[order], cols[order], values[order]
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    offsets = torch.arange(batch, device=rows.device)[:, None]
    crow = torch.cat([(crow[:-1][None, :] + offsets * len(values)).reshape(-1), crow[-1:] * batch])
    cols = (cols[None, :] + offsets * shape[1]).reshape(-1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values.repeat(batch), (batch * shape[0], batch * shape[1]),
                                       check_invariants=False)


def interpolation(grid_shape, device, dtype, batch=1):
    """Bilinear interpolation ``P`` and restriction ``Pᵀ`` from the grid coarsened by two.

    Parameters
    ----------
    grid_shape : (int, int)
        Interior nodes ``(ny, nx)``, each ≥ 2.
    batch : int
        Systems stacked block-diagonally (``P`` is then ``I_batch ⊗ P``).

    Returns
    -------
    P : Tensor, sparse CSR, shape (batch ny nx, batch (ny // 2)(nx // 2))
    R : Tensor, sparse CSR, the transpose of ``P``
    coarse_shape : (int, int)
    """
    ny, nx = grid_shape
    ry, cy, wy = _interpolation_1d(ny, device, dtype)
    rx, cx, wx = _interpolation_1d(nx, device, dtype)
    my, mx = ny // 2, nx // 2
    rows = (ry[:, None] * nx + rx[None, :]).reshape(-1)          # P = P_y ⊗ P_x
    cols = (cy[:, None] * mx + cx[None, :]).reshape(-1)
    values = (wy[:, None] * wx[None, :]).reshape(-1)
    P = _block_diagonal_csr(rows, cols, values, (ny * nx, my * mx), batch)   # I_batch ⊗ P
    R = _block_diagonal_csr(cols, rows, values, (my * mx, ny * nx), batch)
    return P, R, (my, mx)


def _check_grid_shape(grid_shape, n):
    """``(batch, ny, nx)`` from ``(ny, nx)`` or ``(batch, ny, nx)`` with ``batch·ny·nx = n``."""
    if (not isinstance(grid_shape, (tuple, list)) or len(grid_shape) not in (2, 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in grid_shape)):
        raise TypeError(f"grid_shape must be (ny, nx) or (batch, ny, nx) ints, got "
                        f"{grid_shape!r}")
    batch, ny, nx = (1, *grid_shape) if len(grid_shape) == 2 else grid_shape
    if min(batch, ny, nx) < 1 or batch * ny * nx != n:
        raise ValueError(f"grid_shape must have a product equal to n = {n} (ny * nx, or "
                         f"batch * ny * nx), got {tuple(grid_shape)}")
    return batch, ny, nx


def _diagonal_blocks(A, batch):
    """The ``batch`` diagonal blocks of a block-diagonal CSR matrix, dense, (batch, m, m)."""
    m = A.shape[0] // batch
    rows = torch.repeat_interleave(torch.arange(A.shape[0], device=A.device),
                                   A.crow_indices().diff())
    blocks = torch.zeros(batch, m, m, dtype=A.dtype, device=A.device)
    blocks[rows // m, rows % m, A.col_indices() % m] = A.values()
    return blocks


def _galerkin(R, A, P):
    """``R A P`` as a sparse CSR matrix.

    On the CPU through COO: torch 2.13's CPU product of two CSR matrices keeps about 40 MB
    per call at a block of 32 systems of 128² (measured: RSS grew without bound, and each
    later multigrid setup ran slower, 0.15 s to 1.5 s per chunk over 16 chunks); the COO
    product gives the same matrix (to 2e-16) and frees its memory, at 1.5× the time.
    """
    if A.device.type != "cpu":
        return R @ (A @ P)
    coo = R.to_sparse_coo() @ (A.to_sparse_coo() @ P.to_sparse_coo())
    return coo.coalesce().to_sparse_csr()


def _v_cycle(levels, coarse_lu, batch, smoothing_steps, level, rhs):
    """One V-cycle from ``level`` down. A module function, not a closure calling itself:
    such a closure is a reference cycle, and the hierarchy it holds (hundreds of MB for a
    block of systems) then waits for the garbage collector instead of being freed."""
    if level == len(levels):                   # one dense solve per stacked system
        columns = rhs.shape[1]
        solved = torch.linalg.lu_solve(*coarse_lu, rhs.view(batch, -1, columns))
        return solved.reshape(-1, columns)
    A_l, scaled_inverse, P, R = levels[level]
    d = scaled_inverse.unsqueeze(1)
    x = d * rhs                                # first sweep from x = 0
    for _ in range(smoothing_steps - 1):
        x = x + d * (rhs - A_l @ x)
    x = x + P @ _v_cycle(levels, coarse_lu, batch, smoothing_steps, level + 1,
                         R @ (rhs - A_l @ x))
    for _ in range(smoothing_steps):
        x = x + d * (rhs - A_l @ x)
    return x


def multigrid(A, *, grid_shape=None, smoothing_steps=2, omega=0.8, coarsest_size=64):
    """Build a geometric multigrid V-cycle ``v -> V(A) v``.

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (N, N)
        A 5-point-like operator on the interior nodes of ``grid_shape``, or ``batch`` such
        operators stacked block-diagonally (see :func:`~sciml.datasets.krylov.block_diagonal`),
        each coarsened on its own.
    grid_shape : (int, int) or (int, int, int)
        Interior nodes ``(ny, nx)``, row-major, ``ny · nx = N`` (required); or
        ``(batch, ny, nx)`` for a stack, ``batch · ny · nx = N``.
    smoothing_steps : int
        Damped-Jacobi sweeps before and after the coarse correction.
    omega : float
        Jacobi damping factor in ``(0, 1]``; 4/5 minimizes the smoothing factor of Jacobi for
        the five-point Laplacian (Trottenberg et al., Sec. 2.1).
    coarsest_size : int
        Coarsening stops once a level has at most this many unknowns per system (or a side
        below 3); that level is solved by a dense LU (batched over a stack).

    Returns
    -------
    callable
        ``v -> V(A) v`` for ``v`` with ``N`` entries per right-hand side: (N,) or (s, N),
        and for a stack also (batch, ny · nx) as the batched solvers pass it.
    """
    A = check_matrix(A)
    if grid_shape is None:
        raise ValueError("grid_shape must be given for the geometric multigrid, got None")
    batch, *shape = _check_grid_shape(grid_shape, A.shape[0])
    smoothing_steps = positive_int("smoothing_steps", smoothing_steps)
    omega = finite_float("omega", omega)
    if not 0 < omega <= 1:
        raise ValueError(f"omega must be in (0, 1], got {omega}")
    coarsest_size = positive_int("coarsest_size", coarsest_size)
    size, dtype = A.shape[0], A.dtype
    level_matrix = A.to_sparse_csr() if A.layout == torch.strided else A
    levels = []                                   # (A_l, ω D_l⁻¹, P_l, R_l)
    while shape[0] * shape[1] > coarsest_size and min(shape) >= 3:
        P, R, shape = interpolation(shape, A.device, dtype, batch)
        diagonal = matrix_diagonal(level_matrix)
        if not bool((diagonal != 0).all()):
            raise ValueError("A must have a non-zero diagonal on every multigrid level")
        levels.append((level_matrix, omega / diagonal, P, R))
        level_matrix = _galerkin(R, level_matrix, P)  # A_c = Pᵀ A P
    coarse_lu = torch.linalg.lu_factor(_diagonal_blocks(level_matrix, batch))

    def apply(v):
        if v.numel() % size:
            raise ValueError(f"v must hold right-hand sides of {size} entries, got shape "
                             f"{tuple(v.shape)}")
        columns = v.reshape(-1, size).T.to(dtype).contiguous()   # one right-hand side each
        return _v_cycle(levels, coarse_lu, batch, smoothing_steps, 0, columns).T.reshape(
            v.shape).to(v.dtype)

    return apply
