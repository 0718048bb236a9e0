"""DPM-Solver++: Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver++: Fast Solver for Guided
Sampling of Diffusion Probabilistic Models" (arXiv:2211.01095), data-prediction form.

The exact solution in terms of the data prediction x̂₀ is (§4, the data-prediction
counterpart of DPM-Solver's Proposition 3.1)

    x_t = (σ_t/σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^{λ} x̂₀(x_λ, λ) dλ,

and with h = λ_t − λ_s, φ₁ = e^{−h} − 1, φ₂ = φ₁/h + 1, φ₃ = φ₂/h − 1/2 its Taylor terms give

    x_t = (σ_t/σ_s) x_s − α_t φ₁ x̂₀ + α_t h φ₂ x̂₀⁽¹⁾ − α_t h² φ₃ x̂₀⁽²⁾ + O(h⁴).

Singlestep order 2 (``"2S"``) is Algorithm 1 (r = 1/2, 2 NFE per step), singlestep order 3
(``"3S"``) the reference code's ``singlestep_dpm_solver_third_update`` (r₁, r₂ = 1/3, 2/3, its
``solver_type="dpmsolver"`` form: 3 NFE per step), multistep order 2 (``"2M"``) Algorithm 2
(1 NFE per step), multistep order 3 (``"3M"``) the third-order multistep update of the reference code
(LuChengTHU/dpm-solver, ``multistep_dpm_solver_third_update``) with one change: the
second-difference term D₂ ≈ h² x̂₀⁽²⁾/2 enters as 2·φ₃·D₂, the coefficient the Taylor series
above asks for. With the reference's φ₃·D₂ (also in diffusers) the measured global order on
the Gaussian-mixture test problem is 1.9–2.0; with 2·φ₃·D₂ it is 3.0–3.1. The data prediction
is what classifier-free guidance with a large scale and dynamic thresholding act on; both live
in :class:`~sciml.solvers.diffusion.Denoiser`. Equation numbers are not cited: they could not
be checked against the paper's text.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import finish, notify, resolve_method, resolve_warmup, step_order

__all__ = ["dpm_solver_pp"]


def _first(x, x0, s_s, a_t, s_t, h):
    return (s_t / s_s) * x - a_t * torch.expm1(-h) * x0  # first order (DPM-Solver++1 = DDIM)


def _singlestep(model: Denoiser, x: Tensor, s: Tensor, t: Tensor, order: int, x0: Tensor) -> Tensor:
    """One singlestep DPM-Solver++ step of ``order`` from s to t, given x̂₀(x, s)."""
    sch = model.schedule
    lam_s, lam_t = sch.lam(s), sch.lam(t)
    h = lam_t - lam_s
    s_s, a_t, s_t = sch.sigma(s), sch.alpha(t), sch.sigma(t)
    if order == 1:
        return _first(x, x0, s_s, a_t, s_t, h)
    if order == 2:  # Algorithm 1, r = 1/2
        r = 0.5
        s1 = sch.t_of_lam(lam_s + r * h)
        u = _first(x, x0, s_s, sch.alpha(s1), sch.sigma(s1), r * h)
        d = (1 - 1 / (2 * r)) * x0 + 1 / (2 * r) * model.x0(u, s1)
        return _first(x, d, s_s, a_t, s_t, h)
    r1, r2 = 1.0 / 3.0, 2.0 / 3.0  # third order, r₁ = 1/3, r₂ = 2/3
    s1, s2 = sch.t_of_lam(lam_s + r1 * h), sch.t_of_lam(lam_s + r2 * h)
    m1 = model.x0(_first(x, x0, s_s, sch.alpha(s1), sch.sigma(s1), r1 * h), s1)
    a2 = sch.alpha(s2)
    phi22 = torch.expm1(-r2 * h) / (r2 * h) + 1
    u2 = _first(x, x0, s_s, a2, sch.sigma(s2), r2 * h) + (r2 / r1) * a2 * phi22 * (m1 - x0)
    m2 = model.x0(u2, s2)
    phi2 = torch.expm1(-h) / h + 1
    return _first(x, x0, s_s, a_t, s_t, h) + (1 / r2) * a_t * phi2 * (m2 - x0)


def _multistep(x: Tensor, hist: list, s_s, a_t, s_t, lam_t) -> Tensor:
    """One step from the newest of ``hist`` = [(λ_i, x̂₀_i), ...] (oldest first), order len(hist)."""
    lam0, m0 = hist[-1]
    h = lam_t - lam0
    if len(hist) == 1:
        return _first(x, m0, s_s, a_t, s_t, h)
    if len(hist) == 2:
        r = (hist[-1][0] - hist[-2][0]) / h
        d = (1 + 1 / (2 * r)) * m0 - 1 / (2 * r) * hist[-2][1]  # Algorithm 2, D_i
        return _first(x, d, s_s, a_t, s_t, h)
    (l2, m2), (l1, m1) = hist[-3], hist[-2]
    h0, h1 = lam0 - l1, l1 - l2
    d1_0, d1_1 = (m0 - m1) * (h / h0), (m1 - m2) * (h / h1)
    d1 = d1_0 + (h0 / (h0 + h1)) * (d1_0 - d1_1)  # ≈ h x̂₀⁽¹⁾ from the quadratic fit
    d2 = (d1_0 - d1_1) * (h / (h0 + h1))  # ≈ h²/2 x̂₀⁽²⁾
    phi1 = torch.expm1(-h)
    phi2 = phi1 / h + 1
    phi3 = phi2 / h - 0.5
    # third order; the factor 2 on φ₃·D₂ is the one the reference code drops (module docstring)
    return (s_t / s_s) * x - a_t * phi1 * m0 + a_t * phi2 * d1 - 2 * a_t * phi3 * d2


@torch.no_grad()
def dpm_solver_pp(model: Denoiser, x: Tensor, ts: Tensor, *, order: int | None = None, method: str = "multistep",
                  warmup: str = "auto", lower_order_final: bool = False, denoise_to_zero: bool = False,
                  callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """DPM-Solver++ of ``order`` 1–3 (default 2), ``method`` ``"singlestep"`` (``order`` NFE per step) or
    ``"multistep"`` (1 NFE per step; its first ``order − 1`` steps singlestep with ``warmup="full"``).

    The short names ``method="2S"``, ``"3S"``, ``"2M"``, ``"3M"`` give order and method at once.
    Other options: :mod:`.options`.
    """
    check_inputs(model, x, ts)
    order, method = resolve_method(order, method, 2)
    full = resolve_warmup(warmup, model, ts)
    sch = model.schedule
    ts = ts.to(x.dtype)
    lam = sch.lam(ts)
    steps = len(ts) - 1
    hist: list = []  # (λ_i, x̂₀_i), oldest first
    for i in range(steps):
        x0 = model.x0(x, ts[i])
        if method == "singlestep":
            k = min(order, steps + denoise_to_zero - i) if lower_order_final else order
            x = _singlestep(model, x, ts[i], ts[i + 1], k, x0)
        else:
            hist = (hist + [(lam[i], x0)])[-order:]
            k = step_order(i, steps + denoise_to_zero, order, lower_order_final)
            if full and i < order - 1:
                x = _singlestep(model, x, ts[i], ts[i + 1], order, x0)
            else:
                x = _multistep(x, hist[-k:], sch.sigma(ts[i]), sch.alpha(ts[i + 1]), sch.sigma(ts[i + 1]), lam[i + 1])
        x = notify(callback, {"i": i, "t": ts[i + 1], "x": x, "denoised": x0}, model)
    return finish(model, x, ts[-1], denoise_to_zero)
