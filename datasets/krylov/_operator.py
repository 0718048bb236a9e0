"""Checks at the door of every Krylov solver, and the operators they apply.

``A`` may be a torch sparse CSR tensor, a dense tensor or a callable ``v -> A v``; ``M`` a
callable ``v -> M⁻¹ v`` or ``None``. Matrices are used on the device of ``b`` (a matrix on
another device is an error: nothing moves between devices behind the user's back) and in
the dtype of ``b`` (a float64 matrix is cast once for a float32 solve).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from sciml.validation import positive_int

from ._shared import SolveResult, check_tolerance

__all__ = ["Problem", "as_matvec", "check_rhs", "check_start", "check_options",
           "check_every_value", "check_problem", "initial_residual", "synchronize", "finish",
           "AttainableAccuracy"]


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def as_matvec(A, n: int, dtype: torch.dtype, device: torch.device, name: str = "A") -> Callable:
    """The product ``v -> A v`` for vectors ``(n,)`` or blocks ``(s, n)`` (one system per row).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n), or callable
    n : int
        Expected size.
    dtype, device
        Of the solve; a matrix is cast to ``dtype`` and must already be on ``device``.
    name : str
        Argument name for error messages.
    """
    if callable(A) and not isinstance(A, torch.Tensor):
        return A
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch sparse CSR or dense tensor or a callable, got "
                        f"{type(A).__name__}")
    if A.layout not in (torch.sparse_csr, torch.strided):
        raise TypeError(f"{name} must have layout torch.sparse_csr or torch.strided, got "
                        f"{A.layout}")
    if A.ndim != 2 or tuple(A.shape) != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}) to match b, got {tuple(A.shape)}")
    if A.device != device:
        raise ValueError(f"{name} must be on the device of b ({device}), got {A.device}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {A.dtype}")
    A = A.detach().to(dtype)

    def matvec(v):
        # (n,) -> (n,) by mv; (s, n) -> (s, n) by one sparse-times-dense product.
        return A @ v if v.ndim == 1 else (A @ v.T).T

    return matvec


@dataclass
class Problem:
    """A validated system ``A x = b``: the operators, the start and the stopping threshold."""

    matvec: Callable
    precond: Callable | None
    b: torch.Tensor
    x0: torch.Tensor | None
    b_norm: float
    tol: float            # stop when ‖b − A x‖ ≤ tol = max(rtol ‖b‖, atol)
    maxiter: int
    callback: Callable | None
    start: float
    blocks: bool          # matvec also maps blocks (s, n) -> (s, n) (A is a tensor)

    def apply_m(self, v):
        return v if self.precond is None else self.precond(v)


def check_rhs(b, name: str, ndim: int, expected: str) -> torch.Tensor:
    """``b`` checked to be a real floating-point tensor of ``ndim`` non-empty dimensions
    (``expected`` describes the shape in the error); returned detached."""
    if not isinstance(b, torch.Tensor) or not b.is_floating_point() or b.is_complex():
        raise TypeError(f"{name} must be a real floating-point torch.Tensor, got "
                        f"{type(b).__name__} {getattr(b, 'dtype', '')}")
    if b.ndim != ndim or min(b.shape) < 1:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(b.shape)}")
    return b.detach()


def check_start(x0, name: str, b: torch.Tensor, rhs: str):
    """The initial guess ``x0`` (``None`` or a tensor shaped like ``b``, named ``rhs`` in
    errors, on its device), detached and cast to ``b``'s dtype."""
    if x0 is None:
        return None
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(x0).__name__}")
    if x0.shape != b.shape:
        raise ValueError(f"{name} must have shape {tuple(b.shape)} to match {rhs}, got "
                         f"{tuple(x0.shape)}")
    if x0.device != b.device:
        raise ValueError(f"{name} must be on the device of {rhs} ({b.device}), got {x0.device}")
    return x0.detach().to(b.dtype)


