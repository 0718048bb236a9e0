"""GCRO-DR in blocks: a block of systems solved at once, its recycled space carried to the next
block along SKR's sorted order.

Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces for sequences of
linear systems", SIAM J. Sci. Comput. 28 (2006), 1651–1674 (GCRO-DR), applied to a block of
``s`` systems that follow each other in SKR's order (Wang et al., ICLR 2024):

- the block's first system (its *leader*) is solved by :func:`~.gcro_dr.gcro_dr` with the
  space ``U`` carried from the previous block; its deflation updates ``U`` (harmonic Ritz
  vectors), which is passed on to the next block;
- the other ``s − 1`` systems start from that same ``U`` and are solved together by
  GCRO-DR(m, k), every kernel batched over the block as in :func:`~.batched.gmres_batched`:
  ``C_i = A_i M_i U_i`` by a thin QR per system (one batched QR), cycles of ``m − k``
  Arnoldi steps on ``(I − C_i C_iᵀ) A_i M_i`` minimizing over ``range([Ũ_i, V_i])``, and
  after each cycle each system's own ``U_i`` replaced by its harmonic Ritz vectors (a small
  dense eigenproblem per system, on the host). Each system deflates its own spectrum from
  the carried start: holding ``U`` fixed inside the block instead (GCRO without deflated
  restarts) stalls on the indefinite Helmholtz systems, as restarted GMRES does.

Every cycle starts from the true residual ``b_i − A_i x_i``, and a system is reported
converged only on that residual. (The paper's equation numbers are not repeated here; the
lines mirror :func:`~.gcro_dr.gcro_dr` with a batch axis.)
"""
from __future__ import annotations

import time

import torch

from ._operator import AttainableAccuracy, check_rhs, synchronize
from .arnoldi import GivensLeastSquares, cgs2, harmonic_ritz
from .batched import _check_block, _results
from .gcro_dr import gcro_dr
from .gmres_dr import check_m_k

__all__ = ["gcro_dr_batched"]


def _check_preconditioners(M, s):
    """``M`` as a list of ``s`` callables or Nones (one per system)."""
    if M is None:
        return [None] * s
    if not isinstance(M, (list, tuple)) or len(M) != s or not all(
            f is None or callable(f) for f in M):
        got = f"a list of {len(M)}" if isinstance(M, (list, tuple)) else type(M).__name__
        raise TypeError(f"M must be None or a list of {s} callables (one per system), got "
                        f"{got}")
    return list(M)


def _refit(U, apply_m, matvec, s):
    """``C_i`` (s, k, n) orthonormal with ``C_i = A_i M_i U_i``, and ``U_i = U R_i⁻¹``.

    Directions of the shared ``U`` that are numerically dependent are dropped first
    (``A_i M_i`` is invertible, so ``A_i M_i U`` has the rank of ``U``). Returns
    ``(None, None)`` when nothing is left.
    """
    R = torch.linalg.qr(U.T)[1]
    size = R.diagonal().abs()
    U = U[size > max(U.shape) * torch.finfo(U.dtype).eps * size.max()]
    if U.shape[0] == 0:
        return None, None
    AMU = torch.stack([matvec(apply_m(u.expand(s, -1).contiguous())) for u in U], 1)
    Q, R = torch.linalg.qr(AMU.transpose(1, 2))                                 # per system
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device).expand_as(R)
    inverse_t = torch.linalg.solve_triangular(R, eye, upper=True).transpose(1, 2)
    return Q.transpose(1, 2).contiguous(), inverse_t @ U                        # C, U R⁻¹


