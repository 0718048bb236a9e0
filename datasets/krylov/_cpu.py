"""The bridge shared by the CPU-only preconditioners (pyamg, SuperLU): a float64 scipy copy
of ``A``, and the application of a host solve to torch vectors."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ._shared import to_scipy
from .jacobi import check_matrix

__all__ = ["check_cpu", "cpu_matrix", "host_preconditioner"]


def check_cpu(A, method: str) -> torch.Tensor:
    """``A`` checked (:func:`~.jacobi.check_matrix`) and on the CPU; a CUDA tensor is refused
    with a clear error."""
    A = check_matrix(A)
    if A.device.type != "cpu":
        raise ValueError(f"{method} runs on the CPU (scipy/pyamg) and needs A on the CPU, got "
                         f"A on {A.device}; use 'mg', 'chebyshev' or 'jacobi' on a GPU")
    return A


def cpu_matrix(A, method: str):
    """``A`` (checked by :func:`check_cpu`) as a float64 scipy CSR matrix."""
    return to_scipy(check_cpu(A, method))


def host_preconditioner(solve_rows: Callable[[np.ndarray], np.ndarray], method: str):
    """``v -> M⁻¹ v`` for CPU tensors ``(n,)`` or ``(s, n)`` from ``solve_rows``, a map of
    float64 arrays ``(s, n) -> (s, n)``; the result is in ``v``'s dtype."""

    def apply(v):
        if v.device.type != "cpu":
            raise ValueError(f"{method} runs on the CPU, got a vector on {v.device}")
        rows = v.detach().reshape(-1, v.shape[-1]).double().numpy()
        return torch.from_numpy(np.ascontiguousarray(solve_rows(rows))).to(v.dtype) \
            .reshape(v.shape)

    return apply
