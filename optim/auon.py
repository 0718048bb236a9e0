"""AuON and Hybrid-AuON: a linear-time normalized alternative to orthogonalized momentum.

Maity, "AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates" (2025),
arXiv:2509.24320, Sec. 3. Instead of the O(mn·min(m, n)) Newton–Schulz iteration, AuON bounds the
momentum inside a spectral-norm trust region with O(mn) work: a Frobenius normalization
(‖U‖₂ ≤ ‖U‖_F = 1) followed by a hyperbolic-cosine RMS "brake" that shrinks updates with spiky
entries:

    M_t = μ M_{t−1} + (1 − μ) g_t                       (1)
    U_t = M̃_t / ‖M̃_t‖_F                                (2)
    r_t = √( mean_ij cosh²(γ (U_t)_ij) )                  (3)
    D_t = U_t / r_t                                      (4)
    θ_t = (1 − ηλ) θ_{t−1} − η s(m, n) √min(m, n) D_t    (5)

Hybrid-AuON first applies a single Newton–Schulz step to M̃_t (Sec. 3.3), which already lifts the
small singular values by the slope a ≈ 3.44, and then (2)–(4).

Two notes. The factor √min(m, n) in (5) gives D_t the Frobenius norm of the semi-orthogonal
matrix Newton–Schulz would return, so learning rates carry over between AuON, Muon and the RMS
-matched AdamW; the paper's η absorbs it. For a dense update every entry of γU is about
γ/√(mn), so r_t differs from 1 by about γ²/(2mn): the brake only acts on updates dominated by a
few entries, and otherwise AuON is normalized Nesterov momentum (the authors' released code,
which skips (2), behaves as plain Nesterov momentum). Complex entries enter (3) by modulus.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_range
from .newton_schulz import newton_schulz_many
from .orthogonalized import OrthogonalizedOptimizer

__all__ = ["AuON", "HybridAuON"]


class AuON(OrthogonalizedOptimizer):
    """AuON (see the module docstring).

    Parameters
    ----------
    params : parameters or groups; 2-D and higher, except in groups with ``adamw=True``.
    lr : learning rate η (default 1e-3 with the RMS-matching scale).
    weight_decay : decoupled weight decay λ.
    momentum : μ (default 0.95).
    gamma : γ of the cosh brake (3) (default 1.5, the authors' value).
    ns_steps : Newton–Schulz steps before (2): 0 for AuON, 1 for Hybrid-AuON.
    nesterov, ns_coefficients, eps, ns_dtype, complex_mode, adamw_betas, adamw_eps : as for
        :class:`~sciml.optim.Muon`.
    adjust_lr_fn : ``"match_rms_adamw"`` (default) or ``"original"``.
    """

    _min_ns_steps = 0  # AuON proper runs no Newton–Schulz step

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.95,
                 gamma: float = 1.5, ns_steps: int = 0, nesterov: bool = True,
                 ns_coefficients=(3.4445, -4.7750, 2.0315), eps: float = 1e-7, ns_dtype: torch.dtype | None = None,
                 adjust_lr_fn: str = "match_rms_adamw", complex_mode: str = "per_mode", adamw_betas=(0.9, 0.999),
                 adamw_eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, gamma=gamma,
                                      ns_steps=ns_steps, nesterov=nesterov, ns_coefficients=tuple(ns_coefficients),
                                      eps=eps, ns_dtype=ns_dtype, adjust_lr_fn=adjust_lr_fn,
                                      complex_mode=complex_mode, adamw_betas=tuple(adamw_betas),
                                      adamw_eps=adamw_eps))

    def _check_method(self, group: dict) -> None:
        check_range("gamma", group["gamma"], 0.0, low_open=True)

    def _directions(self, group: dict, params: list[Tensor], mats: list[Tensor]) -> list[Tensor]:
        if group["ns_steps"]:
            mats = newton_schulz_many(mats, group["ns_steps"], group["ns_coefficients"], group["eps"],
                                      group["ns_dtype"])
        out = []
        for M in mats:
            U = M / torch.linalg.vector_norm(M, dim=(-2, -1), keepdim=True).clamp_min(group["eps"])  # (2)
            r = torch.cosh(group["gamma"] * U.abs()).square().mean((-2, -1), keepdim=True).sqrt()  # (3)
            out.append(U * (math.sqrt(min(M.shape[-2:])) / r))  # (4), and √min(m, n) of (5)
        return out


class HybridAuON(AuON):
    """Hybrid-AuON: :class:`AuON` after one Newton–Schulz step (``ns_steps=1``); same parameters."""

    def __init__(self, params, lr: float = 1e-3, ns_steps: int = 1, **kwargs):
        super().__init__(params, lr=lr, ns_steps=ns_steps, **kwargs)
