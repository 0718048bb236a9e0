"""DPM-Solver: Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver: A Fast ODE Solver for Diffusion
Probabilistic Model Sampling in Around 10 Steps" (NeurIPS), noise-prediction form.

The probability-flow ODE has the exact solution (Proposition 3.1)

    x_t = (α_t/α_s) x_s − α_t ∫_{λ_s}^{λ_t} e^{−λ} ε̂(x_λ, λ) dλ,

and the solvers expand ε̂ in λ. With h = λ_t − λ_s, φ₁ = e^h − 1, ψ₂ = φ₁/h − 1 and
ψ₃ = (φ₁ − h)/h² − 1/2, the Taylor terms integrate to

    x_t = (α_t/α_s) x_s − σ_t φ₁ ε − σ_t h ψ₂ ε⁽¹⁾ − σ_t h² ψ₃ ε⁽²⁾ + O(h⁴).

Singlestep solvers (Algorithm 1, DPM-Solver-2 with r₁ = 1/2, and Algorithm 2, DPM-Solver-3
with r₁, r₂ = 1/3, 2/3) estimate the derivatives from k − 1 intermediate points inside each
step (k NFE per step); multistep solvers (Lu et al. 2022b, "DPM-Solver++", the noise-prediction
form of its multistep method) reuse the last k noise predictions (one NFE per step, warmed up
with lower orders). Equation numbers are not cited here: they could not be checked against the
paper's text, while the propositions and algorithms could be matched to the reference code
(LuChengTHU/dpm-solver).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import finish, notify, resolve_method, resolve_warmup, step_order

__all__ = ["dpm_solver"]


def _first(x, eps, a_s, a_t, s_t, h):
    return (a_t / a_s) * x - s_t * torch.expm1(h) * eps  # DPM-Solver-1: the Taylor series to order 0


def _singlestep(model: Denoiser, x: Tensor, s: Tensor, t: Tensor, order: int, eps: Tensor) -> Tensor:
    """One singlestep DPM-Solver step of ``order`` from s to t, given ε(x, s)."""
    sch = model.schedule
    lam_s, lam_t = sch.lam(s), sch.lam(t)
    h = lam_t - lam_s
    a_s, a_t, s_t = sch.alpha(s), sch.alpha(t), sch.sigma(t)
    if order == 1:
        return _first(x, eps, a_s, a_t, s_t, h)
    if order == 2:  # Algorithm 1 (DPM-Solver-2), r₁ = 1/2
        r1 = 0.5
        s1 = sch.t_of_lam(lam_s + r1 * h)
        u = _first(x, eps, a_s, sch.alpha(s1), sch.sigma(s1), r1 * h)
        d1 = model.eps(u, s1) - eps
        return _first(x, eps, a_s, a_t, s_t, h) - s_t / (2 * r1) * torch.expm1(h) * d1
    # Algorithm 2 (DPM-Solver-3), r₁ = 1/3, r₂ = 2/3
    r1, r2 = 1.0 / 3.0, 2.0 / 3.0
    s1, s2 = sch.t_of_lam(lam_s + r1 * h), sch.t_of_lam(lam_s + r2 * h)
    u1 = _first(x, eps, a_s, sch.alpha(s1), sch.sigma(s1), r1 * h)
    d1 = model.eps(u1, s1) - eps
    s_s2 = sch.sigma(s2)
    u2 = (_first(x, eps, a_s, sch.alpha(s2), s_s2, r2 * h)
          - s_s2 * (r2 / r1) * (torch.expm1(r2 * h) / (r2 * h) - 1) * d1)
    d2 = model.eps(u2, s2) - eps
    return _first(x, eps, a_s, a_t, s_t, h) - s_t / r2 * (torch.expm1(h) / h - 1) * d2


def _multistep(x: Tensor, hist: list, a_s, a_t, s_t, lam_t) -> Tensor:
    """One step from the newest of ``hist`` = [(λ_i, ε_i), ...] (oldest first), order len(hist)."""
    lam0, e0 = hist[-1]
    h = lam_t - lam0
    phi1 = torch.expm1(h)
    out = (a_t / a_s) * x - s_t * phi1 * e0
    if len(hist) == 1:
        return out
    lam1, e1 = hist[-2]
    h0 = lam0 - lam1
    d1_0 = (e0 - e1) * (h / h0)  # ≈ h ε⁽¹⁾
    psi2 = phi1 / h - 1
    if len(hist) == 2:
        return out - s_t * psi2 * d1_0
    lam2, e2 = hist[-3]
    h1 = lam1 - lam2
    d1_1 = (e1 - e2) * (h / h1)
    d1 = d1_0 + (h0 / (h0 + h1)) * (d1_0 - d1_1)  # h × derivative of the quadratic through 3 points
    d2 = (d1_0 - d1_1) * (h / (h0 + h1))  # h²/2 × its second derivative
    psi3 = (phi1 - h) / h**2 - 0.5
    return out - s_t * psi2 * d1 - 2 * s_t * psi3 * d2


@torch.no_grad()
def dpm_solver(model: Denoiser, x: Tensor, ts: Tensor, *, order: int | None = None, method: str = "singlestep",
               warmup: str = "auto", lower_order_final: bool = False, denoise_to_zero: bool = False,
               callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """DPM-Solver of ``order`` 1–3 (default 2) over the grid ``ts``.

    ``method="singlestep"`` (the default, as in the paper) spends ``order`` NFE per step;
    ``"multistep"`` one NFE per step, its first ``order − 1`` steps singlestep with
    ``warmup="full"``; the short names ``"2S"``, ``"3S"``, ``"2M"``, ``"3M"`` give order and method
    at once (other options: :mod:`.options`).
    """
    check_inputs(model, x, ts)
    order, method = resolve_method(order, method, 2)
    full = resolve_warmup(warmup, model, ts)
    sch = model.schedule
    ts = ts.to(x.dtype)
    steps = len(ts) - 1
    hist: list = []
    for i in range(steps):
        s, t = ts[i], ts[i + 1]
        eps = model.eps(x, s)
        if method == "singlestep":
            k = min(order, steps + denoise_to_zero - i) if lower_order_final else order
            x = _singlestep(model, x, s, t, k, eps)
        else:
            hist = (hist + [(sch.lam(s), eps)])[-order:]
            k = step_order(i, steps + denoise_to_zero, order, lower_order_final)
            if full and i < order - 1:
                x = _singlestep(model, x, s, t, order, eps)
            else:
                x = _multistep(x, hist[-k:], sch.alpha(s), sch.alpha(t), sch.sigma(t), sch.lam(t))
        x = notify(callback, {"i": i, "t": t, "x": x}, model)
    return finish(model, x, ts[-1], denoise_to_zero)
