"""The Heun sampler of EDM, with stochastic churn: Karras, Aittala, Aila & Laine 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS), Algorithm 2.

In x̄ = x/α and σ̄ = σ/α the probability-flow ODE is dx̄/dσ̄ = (x̄ − D(x̄; σ̄))/σ̄ = ε̂ (eq. 4 with
s(t) = α, σ(t) = σ̄), which makes the algorithm hold for VP, VE and EDM schedules alike. Each step

- churn: if S_tmin ≤ σ̄_i ≤ S_tmax, raise the noise level to σ̂ = (1 + γ) σ̄_i with
  γ = min(S_churn/N, √2 − 1) by adding fresh noise of variance σ̂² − σ̄_i² (times S_noise²);
- Euler step from σ̂ to σ̄_{i+1}, then Heun's correction with the slope at the new point:
  second order for S_churn = 0, two evaluations per step.

The update matches k-diffusion's ``sample_heun`` to rounding
(``benchmarks/results/sampling_kdiffusion_heun.md``). EDM's last step to σ = 0 is an Euler step,
the data prediction at the churned level: here ``denoise_to_zero=True``, with N = steps + 1 in γ.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .euler_maruyama import gaussian_noise
from .options import notify

__all__ = ["heun_edm"]


@torch.no_grad()
def heun_edm(model: Denoiser, x: Tensor, ts: Tensor, *, s_churn: float = 0.0, s_tmin: float = 0.0,
             s_tmax: float = math.inf, s_noise: float = 1.0, generator: torch.Generator | None = None,
             noise_sampler: Callable[[Tensor, Tensor], Tensor] | None = None, denoise_to_zero: bool = False,
             callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """EDM's Algorithm 2 over the grid ``ts`` (2 NFE per step); ``s_churn`` etc. as in the paper,
    with S_tmin, S_tmax on σ̄ = σ/α; ``noise_sampler(s, t)`` gives the churn's standard normal draw
    (default: from ``generator``). With ``denoise_to_zero`` the grid is extended by σ̄ = 0: the
    algorithm's N counts that step too, and its last level is churned before the Euler step to 0."""
    check_inputs(model, x, ts)
    for name, value in (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_noise", s_noise)):
        if not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    if not s_tmax >= s_tmin:
        raise ValueError(f"s_tmax must be at least s_tmin={s_tmin}, got {s_tmax}")
    noise = noise_sampler or gaussian_noise(x, generator)
    sch = model.schedule
    ts = ts.to(x.dtype)
    alpha, sbar = sch.alpha(ts), sch.sbar(ts)
    steps = len(ts) - 1
    n = steps + denoise_to_zero  # Algorithm 2's N: the step to σ = 0 counts

    def churn(xbar: Tensor, i: int, t_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x̄ raised from σ̄_i to σ̂ = (1 + γ_i) σ̄_i, with σ̂ and its time (Algorithm 2, lines 3–6)."""
        if s_churn == 0:
            return xbar, sbar[i], ts[i]
        # drawn at every step, as EDM's and k-diffusion's code do, so a seed gives their noise stream
        z = noise(ts[i], t_next)
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= float(sbar[i]) <= s_tmax else 0.0
        if gamma == 0:
            return xbar, sbar[i], ts[i]
        s_hat = sbar[i] * (1 + gamma)
        xbar = xbar + torch.sqrt(s_hat**2 - sbar[i] ** 2) * s_noise * z  # fresh noise
        return xbar, s_hat, sch.t_of_sbar(s_hat)

    xbar = x / alpha[0]
    for i in range(steps):
        xbar, s_hat, t_hat = churn(xbar, i, ts[i + 1])
        d = model.eps(sch.alpha(t_hat) * xbar, t_hat)  # (x̂ − D(x̂; σ̂))/σ̂, line 7
        x_next = xbar + (sbar[i + 1] - s_hat) * d  # Euler, line 8
        d2 = model.eps(alpha[i + 1] * x_next, ts[i + 1])  # the slope at the Euler point, line 10
        xbar = xbar + (sbar[i + 1] - s_hat) * 0.5 * (d + d2)  # Heun, line 11
        xbar = notify(callback, {"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar}, model) / alpha[i + 1]
    if not denoise_to_zero:
        return alpha[-1] * xbar
    # the last step, to σ = 0: churn, then Euler, x̂ + (0 − σ̂)(x̂ − D)/σ̂ = D(x̂; σ̂) (line 8)
    xbar, _, t_hat = churn(xbar, steps, torch.zeros_like(ts[-1]))
    return model.x0(sch.alpha(t_hat) * xbar, t_hat)
