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
from ._operator import (AttainableAccuracy, check_every_value, check_problem, finish,
                        initial_residual)

__all__ = ["cg"]


def cg(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None,
       check_every=1) -> SolveResult:
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
        Called after every iteration with the relative recurrence residual (which reads it
        on the host every iteration, whatever ``check_every``).
    check_every : int
        Read the convergence test on the host (a device synchronization) only every
        ``check_every`` iterations. Past convergence the step length is masked to 0 on the
        device, so the extra iterations change neither ``x`` nor the iteration count: the
        result is the same for every value. 1 (the default) wastes no iteration on the CPU;
        on CUDA, 10–20 removes most synchronizations.

    Returns
    -------
    SolveResult
    """
    problem = check_problem(A, b, x0, rtol, atol, maxiter, M, callback)
    check_every = check_every_value(check_every, problem.callback)
    x, r, matvecs = initial_residual(problem)
    r_norm = float(torch.linalg.vector_norm(r))
    masked = check_every > 1             # else the loop stops at convergence: nothing to mask
    iterations = 0                       # an int, or a device tensor once masked
    step = 0
    floor = AttainableAccuracy()
    while r_norm > problem.tol and step < problem.maxiter:
        active = torch.ones((), dtype=torch.bool, device=b.device)
        z = problem.apply_m(r)
        rho = torch.dot(r, z)
        p = z
        while True:
            q = problem.matvec(p)
            alpha = rho / torch.dot(p, q)                      # Alg. 9.1, line 3
            if masked:
                alpha = torch.where(active, alpha, 0)
            x = x + alpha * p
            r = r - alpha * q
            norm = torch.linalg.vector_norm(r)
            step += 1
            if masked:
                iterations = iterations + active.long()
                active = active & (norm > problem.tol) & torch.isfinite(norm)
                stop = step % check_every == 0 and not bool(active)
            else:
                iterations += 1
                stop = not float(norm) > problem.tol            # converged, or NaN
            if problem.callback is not None:
                value = float(norm)
                problem.callback(value / problem.b_norm if problem.b_norm > 0 else value)
            if stop or step >= problem.maxiter:
                break
            z = problem.apply_m(r)
            rho_next = torch.dot(r, z)
            p = z + (rho_next / rho) * p                        # β = (r⁺, z⁺) / (r, z)
            if masked:                                          # past convergence x, r stay
                p = torch.where(active, p, 0)
            rho = rho_next
        recurrence_converged = float(norm) <= problem.tol
        r = problem.b - problem.matvec(x)
        matvecs += 1
        r_norm = float(torch.linalg.vector_norm(r))
        if not math.isfinite(r_norm) or bool(floor.reached(recurrence_converged)):
            break
    # matvecs counts the products made, masked ones included (the cost of the solve).
    return finish(problem, x, int(iterations), matvecs + step, r_norm)