def _deflate(hess, basis, U_tilde, kk, cols, k):
    """Each system's new ``(C_i, U_i)`` from the harmonic Ritz vectors of its last cycle.

    Harmonic Ritz problem ``Gᵀ G z = θ Gᵀ Wᵀ V̂ z`` with ``W = [C, V_{m−k+1}]``,
    ``V̂ = [Ũ, V_{m−k}]``; then ``[Q, R] = qr(G P)``, ``C = W Q``, ``U = V̂ P R⁻¹``. All systems
    keep the same number of vectors (the fewest any returned), so the block stays batched.
    """
    s = basis.shape[0]
    WtV = torch.zeros(s, cols + 1, cols, dtype=torch.float64)
    if kk:
        WtV[:, :, :kk] = (basis[:, :cols + 1] @ U_tilde.transpose(1, 2)).to("cpu", torch.float64)
    WtV[:, kk:cols, kk:cols] = torch.eye(cols - kk, dtype=torch.float64)
    G = hess[:, :cols + 1, :cols].to("cpu", torch.float64)
    P = [harmonic_ritz(G[i].numpy(), WtV[i].numpy(), min(k, cols - 1)) for i in range(s)]
    width = min(p.shape[1] for p in P)
    P = torch.stack([torch.from_numpy(p[:, :width]) for p in P])
    Q, R = torch.linalg.qr(G @ P)
    C = Q.transpose(1, 2).to(basis) @ basis[:, :cols + 1]                      # C = W Q
    Z = torch.linalg.solve_triangular(R.transpose(1, 2), P.transpose(1, 2),
                                      upper=False).to(basis)                   # (P R⁻¹)ᵀ
    U = Z[:, :, kk:] @ basis[:, kk:cols]
    if kk:
        U = U + Z[:, :, :kk] @ U_tilde
    return C, U


