"""Restarted GMRES(m) with right preconditioning.

Saad & Schultz, "GMRES: A generalized minimal residual algorithm for solving nonsymmetric
linear systems", SIAM J. Sci. Stat. Comput. 7 (1986), Algorithm 4 (restarted). With right
preconditioning (Saad, "Iterative Methods for Sparse Linear Systems", 2nd ed., Alg. 9.5) the
Krylov space is built for ``A M`` and the residual minimized is the true ``b − A x``.

Each restart starts from the true residual ``b − A x`` (one product with ``A``), which is
also the final check, so the returned residual is never a recurrence estimate. A tolerance
below the dtype's attainable accuracy ends the solve early, unconverged
(:class:`~._operator.AttainableAccuracy`).
"""
from __future__ import annotations

import torch

from sciml.validation import positive_int

from ._shared import SolveResult
from ._operator import AttainableAccuracy, check_problem, finish, initial_residual
from .arnoldi import GivensLeastSquares, arnoldi_cycle

__all__ = ["gmres"]


def gmres(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None,
          restart=40) -> SolveResult:
    """Solve ``A x = b`` by GMRES(restart).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), or callable ``v -> A v``
    b : Tensor, shape (n,)
        Right-hand side; the solve runs on its device and in its dtype.
    x0 : Tensor, shape (n,), optional
        Initial guess (zero by default).
    rtol, atol : float
        Stop when ``‖b − A x‖ ≤ max(rtol ‖b‖, atol)``.
    maxiter : int, optional
        Maximum inner iterations over all restarts (default ``10 n``).
    M : callable, optional
        Right preconditioner ``v -> M⁻¹ v``.
    callback : callable, optional
        Called after every inner iteration with the relative residual estimate.
    restart : int
        Arnoldi steps per cycle, ``m`` (capped at ``n``).

    Returns
    -------
    SolveResult
    """
    problem = check_problem(A, b, x0, rtol, atol, maxiter, M, callback)
    m = min(positive_int("restart", restart), b.shape[0])
    x, r, matvecs = initial_residual(problem)
    r_norm = float(torch.linalg.vector_norm(r))
    basis = b.new_zeros(m + 1, b.shape[0])
    hess = torch.zeros(m + 1, m, dtype=torch.float64)
    lsq = GivensLeastSquares(1, m, torch.float64, "cpu")
    iterations = 0
    floor = AttainableAccuracy()
    while r_norm > problem.tol and iterations < problem.maxiter:
        basis[0] = r / r_norm
        g = torch.zeros(1, m + 1, dtype=torch.float64)
        g[0, 0] = r_norm                                       # β e₁
        lsq.reset(g)
        cols, iterations, estimate = arnoldi_cycle(problem, basis, lsq, hess, 0, m, iterations)
        y = lsq.solve()[0].to(b)
        x = x + problem.apply_m(y @ basis[:cols])               # x₀ + M V_m y
        r = problem.b - problem.matvec(x)
        r_norm = float(torch.linalg.vector_norm(r))
        matvecs += cols + 1
        if bool(floor.reached(estimate <= problem.tol)):
            break
    return finish(problem, x, iterations, matvecs, r_norm)
