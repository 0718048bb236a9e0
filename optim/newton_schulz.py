"""Newton–Schulz orthogonalization: the polar factor of a matrix from matrix products only.

Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
https://kellerjordan.github.io/posts/muon/ ; Bernstein & Newhouse, "Old optimizer, new norm:
an anthology", OPT 2024 (the odd-polynomial iteration). For ``G = U Σ Vᴴ`` the iteration

    X₀ = G / ‖G‖_F                                   (1)  so every singular value is in [0, 1]
    X_{k+1} = a X_k + b (X_k X_kᴴ) X_k + c (X_k X_kᴴ)² X_k    (2)

acts on each singular value separately through the scalar quintic p(σ) = aσ + bσ³ + cσ⁵ and
leaves U and V alone, so after K steps it returns ``U p^K(Σ) Vᴴ``. Muon's coefficients
(3.4445, −4.7750, 2.0315) maximise the slope at zero instead of converging to 1: with 5 steps
every singular value σ ≥ 1.6·10⁻³‖G‖_F lands in the band [0.68, 1.21] (:data:`MUON_BAND`;
:func:`singular_value_map` evaluates p^K exactly), and exact zeros stay zero.

Complex matrices (the per-mode spectral weights of an FNO) are orthogonalized through the real
embedding ``A + iB ↦ [[A, −B], [B, A]]``: it is a *-homomorphism, so the polynomial (2) commutes
with it, the embedded result is the embedding of the complex result, and the embedding's
singular values are those of ``A + iB``, each twice. That keeps one real code path, which also
runs in bfloat16 on GPUs (complex bf16 matmuls do not exist).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["MUON_COEFFICIENTS", "MUON_BAND", "newton_schulz", "newton_schulz_many", "singular_value_map",
           "default_ns_dtype"]

MUON_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
#: where 5 steps of Muon's iteration send every singular value σ ≥ 1.6e-3·‖G‖_F
MUON_BAND: tuple[float, float] = (0.68, 1.21)


def default_ns_dtype(t: Tensor) -> torch.dtype:
    """bfloat16 on CUDA (tensor cores; Muon's own choice), else float32, or float64 for float64 input."""
    if t.is_cuda:
        return torch.bfloat16
    return torch.float64 if t.dtype in (torch.float64, torch.complex128) else torch.float32


def _schedule(coefficients, steps: int) -> list[tuple]:
    """One (a, b, c) per step: a single triple is repeated, a sequence of triples is used as given.

    The entries may be tensors that require grad (:func:`sciml.optim.root.fit_coefficients`).
    """
    if len(coefficients) == 3 and not any(isinstance(v, (tuple, list)) for v in coefficients):
        return [tuple(coefficients)] * steps
    schedule = [tuple(abc) for abc in coefficients]
    if len(schedule) != steps or any(len(abc) != 3 for abc in schedule):
        raise ValueError(f"coefficients must be one (a, b, c) triple or {steps} of them, got {coefficients!r}")
    return schedule


def _embed(z: Tensor) -> Tensor:
    """(..., m, n) complex → (..., 2m, 2n) real: [[Re, −Im], [Im, Re]]."""
    re, im = z.real, z.imag
    return torch.cat([torch.cat([re, -im], -1), torch.cat([im, re], -1)], -2)


def newton_schulz(G: Tensor, steps: int = 5,
                  coefficients: Sequence[float] | Sequence[Sequence[float]] = MUON_COEFFICIENTS,
                  eps: float = 1e-7, dtype: torch.dtype | None = None) -> Tensor:
    """Approximate the polar factor ``U Vᴴ`` of ``G = U Σ Vᴴ`` by ``steps`` quintic Newton–Schulz steps.

    Parameters
    ----------
    G : ``(..., m, n)`` real or complex tensor; leading dimensions are a batch of matrices.
    steps : number of iterations K of (2).
    coefficients : one ``(a, b, c)`` triple for every step, or a sequence of ``steps`` triples.
    eps : floor of the Frobenius norm in (1), so a zero matrix maps to zero.
    dtype : real dtype of the matrix products; default :func:`default_ns_dtype` (bfloat16 on CUDA).

    Returns
    -------
    Tensor of the shape and dtype of ``G``: ``U p^K(Σ) Vᴴ`` (see the module docstring).
    """
    if G.dim() < 2:
        raise ValueError(f"G must have at least 2 dimensions (..., m, n), got shape {tuple(G.shape)}")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    schedule = _schedule(coefficients, steps)
    dtype = default_ns_dtype(G) if dtype is None else dtype
    m, n = G.shape[-2:]
    # (1) in the input precision, before any rounding to bf16
    X = G / torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True).clamp_min(eps)
    if G.is_complex():
        X = _embed(X)
    X = X.to(dtype)
    wide = m <= n
    if not wide:  # iterate on the side whose Gram matrix X Xᴴ is smaller
        X = X.mT
    for a, b, c in schedule:
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X  # (2)
    if not wide:
        X = X.mT
    if G.is_complex():
        X = X.to(G.real.dtype)  # torch.complex takes no bf16 parts
        X = torch.complex(X[..., :m, :n], X[..., m:, :n])
    return X.to(G.dtype)


def newton_schulz_many(matrices: Sequence[Tensor], steps: int = 5,
                       coefficients: Sequence[float] | Callable[[int, int], Sequence[float]] = MUON_COEFFICIENTS,
                       eps: float = 1e-7, dtype: torch.dtype | None = None) -> list[Tensor]:
    """:func:`newton_schulz` of every tensor in ``matrices``, one batched call per matrix shape.

    Same-shaped layers (the blocks of an FNO, of a transformer) are stacked and orthogonalized
    together: one launch per shape instead of one per layer, which is what keeps a GPU busy.
    ``coefficients`` may be a callable ``(m, n) -> (a, b, c)`` for shape-dependent coefficients.
    """
    out: list[Tensor | None] = [None] * len(matrices)
    buckets: dict[tuple, list[int]] = {}
    for i, M in enumerate(matrices):
        buckets.setdefault((tuple(M.shape[-2:]), M.dtype, M.device), []).append(i)
    for (shape, _, _), idx in buckets.items():
        abc = coefficients(*shape) if callable(coefficients) else coefficients
        stacked = torch.cat([matrices[i].reshape(-1, *shape) for i in idx])
        result = newton_schulz(stacked, steps, abc, eps, dtype).split([matrices[i][..., 0, 0].numel() for i in idx])
        for i, r in zip(idx, result):
            out[i] = r.view(matrices[i].shape)
    return out


def singular_value_map(sigma: Tensor, steps: int = 5,
                       coefficients: Sequence[float] | Sequence[Sequence[float]] = MUON_COEFFICIENTS) -> Tensor:
    """p^K(σ): where ``steps`` iterations of (2) send a singular value σ of ``G/‖G‖_F``."""
    x = sigma
    for a, b, c in _schedule(coefficients, steps):
        x2 = x * x
        x = x * (a + x2 * (b + c * x2))
    return x
