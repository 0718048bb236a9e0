"""Euler–Maruyama on the reverse-time SDE: Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021,
"Score-Based Generative Modeling through Stochastic Differential Equations" (ICLR), eq. 6, with
the Euler–Maruyama discretisation (Kloeden & Platen 1992, "Numerical Solution of Stochastic
Differential Equations") that its reverse-diffusion predictor uses.

In x̄ = x/α every schedule's forward process is the variance-exploding SDE dx̄ = dW_τ in the time
τ = σ̄² (σ̄ = σ/α), since x̄_t = x₀ + σ̄_t ε. Its reverse (eq. 6, f = 0, g = 1) is
dx̄ = −∇log p_τ(x̄) dτ + dW̄_τ with ∇log p = −ε̂/σ̄, and one Euler–Maruyama step from σ̄_i to
σ̄_{i+1} reads

    x̄_{i+1} = x̄_i − (σ̄_i² − σ̄_{i+1}²) ε̂/σ̄_i + √(σ̄_i² − σ̄_{i+1}²) z,

Song et al.'s reverse-diffusion step for VE models, here for any schedule. Strong
order ½, weak order 1; one evaluation per step.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import finish, notify

__all__ = ["euler_maruyama", "gaussian_noise"]


def gaussian_noise(x: Tensor, generator: torch.Generator | None) -> Callable[[Tensor, Tensor], Tensor]:
    """The default ``noise_sampler(s, t)``: a fresh standard normal draw of x's shape per step."""
    return lambda s, t: torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


@torch.no_grad()
def euler_maruyama(model: Denoiser, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
                   noise_sampler: Callable[[Tensor, Tensor], Tensor] | None = None, denoise_to_zero: bool = False,
                   callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """Reverse-SDE sampling over ``ts`` (1 NFE per step). ``noise_sampler(s, t)`` gives the standard
    normal z of the step from s to t (default: draws from ``generator``)."""
    check_inputs(model, x, ts)
    noise = noise_sampler or gaussian_noise(x, generator)
    sch = model.schedule
    ts = ts.to(x.dtype)
    alpha, sbar = sch.alpha(ts), sch.sbar(ts)
    xbar = x / alpha[0]
    for i in range(len(ts) - 1):
        eps = model.eps(alpha[i] * xbar, ts[i])
        dtau = sbar[i] ** 2 - sbar[i + 1] ** 2
        xbar = xbar - dtau / sbar[i] * eps + torch.sqrt(dtau) * noise(ts[i], ts[i + 1])  # eq. 6, Euler–Maruyama
        xbar = notify(callback, {"i": i, "t": ts[i + 1], "x": alpha[i + 1] * xbar}, model) / alpha[i + 1]
    return finish(model, alpha[-1] * xbar, ts[-1], denoise_to_zero)
