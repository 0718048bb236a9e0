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
  the lag of the average is cancelled, x̄_{n+1} = x̄_n + (δ_n/β) Σ_j c_j v_{n+1−j}; order k
  with β = 1 is Adams–Bashforth k.

The updates match the authors' code (sWizad/momentum-diffusion, ``PLMSWithHBScheduler``,
``GHVBScheduler``); section numbers are not cited because they could not be checked against the
paper's text. The authors' weights c_j(β) hold on uniform steps once the moving average has
forgotten its start (their c₂(β) = ((2 + β)/2, −(2 − β)/2), ...). Here c_j are recomputed at
every step for the actual grid and the actual history of the average, start included: v is
linear in the past ε, so running its recursion on the basis polynomials ((σ̄ − σ̄_n)/δ_n)^q,
q < k, gives the velocities a polynomial ε would produce, and c solves "the update integrates
every such polynomial exactly". GHVB of ``order`` k is then exact for ε of degree < k on any
grid, and converges with order k for every β (on a uniform grid, after the start, the weights
are the authors'); β sets the stability region and the error constant. Heavy ball uses the
variable-step Adams–Bashforth direction of :mod:`.pndm`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import check_order, finish, notify, resolve_warmup, step_order
from .pndm import adams_bashforth_weights, runge_kutta

__all__ = ["heavy_ball", "ghvb"]


def _check_beta(beta: float) -> None:
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta!r}")


def ghvb_weights(sbar: list[float], beta: float, k: int) -> list[float]:
    """c_j (newest first) for the last ``k`` velocities, after ε was evaluated at ``sbar[:-1]``
    and the step goes to ``sbar[-1]``; see the module docstring. Evaluations whose weight in the
    average, (1 − β)^m, is below 1e-16 are left out of the recursion."""
    window = k if beta == 1 else k + math.ceil(math.log(1e-16) / math.log(1 - beta))
    nodes, s_n, d = sbar[:-1], sbar[-2], sbar[-1] - sbar[-2]
    q = torch.arange(k, dtype=torch.float64)
    vel = []  # the velocity histories of the basis polynomials, (k,) per velocity
    for m, s in enumerate(nodes[-window:]):
        p = ((s - s_n) / d) ** q
        vel.append(p if m == 0 else (1 - beta) * vel[-1] + beta * p)  # GHVB velocity recursion
    system = torch.stack(vel[::-1][:k], dim=1)  # (q, j)
    return torch.linalg.solve(system, beta / (q + 1)).tolist()  # Σ_j c_j V_q,j = β ∫_0^1 u^q du


@torch.no_grad()
def heavy_ball(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, beta: float = 0.8,
               denoise_to_zero: bool = False, callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """PLMS-HB of ``order`` (1: DDIM with momentum) and damping ``beta`` (1 NFE per step; order 1 if β < 1)."""
    check_inputs(model, x, ts)
    check_order(order, (1, 2, 3, 4))
    _check_beta(beta)
    ts = ts.to(x.dtype)
    alpha, sbar = model.schedule.alpha(ts), model.schedule.sbar(ts)
    xbar, hist, v = x / alpha[0], [], None
    for i in range(len(ts) - 1):
        hist = (hist + [model.eps(alpha[i] * xbar, ts[i])])[-order:]
        d = float(sbar[i + 1] - sbar[i])
        nodes = [float(s) for s in sbar[i + 1 - len(hist):i + 1]]
        w = adams_bashforth_weights(nodes, float(sbar[i]), float(sbar[i + 1]))
        direction = sum(wj / d * e for wj, e in zip(w, hist))
        v = direction if v is None else (1 - beta) * v + beta * direction  # heavy ball: velocity
        xbar = xbar + d * v  # heavy ball: position
        xbar = notify(callback, {"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar}, model) / alpha[i + 1]
    return finish(model, alpha[-1] * xbar, ts[-1], denoise_to_zero)


@torch.no_grad()
def ghvb(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, beta: float = 0.8, warmup: str = "auto",
         lower_order_final: bool = False, denoise_to_zero: bool = False,
         callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """GHVB of ``order`` k and ``beta`` (1 NFE per step; order k on any grid, see the module docstring).

    ``warmup="full"`` takes the first k − 1 steps with a Runge–Kutta method of order k.
    """
    check_inputs(model, x, ts)
    check_order(order, (1, 2, 3, 4))
    _check_beta(beta)
    full = resolve_warmup(warmup, model, ts)
    ts = ts.to(x.dtype)
    alpha, sbar = model.schedule.alpha(ts), model.schedule.sbar(ts)
    nodes = [float(s) for s in sbar]
    steps = len(ts) - 1
    xbar, vs = x / alpha[0], []
    for i in range(steps):
        eps = model.eps(alpha[i] * xbar, ts[i])
        vs = (vs + [eps if not vs else (1 - beta) * vs[-1] + beta * eps])[-order:]  # GHVB: velocity
        k = step_order(i, steps + denoise_to_zero, order, lower_order_final)
        if full and i < order - 1:
            xbar = runge_kutta(model, alpha[i] * xbar, ts[i], ts[i + 1], order, eps) / alpha[i + 1]
        else:
            c = ghvb_weights(nodes[:i + 2], beta, k)
            # GHVB: position
            xbar = xbar + (sbar[i + 1] - sbar[i]) / beta * sum(cj * v for cj, v in zip(c, reversed(vs)))
        xbar = notify(callback, {"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar}, model) / alpha[i + 1]
    return finish(model, alpha[-1] * xbar, ts[-1], denoise_to_zero)
