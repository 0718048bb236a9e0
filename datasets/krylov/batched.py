"""Batched CG and GMRES: a block of ``s`` independent systems solved at once.

One system of 64²–256² unknowns leaves a GPU idle (a 5-point SpMV at 512² takes 41 µs on an
H100, mostly launch time; NOTES.md). Here every kernel works on the whole block: the
matrices are stacked into one block-diagonal CSR matrix (or a callable maps ``(s, n)`` to
``(s, n)``), inner products, step lengths and Givens rotations are vectors over the batch,
and the host reads one flag every ``check_every`` iterations. A system that has converged is
masked on the device: its iterate no longer changes and its iteration count stops, so
iterations run past its convergence (until the host next looks) change nothing.

CG: Hestenes & Stiefel (1952), preconditioned as in Saad, "Iterative Methods for Sparse
Linear Systems", 2nd ed., Alg. 9.1. GMRES(m): Saad & Schultz (1986), right preconditioned
(Saad, Alg. 9.5), with the Arnoldi and Givens helpers of :mod:`.arnoldi`, batched. Each
system takes the iterations it would take alone; the block takes as many as its slowest. As
in the single-system solvers, a system whose tolerance lies below the dtype's attainable
accuracy stops early, unconverged (:class:`~._operator.AttainableAccuracy`).

CUDA graphs are not used: with a large ``check_every`` the loop is close to host-free, but no
GPU was available to capture and test one.
"""
from __future__ import annotations

import math
import time
import warnings

import torch

from sciml.validation import positive_int

from ._shared import SolveResult
from ._operator import (AttainableAccuracy, as_matvec, check_every_value, check_options,
                        check_rhs, check_start, synchronize)
from .arnoldi import GivensLeastSquares, cgs2

__all__ = ["block_diagonal", "cg_batched", "gmres_batched"]


def block_diagonal(matrices) -> torch.Tensor:
    """Stack square sparse CSR matrices into one block-diagonal CSR matrix.

    Parameters
    ----------
    matrices : sequence of Tensor, sparse CSR, shapes (n_i, n_i)
        On one device, in one dtype.

    Returns
    -------
    Tensor, sparse CSR, shape (Σ n_i, Σ n_i)
    """
    if not isinstance(matrices, (list, tuple)) or len(matrices) == 0:
        raise TypeError(f"matrices must be a non-empty list of sparse CSR tensors, got "
                        f"{type(matrices).__name__}")
    first = matrices[0]
    for i, A in enumerate(matrices):
        if not isinstance(A, torch.Tensor) or A.layout != torch.sparse_csr:
            raise TypeError(f"matrices[{i}] must be a torch sparse CSR tensor, got "
                            f"{getattr(A, 'layout', type(A).__name__)}")
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"matrices[{i}] must be square, got shape {tuple(A.shape)}")
        if A.device != first.device or A.dtype != first.dtype:
            raise ValueError(f"matrices[{i}] must match matrices[0] ({first.dtype} on "
                             f"{first.device}), got {A.dtype} on {A.device}")
    sizes = torch.tensor([A.shape[0] for A in matrices])
    nnz = torch.tensor([A.values().numel() for A in matrices])
    row_offsets = (torch.cumsum(sizes, 0) - sizes).tolist()
    nnz_offsets = (torch.cumsum(nnz, 0) - nnz).tolist()
    crow = torch.cat([first.crow_indices()[:1]]
                     + [A.crow_indices()[1:] + o for A, o in zip(matrices, nnz_offsets)])
    col = torch.cat([A.col_indices() + o for A, o in zip(matrices, row_offsets)])
    values = torch.cat([A.values() for A in matrices])
    total = int(sizes.sum())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # Valid by construction: the checks would cost a pass over the indices.
        return torch.sparse_csr_tensor(crow, col, values, (total, total), check_invariants=False)


def _block_operator(A, s, n, dtype, device):
    """``(s, n) -> (s, n)`` from a list of ``s`` matrices, one shared matrix, or a callable."""
    if isinstance(A, (list, tuple)):
        if len(A) != s:
            raise ValueError(f"A must hold one matrix per system ({s}), got {len(A)}")
        stacked = as_matvec(block_diagonal(A), s * n, dtype, device)
        return lambda X: stacked(X.reshape(-1)).view(s, n)
    return as_matvec(A, n, dtype, device)


