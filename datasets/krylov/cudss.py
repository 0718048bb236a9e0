"""Sparse direct solve on the GPU by ``torch.sparse.spsolve`` (NVIDIA cuDSS), a baseline.

``torch.sparse.spsolve`` factorizes a sparse CSR matrix and solves on the device where torch
was built with cuDSS (CUDA builds from torch 2.5 on; NVIDIA, "cuDSS: CUDA Direct Sparse
Solver", 2024). It is the GPU counterpart of SuperLU on the CPU
(:func:`sciml.datasets.solve_direct`): no iterations, exact to rounding, its memory
the factor's fill-in. Where the build or the device has no such kernel (every CPU build, a
CUDA build without cuDSS) :func:`gpu_direct_available` says so with the reason, and
:func:`gpu_direct` raises it, never falling back to the CPU behind the caller's back.
"""
from __future__ import annotations

import time
import warnings

import torch

from ._shared import SolveResult, check_tolerance

__all__ = ["gpu_direct", "gpu_direct_available"]


def gpu_direct_available(device="cuda"):
    """``(True, "")`` if ``torch.sparse.spsolve`` runs on ``device``, else ``(False, why)``."""
    device = torch.device(device)
    if not hasattr(torch.sparse, "spsolve"):
        return False, f"torch {torch.__version__} has no torch.sparse.spsolve"
    if device.type == "cuda" and not torch.cuda.is_available():
        return False, "CUDA is not available"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        A = torch.eye(2, dtype=torch.float64, device=device).to_sparse_csr()
    try:
        torch.sparse.spsolve(A, torch.ones(2, dtype=torch.float64, device=device))
    except (RuntimeError, NotImplementedError) as error:
        return False, f"torch.sparse.spsolve fails on {device}: {str(error).split('. ')[0]}"
    return True, ""


def gpu_direct(A, b, *, x0=None, rtol=1e-8, atol=0.0, maxiter=None, M=None, callback=None):
    """Solve ``A x = b`` by ``torch.sparse.spsolve`` on ``b``'s device, true residual checked.

    ``x0``, ``maxiter``, ``M`` and ``callback`` are accepted for the common signature.

    Parameters
    ----------
    A : Tensor, sparse CSR, shape (n, n), on ``b``'s device
    b : Tensor, shape (n,), floating point
    rtol, atol : float

    Returns
    -------
    SolveResult
        ``iterations = 0``, ``matvecs = 1`` (the residual check).

    Raises
    ------
    RuntimeError
        Where ``torch.sparse.spsolve`` does not run on this device (the reason named).
    """
    rtol = check_tolerance("rtol", rtol)
    atol = check_tolerance("atol", atol)
    if not isinstance(A, torch.Tensor) or A.layout != torch.sparse_csr:
        raise TypeError(f"A must be a torch sparse CSR tensor, got {type(A).__name__} "
                        f"{getattr(A, 'layout', '')}")
    if not isinstance(b, torch.Tensor) or not b.is_floating_point() or b.ndim != 1 \
            or b.shape[0] != A.shape[0] or b.device != A.device:
        raise ValueError(f"b must be a floating-point tensor of shape ({A.shape[0]},) on "
                         f"{A.device}, got {getattr(b, 'shape', type(b))}")
    if b.device.type == "cuda":
        torch.cuda.synchronize(b.device)
    start = time.perf_counter()
    try:
        x = torch.sparse.spsolve(A.to(b.dtype), b)
    except (RuntimeError, NotImplementedError) as error:
        raise RuntimeError(f"torch.sparse.spsolve is not available on {b.device} "
                           f"({str(error).split('. ')[0]}); use solver='direct' (SuperLU, "
                           f"CPU) or a Krylov solver") from None
    r_norm = float(torch.linalg.vector_norm(b - A.to(b.dtype) @ x))
    b_norm = float(torch.linalg.vector_norm(b))
    if b.device.type == "cuda":
        torch.cuda.synchronize(b.device)
    return SolveResult(x=x, iterations=0, matvecs=1,
                       residual=r_norm / b_norm if b_norm > 0 else r_norm,
                       converged=r_norm == r_norm and r_norm <= max(rtol * b_norm, atol),
                       seconds=time.perf_counter() - start)
