"""The Heun sampler of EDM, with stochastic churn: Karras, Aittala, Aila & Laine 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS), Algorithm 2.

In x̄ = x/α and σ̄ = σ/α the probability-flow ODE is dx̄/dσ̄ = (x̄ − D(x̄; σ̄))/σ̄ = ε̂ (eq. 4 with
s(t) = α, σ(t) = σ̄), which makes the algorithm hold for VP, VE and EDM schedules alike. Each step

- churn: if S_tmin ≤ σ̄_i ≤ S_tmax, raise the noise level to σ̂ = (1 + γ) σ̄_i with
  γ = min(S_churn/N, √2 − 1) by adding fresh noise of variance σ̂² − σ̄_i² (times S_noise²);
- Euler step from σ̂ to σ̄_{i+1}, then Heun's correction with the slope at the new point:
  second order for S_churn = 0, two evaluations per step.

The update matches k-diffusion's ``sample_heun`` to rounding
(``benchmarks/results/sampling_kdiffusion_heun.md``). EDM's last
step to σ = 0 is an Euler step, the data prediction: here ``denoise_to_zero=True``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .euler_maruyama import gaussian_noise
from .options import finish, notify

__all__ = ["heun_edm"]


@torch.no_grad()
def heun_edm(model: Denoiser, x: Tensor, ts: Tensor, *, s_churn: float = 0.0, s_tmin: float = 0.0,
             s_tmax: float = math.inf, s_noise: float = 1.0, generator: torch.Generator | None = None,
             noise_sampler: Callable[[Tensor, Tensor], Tensor] | None = None, denoise_to_zero: bool = False,
             callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """EDM's Algorithm 2 over the grid ``ts`` (2 NFE per step); ``s_churn`` etc. as in the paper,
    with S_tmin, S_tmax on σ̄ = σ/α; ``noise_sampler(s, t)`` gives the churn's standard normal draw
    (default: from ``generator``)."""
    check_inputs(model, x, ts)
    for name, value in (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_noise", s_noise)):
        if not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    if not s_tmax >= s_tmin:
        raise ValueError(f"s_tmax must be at least s_tmin={s_tmin}, got {s_tmax}")
    noise = noise_sampler or gaussian_noise(x, generator)
    sch = model.schedule
    ts = ts.to(x.dtype)
    alpha = sch.alpha(ts)
    sbar = sch.sigma(ts) / alpha
    steps = len(ts) - 1
    xbar = x / alpha[0]
    for i in range(steps):
        gamma = min(s_churn / steps, math.sqrt(2) - 1) if s_tmin <= float(sbar[i]) <= s_tmax else 0.0  # churn
        s_hat, t_hat = sbar[i], ts[i]
        if gamma > 0:
            s_hat = sbar[i] * (1 + gamma)
            t_hat = sch.t_of_lam(-torch.log(s_hat))
            xbar = xbar + torch.sqrt(s_hat**2 - sbar[i] ** 2) * s_noise * noise(ts[i], ts[i + 1])  # churn: fresh noise
        d = model.eps(sch.alpha(t_hat) * xbar, t_hat)  # (x̂ − D(x̂; σ̂))/σ̂
        x_next = xbar + (sbar[i + 1] - s_hat) * d  # Euler
        d2 = model.eps(alpha[i + 1] * x_next, ts[i + 1])  # the slope at the Euler point
        xbar = xbar + (sbar[i + 1] - s_hat) * 0.5 * (d + d2)  # Heun
        xbar = notify(callback, {"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar}, model) / alpha[i + 1]
    return finish(model, alpha[-1] * xbar, ts[-1], denoise_to_zero)
