"""The ``linear_solve`` that PDE families call inside :func:`sciml.datasets.generate`.

One object serves a whole run: it solves each block of systems with the chosen method (one
at a time, carrying GCRO-DR's recycled space from system to system as in the SKR method, or a
block at once with a batched solver; batched GCRO-DR carries its space from block to block),
caches what is a function of the matrix alone
(factorizations, preconditioners), retries misses with a fallback solver, and records
per-sample diagnostics. Its preconditioner setup and solves are charged to the stages
``precond`` and ``solve`` of a :class:`sciml.datasets.pipeline.StageTimer`.
"""
from contextlib import nullcontext

import numpy as np
import torch

from . import krylov
from .krylov import PRECONDITIONERS
from .linsolve import DirectFactorization, get_linear_solver
from .pipeline import DIAGNOSTICS

__all__ = ["BlockSolver", "BATCHED", "PER_SYSTEM_PRECONDITIONER"]

#: solvers with a batched form in :mod:`sciml.datasets.krylov`, used when ``batch > 1``
BATCHED = {"cg": "cg_batched", "gmres": "gmres_batched", "gcrodr": "gcro_dr_batched"}
#: batched solvers that take one preconditioner per system (a list), not one for the stack
PER_SYSTEM_PRECONDITIONER = {"gcrodr"}


class BlockSolver:
    """The ``linear_solve`` a PDE family calls: solves blocks of systems, records diagnostics.

    ``block_solver(As, B, X0=None) -> X`` with ``As`` a list of ``s`` matrices and ``B``,
    ``X0``, ``X`` of shape ``(s, N)``. Diagnostics accumulate per sample over every call until
    the next :meth:`start_block` (a time-dependent family calls it once per time step):
    iterations, matrix products and seconds are summed, the residual is the largest, converged
    holds if every solve converged.

    Parameters
    ----------
    solver, precond : str
        Names in :data:`LINEAR_SOLVERS` and :data:`sciml.datasets.krylov.PRECONDITIONERS`.
    batch : int
        Systems per block; above 1 the block is solved at once by the batched solver.
    rtol : float
    maxiter : int or None
    fallback : str or None
        Solver retried on a system that missed ``rtol``.
    grid_shape : tuple of int
        The unknowns' grid, for the geometric multigrid preconditioner.
    """

    def __init__(self, solver, precond, batch, rtol, maxiter, fallback, grid_shape):
        self.name, self.precond, self.batch = solver, precond, batch
        self.solve = get_linear_solver(solver)
        self.fallback = None if fallback is None else get_linear_solver(fallback)
        self.options = {"rtol": rtol, "maxiter": maxiter}
        self.grid_shape = grid_shape
        self.recycle = None
        self._cache = {}  # (ids of the matrices, builder) -> (matrices, what it built); one entry
        self.diagnostics = {}
        self.timer = None  # a StageTimer, set by the pipeline

    def _stage(self, name):
        return nullcontext() if self.timer is None else self.timer(name)

    def reset(self):
        """Forget the recycled space (at a chunk's start, so chunks do not depend on each other).

        Cached factorizations and preconditioners stay: they are functions of the matrix.
        """
        self.recycle = None

    def start_block(self, size):
        """Zero the per-sample diagnostics of a new block of ``size`` samples."""
        self.diagnostics = {name: np.zeros(size, dtype) for name, dtype in DIAGNOSTICS.items()}
        self.diagnostics["converged"][:] = True

    def _cached(self, As, build):
        """``build(As)``, done once per list of matrix objects: samples and time steps that
        share matrices reuse it.

        The cache holds the matrices too, so their ``id`` cannot be reused meanwhile.
        """
        key = (tuple(map(id, As)), build)
        if key not in self._cache:
            with self._stage("precond"):
                self._cache = {key: (As, build(As))}
        return self._cache[key][1]

    def _preconditioner(self, A):
        if self.precond == "none":
            return None
        return self._cached([A], self._build_preconditioner)

    def _build_preconditioner(self, As):
        return PRECONDITIONERS[self.precond](As[0], grid_shape=self.grid_shape)

    def _block_preconditioner(self, As):
        """``M`` on ``(s, N)`` blocks: the preconditioner of the block-diagonal matrix.

        The geometric multigrid gets the stacked grid shape ``(s, ny, nx)``.
        """
        apply = PRECONDITIONERS[self.precond](krylov.block_diagonal(As),
                                              grid_shape=(len(As), *self.grid_shape))
        return None if apply is None else (lambda V: apply(V.reshape(-1)).reshape(V.shape))

    def _factorization(self, As):
        return DirectFactorization(As[0])

    def __call__(self, As, B, X0=None):
        if len(As) != B.shape[0] or B.shape[0] != len(self.diagnostics["converged"]):
            raise ValueError(f"linear_solve got {len(As)} matrices and B of shape "
                             f"{tuple(B.shape)} for a block of "
                             f"{len(self.diagnostics['converged'])} samples")
        if self.batch > 1 and self.name == "gcrodr":
            # Per-system preconditioners (a multigrid of one grid each); the space the block's
            # first system leaves goes on to the next block.
            M = None if self.precond == "none" else [self._preconditioner(A) for A in As]
            with self._stage("solve"):
                results = krylov.gcro_dr_batched(As, B, X0=X0, M=M, recycle=self.recycle,
                                                 check_every=10 if B.is_cuda else 1,
                                                 **self.options)
            self.recycle = results[0].recycle
        elif self.batch > 1 and self.name in BATCHED:
            batched = getattr(krylov, BATCHED[self.name])
            M = self._cached(As, self._block_preconditioner)
            # On a GPU, read the convergence flags every 10 iterations instead of every one:
            # the counts stay exact (converged systems are masked on the device).
            with self._stage("solve"):
                results = batched(As, B, X0=X0, M=M, check_every=10 if B.is_cuda else 1,
                                  **self.options)
        elif self.name == "direct" and _shared(As):
            factorization = self._cached(As[:1], self._factorization)
            with self._stage("solve"):
                results = factorization.solve(B, **self.options)
        else:
            results = []
            for i, A in enumerate(As):
                options = dict(self.options, x0=None if X0 is None else X0[i])
                if self.name == "gcrodr":
                    options["recycle"] = self.recycle
                if self.precond != "none":
                    options["M"] = self._preconditioner(A)
                with self._stage("solve"):
                    result = self.solve(A, B[i], **options)
                if self.name == "gcrodr":
                    self.recycle = result.recycle
                results.append(result)
        X = torch.empty_like(B)
        d = self.diagnostics
        for i, result in enumerate(results):
            if not result.converged and self.fallback is not None:
                # The failed attempt's work stays in the counts: it was spent.
                d["iterations"][i] += result.iterations
                d["matvecs"][i] += result.matvecs
                d["seconds"][i] += result.seconds
                with self._stage("solve"):
                    result = self.fallback(As[i], B[i], **self.options)
                d["fallback"][i] = True
            X[i] = result.x
            d["iterations"][i] += result.iterations
            d["matvecs"][i] += result.matvecs
            d["seconds"][i] += result.seconds
            d["residual"][i] = np.maximum(d["residual"][i], result.residual)  # keeps a NaN
            d["converged"][i] &= result.converged
        return X


def _shared(As):
    return all(A is As[0] for A in As)
