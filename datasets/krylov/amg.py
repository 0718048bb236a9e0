"""Algebraic multigrid (pyamg) as a CPU preconditioner, and CG preconditioned by it.

Ruge–Stüben classical AMG (Ruge & Stüben, "Algebraic multigrid", in Multigrid Methods,
SIAM 1987) or smoothed aggregation (Vaněk, Mandel & Brezina, Computing 56, 1996), set up by
pyamg (Olson & Schroder, "PyAMG", 2018) on a float64 CPU copy of ``A``; one V-cycle per
application. NOTES.md measured Ruge–Stüben + CG at 38 ms for a 128² Darcy system on two
cores, setup included: the CPU baseline the GPU paths are measured against.
"""
from __future__ import annotations

import time

import numpy as np

from ._shared import SolveResult
from ._cpu import cpu_matrix, host_preconditioner
from .cg import cg

__all__ = ["amg", "amg_cg"]

_METHODS = {"rs": "ruge_stuben_solver", "sa": "smoothed_aggregation_solver"}


def amg(A, *, grid_shape=None, method="rs", cycle="V"):
    """Build a pyamg V-cycle ``v -> AMG(A) v`` (CPU only).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), on the CPU
    grid_shape : tuple, optional
        Unused (common builder signature).
    method : {"rs", "sa"}
        Ruge–Stüben or smoothed aggregation.
    cycle : {"V", "W", "F"}

    Returns
    -------
    callable
        ``v -> AMG(A) v`` for CPU ``v`` of shape (n,) or (s, n), in ``v``'s dtype.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if cycle not in ("V", "W", "F"):
        raise ValueError(f"cycle must be 'V', 'W' or 'F', got {cycle!r}")
    import pyamg  # imported on use: 40 ms that most imports of sciml.datasets do not need

    setup = getattr(pyamg, _METHODS[method])
    preconditioner = setup(cpu_matrix(A, "amg")).aspreconditioner(cycle=cycle)
    return host_preconditioner(lambda rows: np.stack([preconditioner @ row for row in rows]),
                               "amg")


def amg_cg(A, b, *, x0=None, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None,
           method="rs") -> SolveResult:
    """Solve the SPD system ``A x = b`` by CG preconditioned with pyamg (CPU).

    Parameters are those of :func:`sciml.datasets.krylov.cg`; the preconditioner is built
    here from ``A`` (so ``M`` must be ``None``) and its setup time is part of ``seconds``.
    """
    if M is not None:
        raise ValueError("amg_cg builds its own preconditioner from A; M must be None")
    start = time.perf_counter()
    preconditioner = amg(A, method=method)
    result = cg(A, b, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter, M=preconditioner,
                callback=callback)
    result.seconds = time.perf_counter() - start
    return result