def gcro_dr_batched(As, B, *, X0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, m=40,
                    k=20, recycle=None, check_every=1) -> list:
    """Solve the ``s`` systems ``A_i x_i = b_i`` of a block, recycling a space across blocks.

    Parameters
    ----------
    As : list of ``s`` sparse CSR tensors (n, n)
        The block's matrices, in the order the space is carried (the leader first).
    B : Tensor, shape (s, n)
    X0 : Tensor, shape (s, n), optional
    rtol, atol, maxiter
        As for :func:`~.batched.gmres_batched` (``maxiter`` per system).
    M : list of ``s`` callables (or Nones), or None
        Right preconditioner of each system, ``v -> M_i⁻¹ v`` on ``(n,)`` and ``(r, n)``.
    m, k : int
        Cycle length and recycled dimension, as for :func:`~.gcro_dr.gcro_dr`.
    recycle : RecycleSpace, optional
        The space of the previous block (``results[0].recycle`` of its call).
    check_every : int
        As for :func:`~.batched.gmres_batched`.

    Returns
    -------
    list of SolveResult
        One per system, with its own iterations and true residual; ``results[0].recycle``
        is the space to pass to the next block.
    """
    if not isinstance(As, (list, tuple)) or len(As) < 1:
        raise TypeError(f"As must be a non-empty list of the block's matrices, got "
                        f"{type(As).__name__}")
    B = check_rhs(B, "B", 2, "(s, n), one right-hand side per row")
    if B.shape[0] != len(As):
        raise ValueError(f"B must have one row per matrix ({len(As)}), got {tuple(B.shape)}")
    M = _check_preconditioners(M, len(As))
    m, k = check_m_k(m, k, B.shape[1])
    leader = gcro_dr(As[0], B[0], x0=None if X0 is None else X0[0], rtol=rtol, atol=atol,
                     maxiter=maxiter, M=M[0], m=m, k=k, recycle=recycle)
    space = leader.recycle if leader.recycle is not None else recycle
    leader.recycle = space
    if len(As) == 1:
        return [leader]
    B, matvec, X, R, matvecs, maxiter, check_every, b_norm, tol = _check_block(
        list(As[1:]), B[1:], None if X0 is None else X0[1:], rtol, atol, maxiter, None,
        check_every)
    s, n = B.shape
    rest = M[1:]
    apply_m = (lambda V: V) if all(f is None for f in rest) else \
        (lambda V: torch.stack([v if f is None else f(v) for f, v in zip(rest, V)]))
    synchronize(B.device)
    start = time.perf_counter()
    C = U = None
    if space is not None and k > 0:
        C, U = _refit(space.U.to(B), apply_m, matvec, s)
        matvecs += 0 if C is None else C.shape[1]
    basis = B.new_zeros(s, m + 1, n)
    hess = B.new_zeros(s, m + 1, m)
    lsq = GivensLeastSquares(s, m, B.dtype, B.device)
    r_norm = torch.linalg.vector_norm(R, dim=1)
    pending = (r_norm > tol) & torch.isfinite(r_norm)
    iterations = torch.zeros(s, dtype=torch.long, device=B.device)
    floor = AttainableAccuracy(s, B.device)
    step = 0
    while step < maxiter and bool(pending.any()):
        started = pending.unsqueeze(1)
        kk = 0 if C is None else C.shape[1]
        hess.zero_()
        head = U_tilde = None
        if kk:
            # x ← x + M U Cᵀr, r ← r − C Cᵀr (start of a cycle): C = A M U exactly.
            cr = (C @ R.unsqueeze(-1)).squeeze(-1)
            X = torch.where(started, X + apply_m((cr.unsqueeze(1) @ U).squeeze(1)), X)
            R = torch.where(started, R - (cr.unsqueeze(1) @ C).squeeze(1), R)
            scale = 1.0 / torch.linalg.vector_norm(U, dim=2)
            U_tilde = U * scale.unsqueeze(2)                     # Ũ = U D_k, A M Ũ = C D_k
            basis[:, :kk] = C
            hess[:, :kk, :kk] = torch.diag_embed(scale)
            head = hess[:, :kk + 1, :kk]
        r_norm = torch.linalg.vector_norm(R, dim=1)
        basis[:, kk] = R / torch.where(r_norm > 0, r_norm, 1).unsqueeze(1)
        g = B.new_zeros(s, m + 1)
        g[:, kk] = r_norm                                       # [Cᵀr; Vᵀr] = [0; β e₁]
        lsq.reset(g, head)
        y_done = B.new_zeros(s, m)
        for j in range(kk, m):
            W = matvec(apply_m(basis[:, j]))
            h, W = cgs2(basis[:, :j + 1], W)                     # against [C_i, V_i]
            h_next = torch.linalg.vector_norm(W, dim=1)
            column = torch.cat([h, h_next.unsqueeze(1)], dim=1)
            hess[:, :j + 2, j] = column
            estimate = lsq.add_column(column)
            iterations += pending
            step += 1
            basis[:, j + 1] = W / torch.where(h_next > 0, h_next, 1).unsqueeze(1)
            done_now = pending & (estimate <= tol)
            y_done[:, :j + 1] = torch.where(done_now.unsqueeze(1), lsq.solve(),
                                            y_done[:, :j + 1])
            pending = pending & ~done_now
            if step >= maxiter or (step % check_every == 0 and not bool(pending.any())):
                break
        estimated = started.squeeze(1) & ~pending
        cols = lsq.cols
        y = torch.where(estimated.unsqueeze(1), y_done[:, :cols],
                        torch.where(started, lsq.solve(), 0))
        # x ← x + M V̂ y with V̂ = [Ũ, V_{m−k}] (the minimizer over V̂).
        update = (y[:, kk:].unsqueeze(1) @ basis[:, kk:cols]).squeeze(1)
        if kk:
            update = update + (y[:, :kk].unsqueeze(1) @ U_tilde).squeeze(1)
        X = torch.where(started, X + apply_m(update), X)
        R = B - matvec(X)                                       # the true residual
        r_norm = torch.linalg.vector_norm(R, dim=1)
        matvecs += 1
        pending = (r_norm > tol) & torch.isfinite(r_norm)
        pending &= ~floor.reached(estimated)
        if k > 0 and cols > 1 and bool(pending.any()) and step < maxiter:
            C, U = _deflate(hess, basis, U_tilde, kk, cols, k)
    synchronize(B.device)
    return [leader, *_results(X, r_norm, b_norm, tol, iterations, matvecs,
                              time.perf_counter() - start)]
