"""NorMuon: Muon followed by a neuron-wise (row-wise) second-moment normalization.

Li, Liu, Liang, Chen, Zhao, "NorMuon: Making Muon more efficient and scalable", ICLR 2026,
arXiv:2510.05491, Algorithm 1. Orthogonalization balances the singular values of an update but
leaves its rows (neurons) with very different norms; NorMuon keeps an Adam-like second moment
per row and divides it out, then restores the norm of an orthogonal matrix:

    M_t = β₁ M_{t−1} + (1 − β₁) g_t                                (1)
    O_t = NewtonSchulz5(M̃_t)                                      (2)
    v_t = β₂ v_{t−1} + (1 − β₂) mean_cols(O_t ⊙ O_t)   (v_t ∈ ℝᵐ)  (3)
    Ô_t = O_t ⊘ (√V_t + ε)                (V_t: v_t on every column) (4)
    θ_t = (1 − ηλ) θ_{t−1} − η̂ Ô_t,   η̂ = 0.2 η √(mn) / ‖Ô_t‖_F     (5)

(5) is implemented as a rescaling of Ô_t to the Frobenius norm √min(m, n) of an orthogonal
matrix followed by the family's shape-aware scale; with ``adjust_lr_fn="match_rms_adamw"`` (the
default here) the product is exactly the paper's η̂ Ô_t. The paper's β₁ is ``momentum``; the
Nesterov look-ahead M̃_t (as in the authors' code) is on by default. Rows are output neurons:
``out`` of a Linear/conv weight, ``out`` of each per-mode matrix of a complex spectral weight,
whose entries enter (3) as |O|².
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_range
from .newton_schulz import newton_schulz_many
from .orthogonalized import OrthogonalizedOptimizer, matrix_view

__all__ = ["NorMuon"]


class NorMuon(OrthogonalizedOptimizer):
    """NorMuon (see the module docstring).

    Parameters
    ----------
    params : parameters or groups; 2-D and higher, except in groups with ``adamw=True``.
    lr : learning rate η (default 1e-3 with the RMS-matching scale).
    weight_decay : decoupled weight decay λ.
    momentum : β₁ of (1) (default 0.95).
    beta2 : β₂ of the neuron-wise second moment (3) (default 0.95).
    norm_eps : ε of (4) (default 1e-10).
    nesterov, ns_steps, ns_coefficients, eps, ns_dtype, complex_mode, adamw_betas, adamw_eps :
        as for :class:`~sciml.optim.Muon`.
    adjust_lr_fn : ``"match_rms_adamw"`` (default, the paper's (5)) or ``"original"``.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.95,
                 beta2: float = 0.95, norm_eps: float = 1e-10, nesterov: bool = True, ns_steps: int = 5,
                 ns_coefficients=(3.4445, -4.7750, 2.0315), eps: float = 1e-7, ns_dtype: torch.dtype | None = None,
                 adjust_lr_fn: str = "match_rms_adamw", complex_mode: str = "per_mode", adamw_betas=(0.9, 0.999),
                 adamw_eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, beta2=beta2,
                                      norm_eps=norm_eps, nesterov=nesterov, ns_steps=ns_steps,
                                      ns_coefficients=tuple(ns_coefficients), eps=eps, ns_dtype=ns_dtype,
                                      adjust_lr_fn=adjust_lr_fn, complex_mode=complex_mode,
                                      adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps))

    def _check_method(self, group: dict) -> None:
        check_range("beta2", group["beta2"], 0.0, 1.0)
        check_range("norm_eps", group["norm_eps"], 0.0)

    def _init_state(self, p: Tensor, state: dict, group: dict) -> None:
        super()._init_state(p, state, group)
        rows = matrix_view(p.detach(), group["complex_mode"])[..., :1]
        state["second_moment"] = torch.zeros_like(rows, dtype=rows.real.dtype)  # one per neuron

    def _directions(self, group: dict, params: list[Tensor], mats: list[Tensor]) -> list[Tensor]:
        ortho = newton_schulz_many(mats, group["ns_steps"], group["ns_coefficients"], group["eps"],
                                   group["ns_dtype"])  # (2)
        out = []
        for p, O in zip(params, ortho):
            v = self.state[p]["second_moment"]
            v.lerp_(O.abs().square().mean(-1, keepdim=True), 1 - group["beta2"])  # (3)
            O_hat = O / (v.sqrt() + group["norm_eps"])  # (4)
            norm = torch.linalg.vector_norm(O_hat, dim=(-2, -1), keepdim=True).clamp_min(group["eps"])
            out.append(O_hat * (math.sqrt(min(O.shape[-2:])) / norm))  # (5), with the scale in the base step
        return out
