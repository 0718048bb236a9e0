"""Heavy-ball and generalized heavy-ball (GHVB) sampling: Wizadwongsa, Chinchuthakun, Khungurn,
Raj & Suwajanakorn 2023, "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts"
(arXiv:2307.11118).

Both work on the DDIM form of the probability-flow ODE, dx̄/dσ̄ = ε(x, t) with x̄ = x/α and
σ̄ = σ/α, on which Euler's method is DDIM and Adams–Bashforth is PLMS, with step
δ_n = σ̄_{n+1} − σ̄_n.

- Heavy ball (PLMS-HB): the velocity averages the high-order direction,
  v_{n+1} = (1 − β) v_n + β Σ_j b_j ε_{n−j},  x̄_{n+1} = x̄_n + δ_n v_{n+1}.
  Damping widens the stability region at the price of first-order convergence (Thm. 1).
- GHVB: the velocity is the moving average v_{n+1} = (1 − β) v_n + β ε_n and the position
  takes the Adams–Bashforth-like combination of velocities whose weights depend on β so that
  the lag of the average is cancelled, x̄_{n+1} = x̄_n + (δ_n/β) Σ_j c_j(β) v_{n+1−j}; order k
  with β = 1 is Adams–Bashforth k, and β between 0 and 1 interpolates the order (GHVB k−1+β).

β = 1 gives back PLMS (heavy ball) and AB-k (GHVB). Coefficients are for uniform steps. The
updates and the weights c_j(β) match the authors' code (sWizad/momentum-diffusion,
``PLMSWithHBScheduler``, ``GHVBScheduler`` and ``AdamBmixer``); section numbers are not cited
because they could not be checked against the paper's text.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .pndm import adams_bashforth

__all__ = ["heavy_ball", "ghvb"]


def _ghvb_weights(order: int, b: float) -> tuple[float, ...]:
    """c_j(β), newest first: consistency plus cancellation of the moving average's lag."""
    if order == 1:
        return (b,)
    if order == 2:
        return ((2 + b) / 2, -(2 - b) / 2)
    if order == 3:
        return ((18 + 5 * b) / 12, -(24 - 8 * b) / 12, (6 - b) / 12)
    return ((46 + 9 * b) / 24, -(78 - 19 * b) / 24, (42 - 5 * b) / 24, -(10 - b) / 24)


def _check(order: int, beta: float) -> None:
    if order not in (1, 2, 3, 4):
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order!r}")
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta!r}")


def _scaled(model: Denoiser, ts: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    alpha = model.schedule.alpha(ts).to(x.dtype)
    return alpha, model.schedule.sigma(ts).to(x.dtype) / alpha  # α and σ̄ = σ/α = e^{−λ}


@torch.no_grad()
def heavy_ball(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, beta: float = 0.8,
               callback: Callable[[dict], None] | None = None) -> Tensor:
    """PLMS-HB of ``order`` (1: DDIM with momentum) and damping ``beta`` (1 NFE per step)."""
    check_inputs(model, x, ts)
    _check(order, beta)
    alpha, sbar = _scaled(model, ts, x)
    xbar, hist, v = x / alpha[0], [], None
    for i in range(len(ts) - 1):
        hist = (hist + [model.eps(alpha[i] * xbar, ts[i])])[-order:]
        direction = adams_bashforth(hist)
        v = direction if v is None else (1 - beta) * v + beta * direction  # heavy ball: velocity
        xbar = xbar + (sbar[i + 1] - sbar[i]) * v  # heavy ball: position
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar})
    return alpha[-1] * xbar


@torch.no_grad()
def ghvb(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, beta: float = 0.8,
         callback: Callable[[dict], None] | None = None) -> Tensor:
    """GHVB of ``order`` and ``beta`` (nominal order ``order − 1 + beta``; 1 NFE per step)."""
    check_inputs(model, x, ts)
    _check(order, beta)
    alpha, sbar = _scaled(model, ts, x)
    xbar, vs = x / alpha[0], []
    for i in range(len(ts) - 1):
        eps = model.eps(alpha[i] * xbar, ts[i])
        vs = (vs + [eps if not vs else (1 - beta) * vs[-1] + beta * eps])[-order:]  # GHVB: velocity
        weights = _ghvb_weights(len(vs), beta)
        xbar = xbar + (sbar[i + 1] - sbar[i]) / beta * sum(w * v for w, v in zip(weights, reversed(vs)))  # GHVB: position
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar})
    return alpha[-1] * xbar
