"""Causal training of a time-dependent PINN: later times count only once earlier ones are solved.

Wang, Sankaran & Perdikaris 2024, "Respecting causality for training physics-informed neural
networks" (Comput. Methods Appl. Mech. Engrg. 421, 116813; arXiv:2203.07404). The time interval is
cut into M chunks t_1 < ... < t_M; with L_r(t_i) the mean squared residual of the points in chunk i,
the residual loss becomes

    L_r = 1/M Σ_i w_i L_r(t_i),   w_i = exp(−ε Σ_{k<i} L_r(t_k)),

with the weights w held constant in the gradient. While the early chunks have a large residual the
later ones weigh almost nothing, so the network cannot fit a wrong late-time solution first (the
trap that leaves Allen–Cahn at a relative error of order 1); training has marched through the
whole interval when min_i w_i is close to 1. ε sets how strictly: the paper anneals it upward.
"""
from __future__ import annotations

import torch
from torch import Tensor


def causal_residual(r: Tensor, t: Tensor, t0: float, t1: float, eps: float, chunks: int) -> tuple[Tensor, Tensor]:
    """The residuals ``r`` at times ``t`` rescaled so that ``mean(r̃²)`` is the causal loss L_r
    above, and the weights ``w`` (one per chunk, detached).

    Rescaling the vector rather than returning the scalar keeps every consumer of residual
    vectors (the loss, Sophia-G's sampled loss, Gauss–Newton products) unchanged: point p in
    chunk b gets r̃_p = r_p·sqrt(w_b·n / (M·n_b)), so (1/n) Σ_p r̃_p² = 1/M Σ_b w_b L_r(t_b).
    """
    n = r.shape[0]
    chunk = ((t.detach() - t0) / (t1 - t0) * chunks).long().clamp_(0, chunks - 1)
    count = torch.bincount(chunk, minlength=chunks).to(r.dtype).clamp_(min=1)
    loss_per_chunk = torch.zeros(chunks, dtype=r.dtype, device=r.device).index_add_(0, chunk, r.detach() ** 2) / count
    w = torch.exp(-eps * (torch.cumsum(loss_per_chunk, 0) - loss_per_chunk))  # w_i = exp(−ε Σ_{k<i} L_r(t_k))
    return r * torch.sqrt(w * n / (chunks * count))[chunk], w