def _check_block(A, B, X0, rtol, atol, maxiter, M, check_every):
    """The block's arguments checked by the single-system checks; the start ``X, R``."""
    B = check_rhs(B, "B", 2, "(s, n), one right-hand side per row")
    s, n = B.shape
    matvec = _block_operator(A, s, n, B.dtype, B.device)
    X = check_start(X0, "X0", B, "B")
    rtol, atol, maxiter = check_options(rtol, atol, maxiter, M, n)
    check_every = check_every_value(check_every)
    if X is None:
        X, R, matvecs = torch.zeros_like(B), B.clone(), 0
    else:
        X, R, matvecs = X.clone(), B - matvec(X), 1
    b_norm = torch.linalg.vector_norm(B, dim=1)
    tol = torch.clamp(rtol * b_norm, min=atol)
    return B, matvec, X, R, matvecs, maxiter, check_every, b_norm, tol


def _results(X, r_norm, b_norm, tol, iterations, matvecs, seconds):
    """One SolveResult per system; ``seconds`` is the block's wall time shared equally."""
    r_norm, b_norm, tol = r_norm.tolist(), b_norm.tolist(), tol.tolist()
    iterations = iterations.tolist()
    share = seconds / len(r_norm)
    return [SolveResult(x=X[i], iterations=iterations[i], matvecs=matvecs + iterations[i],
                        residual=r_norm[i] / b_norm[i] if b_norm[i] > 0 else r_norm[i],
                        converged=math.isfinite(r_norm[i]) and r_norm[i] <= tol[i],
                        seconds=share)
            for i in range(len(r_norm))]


def cg_batched(A, B, *, X0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None,
               check_every=1) -> list:
    """Solve ``s`` SPD systems ``A_i x_i = b_i`` by preconditioned CG, all at once.

    Parameters
    ----------
    A : list of ``s`` sparse CSR tensors (n, n), one tensor (n, n) shared by all, or callable
        A callable maps a block ``(s, n)`` to ``(s, n)``.
    B : Tensor, shape (s, n)
        One right-hand side per row; the solve runs on its device and in its dtype.
    X0 : Tensor, shape (s, n), optional
    rtol, atol : float
        System ``i`` has converged when ``‖b_i − A_i x_i‖ ≤ max(rtol ‖b_i‖, atol)``.
    maxiter : int, optional
        Maximum iterations of the block (default ``10 n``).
    M : callable, optional
        SPD preconditioner on blocks ``(s, n) -> (s, n)``.
    check_every : int
        Read the convergence flags on the host (a device synchronization) only every
        ``check_every`` iterations. Converged systems are masked on the device, so the extra
        iterations change neither their solution nor their iteration count: results are the
        same for every value. 1 (the default) keeps CPU runs free of wasted iterations; on
        CUDA, 10–20 removes most synchronizations at the cost of at most ``check_every − 1``
        masked iterations of the block.

    Returns
    -------
    list of SolveResult
        One per system, with its own iterations and true residual; ``matvecs`` counts the
        system's own products, ``seconds`` is the block's time divided by ``s``.
    """
    B, matvec, X, R, matvecs, maxiter, check_every, b_norm, tol = _check_block(
        A, B, X0, rtol, atol, maxiter, M, check_every)
    synchronize(B.device)
    start = time.perf_counter()
    apply_m = (lambda V: V) if M is None else M
    r_norm = torch.linalg.vector_norm(R, dim=1)
    active = r_norm > tol
    iterations = torch.zeros(B.shape[0], dtype=torch.long, device=B.device)
    floor = AttainableAccuracy(B.shape[0], B.device)
    step = 0
    while step < maxiter and bool(active.any()):
        started = active
        Z = apply_m(R)
        rho = (R * Z).sum(1)
        P = torch.where(active.unsqueeze(1), Z, 0)
        while True:
            Q = matvec(P)
            alpha = torch.where(active, rho / (P * Q).sum(1), 0)   # Alg. 9.1, line 3
            X = X + alpha.unsqueeze(1) * P
            R = R - alpha.unsqueeze(1) * Q
            r_norm = torch.linalg.vector_norm(R, dim=1)
            iterations += active
            step += 1
            active = active & (r_norm > tol) & torch.isfinite(r_norm)
            if step >= maxiter or (step % check_every == 0 and not bool(active.any())):
                break
            Z = apply_m(R)
            rho_next = (R * Z).sum(1)
            # Converged systems get P = 0, so their x and r stay as they are.
            P = torch.where(active.unsqueeze(1), Z + (rho_next / rho).unsqueeze(1) * P, 0)
            rho = rho_next
        recurrence_converged = started & (r_norm <= tol)
        R = B - matvec(X)                          # the true residual; restart where it drifted
        r_norm = torch.linalg.vector_norm(R, dim=1)
        matvecs += 1
        active = (r_norm > tol) & torch.isfinite(r_norm)
        active &= ~floor.reached(recurrence_converged)
    synchronize(B.device)
    return _results(X, r_norm, b_norm, tol, iterations, matvecs,
                    time.perf_counter() - start)