def check_options(rtol, atol, maxiter, M, n: int):
    """``(rtol, atol, maxiter)`` checked (``maxiter=None`` means ``10 n``), and ``M`` a
    callable or ``None``: the options every solver shares, single or batched."""
    rtol = check_tolerance("rtol", rtol)
    atol = check_tolerance("atol", atol)
    maxiter = 10 * n if maxiter is None else positive_int("maxiter", maxiter)
    if M is not None and not callable(M):
        raise TypeError(f"M must be a callable v -> M^-1 v or None, got {type(M).__name__}")
    return rtol, atol, maxiter


def check_every_value(check_every, callback=None) -> int:
    """``check_every`` as an int >= 1; 1 when a callback needs every iteration's residual."""
    check_every = positive_int("check_every", check_every)
    return 1 if callback is not None else check_every


def check_problem(A, b, x0, rtol, atol, maxiter, M, callback) -> Problem:
    """Validate the common solver arguments (see :mod:`sciml.datasets.linsolve`).

    ``maxiter`` counts inner Krylov iterations over all restarts; ``None`` means ``10 n``.
    """
    b = check_rhs(b, "b", 1, "(n,) with n >= 1")
    synchronize(b.device)
    start = time.perf_counter()
    n = b.shape[0]
    matvec = as_matvec(A, n, b.dtype, b.device)
    x0 = check_start(x0, "x0", b, "b")
    rtol, atol, maxiter = check_options(rtol, atol, maxiter, M, n)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    b_norm = float(torch.linalg.vector_norm(b))
    return Problem(matvec=matvec, precond=M, b=b, x0=x0, b_norm=b_norm,
                   tol=max(rtol * b_norm, atol), maxiter=maxiter, callback=callback,
                   start=start, blocks=isinstance(A, torch.Tensor))


class AttainableAccuracy:
    """Detects a tolerance below what the dtype can reach.

    When a solver's recurrence (or least-squares estimate) reaches the tolerance but the true
    residual ``b − A x`` does not, the solver restarts from the true residual; that repairs
    drift, and in float64 one restart is all it takes. Once this has happened ``patience``
    times for a system, the rounding error of ``b − A x`` itself (about ``eps ‖A‖ ‖x‖``) is
    where the iteration stands, and more iterations cannot help: the solve stops,
    unconverged, instead of running to ``maxiter``. (Within a factor of two of that floor a
    few restarts often still succeed, so the test counts them rather than asking each to
    make progress.)
    """

    patience = 5

    def __init__(self, batch: int = 1, device="cpu"):
        self.events = torch.zeros(batch, dtype=torch.long, device=device)

    def reached(self, estimate_converged) -> torch.Tensor:
        """Whether to stop, per system, after a cycle whose estimate did or did not reach the
        tolerance (bool or (batch,) tensor) while its true residual may not have (the caller
        stops anyway where it has). Returns a (batch,) bool tensor."""
        converged = torch.as_tensor(estimate_converged, device=self.events.device)
        self.events = self.events + converged.long()
        return self.events >= self.patience


def initial_residual(problem: Problem):
    """``(x, r, matvecs)`` at the start: ``x0`` (zero when ``None``) and ``b − A x0``."""
    if problem.x0 is None:
        return torch.zeros_like(problem.b), problem.b.clone(), 0
    return problem.x0.clone(), problem.b - problem.matvec(problem.x0), 1


def finish(problem: Problem, x, iterations: int, matvecs: int, r_norm: float | None = None,
           **extra) -> SolveResult:
    """The result with the TRUE relative residual of ``x``.

    ``r_norm`` is ``‖b − A x‖`` when the caller has just computed it from this ``x``
    (it is then not recomputed); otherwise one more product with ``A`` is made.
    """
    if r_norm is None:
        r_norm = float(torch.linalg.vector_norm(problem.b - problem.matvec(x)))
        matvecs += 1
    synchronize(problem.b.device)
    residual = r_norm / problem.b_norm if problem.b_norm > 0 else r_norm
    converged = bool(r_norm == r_norm) and r_norm <= problem.tol  # NaN never converges
    return SolveResult(x=x, iterations=iterations, matvecs=matvecs, residual=residual,
                       converged=converged, seconds=time.perf_counter() - problem.start, **extra)
