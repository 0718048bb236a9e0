"""GCRO-DR(m, k): GMRES with deflated restarting that recycles its deflation space across a
sequence of linear systems.

Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces for sequences of
linear systems", SIAM J. Sci. Comput. 28 (2006), 1651–1674, the GCRO-DR algorithm (with right
preconditioning: the operator is ``A M``). The space ``U_k`` kept from the previous system
enters with ``C_k = A M U_k`` re-fitted by a thin QR for the new matrix; each
cycle runs ``m − k`` Arnoldi steps on ``(I − C_k C_kᵀ) A M`` and minimizes over
``range([U_k, V_{m−k}])``; the new ``U_k`` holds harmonic Ritz vectors of the cycle.
(The paper's equation numbers are not repeated here: each line carries its formula.)

Every cycle starts from the true residual ``b − A x``, projected off ``C_k``, so the result's
residual is never a recurrence estimate (a tolerance below the dtype's attainable accuracy
ends the solve early, unconverged). With ``recycle=None`` the first cycle is GMRES(m)
and the next ones are GMRES-DR(m, k) in GCRO form (the two are algebraically equivalent,
Sec. 2); with ``k = 0`` the method is GMRES(m), step for step.

Safeguards a sequence needs: the refit drops directions of a rank-deficient space (repeated
or zero vectors) instead of inverting a singular ``R``; a solve that ends non-finite returns
no space, so a breakdown is not carried to the next system; when the recycled space alone
seems to solve the system (projected residual below the tolerance) the true residual is
checked, and the iteration goes on if it misses; and a solve that converges in fewer than
``k + 1`` iterations (a strong preconditioner) still returns the ``min(k, cols − 1)``
harmonic Ritz vectors of its short cycle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._shared import SolveResult
from ._operator import AttainableAccuracy, check_problem, finish, initial_residual
from .arnoldi import GivensLeastSquares, arnoldi_cycle, harmonic_ritz
from .gmres_dr import check_m_k

__all__ = ["gcro_dr", "RecycleSpace"]


@dataclass
class RecycleSpace:
    """The recycled space carried from one solve to the next (not data; never stored).

    Attributes
    ----------
    U : Tensor, shape (k, n)
        Basis of the recycled space, one vector per row, in the preconditioned variables
        (the solution update is ``M U y``).
    """

    U: torch.Tensor


def _refit(problem, U):
    """``C = A M U`` by a thin QR for the current matrix: ``C ← Q``, ``U ← U R⁻¹``.

    Directions of ``U`` that ``A M`` maps into the span of the others (a repeated or zero
    vector, a space of lower rank) are dropped: after a first QR, column ``j`` is kept when
    ``|R_jj| > max(n, k) ε max_i |R_ii|`` (numpy's ``matrix_rank`` tolerance: ``|R_jj|`` is
    the distance of column ``j`` from the span of the columns before it), and the kept ones
    are factorized again, so ``R`` is invertible. Returns ``(None, None)`` when nothing is
    kept. For a tensor ``A`` the ``k`` products are one block product.
    """
    MU = U if problem.precond is None else torch.stack([problem.apply_m(u) for u in U])
    AU = problem.matvec(MU) if problem.blocks else torch.stack([problem.matvec(u) for u in MU])
    Q, R = torch.linalg.qr(AU.T)
    size = R.diagonal().abs()
    if not bool(torch.isfinite(size).all()):
        return None, None
    keep = size > max(AU.shape) * torch.finfo(R.dtype).eps * size.max()
    if not bool(keep.all()):
        U = U[keep]
        if U.shape[0] == 0:
            return None, None
        Q, R = torch.linalg.qr(AU[keep].T)
    eye = torch.eye(R.shape[0], dtype=R.dtype, device=R.device)
    U = torch.linalg.solve_triangular(R, eye, upper=True).T @ U   # rows of U R⁻¹, k × k solve
    return Q.T.contiguous(), U


def gcro_dr(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None,
            m=40, k=20, recycle=None) -> SolveResult:
    """Solve ``A x = b`` by GCRO-DR(m, k), optionally recycling a space from an earlier solve.

    Parameters
    ----------
    A, b, x0, rtol, atol, maxiter, M, callback
        As for :func:`sciml.datasets.krylov.gmres`.
    m : int
        Dimension of a cycle's search space (``k`` recycled + ``m − k`` Arnoldi vectors).
    k : int
        Dimension of the recycled space (``0 <= k < m − 1``).
    recycle : RecycleSpace, optional
        The ``recycle`` of the previous system's result; its matrix may differ. ``U`` must be
        finite, on ``b``'s device, with ``1 <= k' <= m − 1`` rows (ignored when ``k = 0``).

    Returns
    -------
    SolveResult
        With ``recycle`` set to the :class:`RecycleSpace` to pass to the next system
        (``None`` when ``k = 0``, when the solve ended non-finite, or when its only cycle
        took a single iteration).
    """
    problem = check_problem(A, b, x0, rtol, atol, maxiter, M, callback)
    n = b.shape[0]
    m, k = check_m_k(m, k, n)
    if recycle is not None and not isinstance(recycle, RecycleSpace):
        raise TypeError(f"recycle must be a RecycleSpace (a result's .recycle) or None, "
                        f"got {type(recycle).__name__}")
    x, r, matvecs = initial_residual(problem)
    C = U = None
    if recycle is not None and k > 0:
        U = recycle.U
        if U.ndim != 2 or U.shape[1] != n or not 1 <= U.shape[0] <= m - 1:
            raise ValueError(f"recycle.U must have shape (k', {n}) with 1 <= k' <= m - 1 = "
                             f"{m - 1}, got {tuple(U.shape)}")
        if U.device != b.device:
            raise ValueError(f"recycle.U must be on the device of b ({b.device}), got "
                             f"{U.device}")
        if not bool(torch.isfinite(U).all()):
            raise ValueError("recycle.U must be finite, got NaN or inf values")
        matvecs += U.shape[0]
        C, U = _refit(problem, U.to(b.dtype))
    r_norm = float(torch.linalg.vector_norm(r))
    basis = b.new_zeros(m + 1, n)
    hess = torch.zeros(m + 1, m, dtype=torch.float64)
    lsq = GivensLeastSquares(1, m, torch.float64, "cpu")
    iterations = 0
    floor = AttainableAccuracy()
    while r_norm > problem.tol and iterations < problem.maxiter:
        kk = 0 if C is None else C.shape[0]
        hess.zero_()
        if kk:
            # x ← x + M U Cᵀr, r ← r − C Cᵀr (start of a cycle): C = A M U exactly.
            cr = C @ r
            x = x + problem.apply_m(cr @ U)
            r = r - cr @ C
            r_norm = float(torch.linalg.vector_norm(r))
            if r_norm <= problem.tol:
                # The projected residual says the recycled space sufficed; the true one decides.
                r = problem.b - problem.matvec(x)
                matvecs += 1
                true_norm = float(torch.linalg.vector_norm(r))
                if true_norm <= problem.tol:
                    return finish(problem, x, iterations, matvecs, true_norm,
                                  recycle=RecycleSpace(U))
                if not math.isfinite(true_norm) or bool(floor.reached(True)):
                    r_norm = true_norm
                    break
                cr = C @ r                                     # project the true one; iterate
                x = x + problem.apply_m(cr @ U)
                r = r - cr @ C
                r_norm = float(torch.linalg.vector_norm(r))
            scale = 1.0 / torch.linalg.vector_norm(U, dim=1)
            U_tilde = U * scale.unsqueeze(1)                    # Ũ = U D_k, A M Ũ = C D_k
            basis[:kk] = C
            hess[torch.arange(kk), torch.arange(kk)] = scale.to("cpu", torch.float64)
        basis[kk] = r / r_norm
        g = torch.zeros(1, m + 1, dtype=torch.float64)
        g[0, kk] = r_norm                                      # [Cᵀr; Vᵀr] = [0; β e₁]
        lsq.reset(g, hess[:kk + 1, :kk].unsqueeze(0) if kk else None)
        cols, iterations, estimate = arnoldi_cycle(problem, basis, lsq, hess, kk, m,
                                                   iterations)
        matvecs += cols - kk
        y = lsq.solve()[0].to(b)
        # x ← x + M V̂ y with V̂ = [Ũ, V_{m−k}] (the minimizer over V̂).
        step = y[kk:] @ basis[kk:cols] + (y[:kk] @ U_tilde if kk else 0)
        x = x + problem.apply_m(step)
        r = problem.b - problem.matvec(x)
        r_norm = float(torch.linalg.vector_norm(r))
        matvecs += 1
        if not math.isfinite(r_norm):                          # nothing worth recycling
            U = None
            break
        stop = bool(floor.reached(estimate <= problem.tol))
        if k > 0 and cols > 1:
            # Keep min(k, cols − 1) vectors: a cycle shorter than k (a strong preconditioner)
            # still leaves a space to recycle.
            # Harmonic Ritz problem Gᵀ G z = θ Gᵀ Wᵀ V̂ z, W = [C, V_{m−k+1}], V̂ = [Ũ, V_{m−k}].
            WtV = torch.zeros(cols + 1, cols, dtype=torch.float64)
            if kk:
                WtV[:, :kk] = (basis[:cols + 1] @ U_tilde.T).to("cpu", torch.float64)
            WtV[kk:cols, kk:cols] = torch.eye(cols - kk, dtype=torch.float64)
            G = hess[:cols + 1, :cols]
            P = torch.from_numpy(harmonic_ritz(G.numpy(), WtV.numpy(), min(k, cols - 1)))
            Q, R = torch.linalg.qr(G @ P)                        # [Q, R] = qr(G P)
            C = Q.T.to(b) @ basis[:cols + 1]                     # C_k = W Q
            # U_k = V̂ P R⁻¹: the small factor first, then one product per block of V̂.
            Z = torch.linalg.solve_triangular(R.T, P.T, upper=False).to(b)   # (P R⁻¹)ᵀ
            U = Z[:, kk:] @ basis[kk:cols] + (Z[:, :kk] @ U_tilde if kk else 0)
        if stop:
            break
    result = finish(problem, x, iterations, matvecs, r_norm)
    if U is not None and math.isfinite(result.residual):
        result.recycle = RecycleSpace(U)
    return result