def gmres_batched(A, B, *, X0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None,
                  restart=40, check_every=1) -> list:
    """Solve ``s`` systems ``A_i x_i = b_i`` by right-preconditioned GMRES(restart) at once.

    Parameters
    ----------
    A, B, X0, rtol, atol, maxiter
        As for :func:`cg_batched`; the matrices need not be symmetric.
    M : callable, optional
        Right preconditioner on blocks ``(s, n) -> (s, n)``.
    restart : int
        Arnoldi steps per cycle ``m`` (capped at ``n``).
    check_every : int
        As for :func:`cg_batched`.

    Returns
    -------
    list of SolveResult
        As for :func:`cg_batched`.
    """
    B, matvec, X, R, matvecs, maxiter, check_every, b_norm, tol = _check_block(
        A, B, X0, rtol, atol, maxiter, M, check_every)
    synchronize(B.device)
    start = time.perf_counter()
    apply_m = (lambda V: V) if M is None else M
    s, n = B.shape
    m = min(positive_int("restart", restart), n)
    basis = B.new_zeros(s, m + 1, n)
    lsq = GivensLeastSquares(s, m, B.dtype, B.device)
    r_norm = torch.linalg.vector_norm(R, dim=1)
    pending = (r_norm > tol) & torch.isfinite(r_norm)
    iterations = torch.zeros(s, dtype=torch.long, device=B.device)
    floor = AttainableAccuracy(s, B.device)
    step = 0
    while step < maxiter and bool(pending.any()):
        started = pending
        safe = torch.where(r_norm > 0, r_norm, 1).unsqueeze(1)
        basis[:, 0] = R / safe
        g = B.new_zeros(s, m + 1)
        g[:, 0] = r_norm                                            # β e₁
        lsq.reset(g)
        # A system's minimizer is taken, on the device, at the step where its estimate reaches
        # the tolerance; the rest of the cycle is masked for it.
        y_done = B.new_zeros(s, m)
        for j in range(m):
            W = matvec(apply_m(basis[:, j]))
            h, W = cgs2(basis[:, :j + 1], W)
            h_next = torch.linalg.vector_norm(W, dim=1)
            estimate = lsq.add_column(torch.cat([h, h_next.unsqueeze(1)], dim=1))
            iterations += pending
            step += 1
            basis[:, j + 1] = W / torch.where(h_next > 0, h_next, 1).unsqueeze(1)
            done_now = pending & (estimate <= tol)
            y_done[:, :j + 1] = torch.where(done_now.unsqueeze(1), lsq.solve(), y_done[:, :j + 1])
            pending = pending & ~done_now
            if step >= maxiter or (step % check_every == 0 and not bool(pending.any())):
                break
        estimated = started & ~pending
        # x ← x + M V y over the cycle's columns (Saad, Alg. 9.5); y is 0 past a system's own.
        cols = lsq.cols
        y = torch.where(estimated.unsqueeze(1), y_done[:, :cols],
                        torch.where(started.unsqueeze(1), lsq.solve(), 0))
        correction = apply_m((y.unsqueeze(1) @ basis[:, :cols]).squeeze(1))
        X = torch.where(started.unsqueeze(1), X + correction, X)
        R = B - matvec(X)                                 # the true residual starts a cycle
        r_norm = torch.linalg.vector_norm(R, dim=1)
        matvecs += 1
        pending = (r_norm > tol) & torch.isfinite(r_norm)
        pending &= ~floor.reached(estimated)
    synchronize(B.device)
    return _results(X, r_norm, b_norm, tol, iterations, matvecs,
                    time.perf_counter() - start)
