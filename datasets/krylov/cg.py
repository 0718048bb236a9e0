"""The (preconditioned) conjugate gradient method for symmetric positive definite systems.

Hestenes & Stiefel, "Methods of conjugate gradients for solving linear systems", J. Res.
Nat. Bur. Standards 49 (1952); preconditioned form as in Saad, "Iterative Methods for Sparse
Linear Systems", 2nd ed., Algorithm 9.1. ``M`` must be symmetric positive definite.

The loop stops on the recurrence residual; the true residual ``b − A x`` is then computed,
and if rounding has let the two drift apart the iteration restarts from the true one (and
stops, unconverged, once the tolerance proves to lie below the dtype's attainable accuracy).
"""
from __future__ import annotations

import math

import torch

from ._shared import SolveResult
from ._operator import AttainableAccuracy, check_problem, finish, initial_residual

__all__ = ["cg"]


def cg(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None) -> SolveResult:
    """Solve the SPD system ``A x = b`` by preconditioned CG.

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), or callable ``v -> A v``
        Symmetric positive definite.
    b : Tensor, shape (n,)
    x0 : Tensor, shape (n,), optional
    rtol, atol : float
        Stop when ``‖b − A x‖ ≤ max(rtol ‖b‖, atol)``.
    maxiter : int, optional
        Maximum iterations (default ``10 n``).
    M : callable, optional
        SPD preconditioner ``v -> M⁻¹ v``.
    callback : callable, optional
        Called after every iteration with the relative recurrence residual.

    Returns
    -------
    SolveResult
    """
    problem = check_problem(A, b, x0, rtol, atol, maxiter, M, callback)
    x, r, matvecs = initial_residual(problem)
    r_norm = float(torch.linalg.vector_norm(r))
    iterations = 0
    floor = AttainableAccuracy()
    while r_norm > problem.tol and iterations < problem.maxiter:
        z = problem.apply_m(r)
        rho = torch.dot(r, z)
        p = z
        while True:
            q = problem.matvec(p)
            alpha = rho / torch.dot(p, q)                      # Alg. 9.1, line 3
            x = x + alpha * p
            r = r - alpha * q
            r_norm = float(torch.linalg.vector_norm(r))
            iterations += 1
            matvecs += 1
            if problem.callback is not None:
                problem.callback(r_norm / problem.b_norm if problem.b_norm > 0 else r_norm)
            if r_norm <= problem.tol or iterations >= problem.maxiter or not math.isfinite(r_norm):
                break
            z = problem.apply_m(r)
            rho_next = torch.dot(r, z)
            p = z + (rho_next / rho) * p                        # β = (r⁺, z⁺) / (r, z)
            rho = rho_next
        recurrence_converged = r_norm <= problem.tol
        r = problem.b - problem.matvec(x)
        matvecs += 1
        r_norm = float(torch.linalg.vector_norm(r))
        if not math.isfinite(r_norm) or bool(floor.reached(recurrence_converged)):
            break
    return finish(problem, x, iterations, matvecs, r_norm)
