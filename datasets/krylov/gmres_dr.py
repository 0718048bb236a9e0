"""GMRES with deflated restarting, GMRES-DR(m, k).

Morgan, "GMRES with deflated restarting", SIAM J. Sci. Comput. 24 (2002), 20–37. At each
restart the ``k`` harmonic Ritz vectors of smallest harmonic Ritz value and the
least-squares residual span the new first ``k + 1`` basis vectors; the Arnoldi relation
``A V_k = V_{k+1} H̄_k`` survives the restart (Sec. 2), so the cycle continues with
``m − k`` new vectors and the small eigenvalues that stall GMRES(m) stay deflated.

A cycle ends on the least-squares estimate; the true residual ``b − A x`` is then checked,
and if rounding has made it miss the tolerance the method restarts plainly from it (and
stops, unconverged, once the tolerance proves to lie below the dtype's attainable accuracy).
"""
from __future__ import annotations

import numpy as np
import torch

from sciml.validation import positive_int

from ._shared import SolveResult
from ._operator import AttainableAccuracy, check_problem, finish, initial_residual
from .arnoldi import GivensLeastSquares, arnoldi_cycle, harmonic_ritz

__all__ = ["gmres_dr", "check_m_k"]


def check_m_k(m, k, n):
    """Validate the cycle length ``m`` and the deflation size ``k < m − 1``; cap ``m`` at ``n``."""
    m = positive_int("m", m)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    if not 0 <= k < m - 1:
        raise ValueError(f"k must satisfy 0 <= k < m - 1 = {m - 1}, got {k}")
    return min(m, n), min(k, max(n - 2, 0))


def gmres_dr(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None,
             m=40, k=20) -> SolveResult:
    """Solve ``A x = b`` by GMRES-DR(m, k) with right preconditioning.

    Parameters
    ----------
    A, b, x0, rtol, atol, maxiter, M, callback
        As for :func:`sciml.datasets.krylov.gmres`.
    m : int
        Dimension of the search space of a cycle.
    k : int
        Harmonic Ritz vectors kept at a restart (``0 <= k < m − 1``; ``k = 0`` is GMRES(m)).

    Returns
    -------
    SolveResult
    """
    problem = check_problem(A, b, x0, rtol, atol, maxiter, M, callback)
    m, k = check_m_k(m, k, b.shape[0])
    x, r, matvecs = initial_residual(problem)
    r_norm = float(torch.linalg.vector_norm(r))
    basis = b.new_zeros(m + 1, b.shape[0])
    hess = torch.zeros(m + 1, m, dtype=torch.float64)
    lsq = GivensLeastSquares(1, m, torch.float64, "cpu")
    iterations, first = 0, 0
    c = torch.zeros(m + 1, dtype=torch.float64)                 # Vᵀ r, the cycle's rhs
    fresh = True
    floor = AttainableAccuracy()
    while r_norm > problem.tol and iterations < problem.maxiter:
        if fresh:
            basis[0] = r / r_norm
            c.zero_()
            c[0] = r_norm
            hess.zero_()
            first = 0
        lsq.reset(c.unsqueeze(0), hess[:first + 1, :first].unsqueeze(0) if first else None)
        cols, iterations, estimate = arnoldi_cycle(problem, basis, lsq, hess, first, m,
                                                   iterations)
        matvecs += cols - first
        y = lsq.solve()[0]
        x = x + problem.apply_m(y.to(b) @ basis[:cols])
        if estimate <= problem.tol or cols < m or iterations >= problem.maxiter or k == 0:
            r = problem.b - problem.matvec(x)
            r_norm = float(torch.linalg.vector_norm(r))
            matvecs += 1
            fresh = True
            if bool(floor.reached(estimate <= problem.tol)):
                break
            continue
        s = c[:m + 1] - hess @ y                                 # LS residual: r = V_{m+1} s
        # Harmonic Ritz vectors (H_m + h² H_m⁻ᵀ e_m e_mᵀ) g = θ g, then [P_k; 0] and s
        # orthonormalized: the new basis keeps the Arnoldi relation.
        P = harmonic_ritz(hess.numpy(), np.eye(m + 1, m), k)
        kk = P.shape[1]
        P_ext = np.zeros((m + 1, kk + 1))
        P_ext[:m, :kk] = P
        P_ext[:, kk] = s.numpy()
        Q = torch.from_numpy(np.linalg.qr(P_ext)[0])
        head = Q.T @ hess @ Q[:m, :kk]                           # H̄_k^new = Q_{k+1}ᵀ H̄_m Q_k
        basis[:kk + 1] = Q.T.to(b) @ basis[:m + 1]               # V_{k+1}^new = V_{m+1} Q_{k+1}
        c.zero_()
        c[:kk + 1] = Q.T @ s
        hess.zero_()
        hess[:kk + 1, :kk] = head
        first, fresh = kk, False
        r_norm = float(c.norm())                                 # ‖r‖ by the recurrence
    return finish(problem, x, iterations, matvecs, None if not fresh else r_norm)
