"""DPM-Solver++(2M) SDE: the second-order multistep data-prediction solver of Lu, Zhou, Bao, Chen,
Li & Zhu 2022, "DPM-Solver++" (arXiv:2211.01095), applied to the reverse SDE, as in k-diffusion's
``sample_dpmpp_2m_sde`` and diffusers' ``DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")``.

The reverse SDE in data-prediction form is linear in x apart from x̂₀; integrating the linear part
exactly over a step of h = λ_t − λ_s (the SDE counterpart of DPM-Solver++'s exact solution, with
noise scale η) gives

    x_t = (σ_t/σ_s) e^{−ηh} x_s + α_t (1 − e^{−(1+η)h}) D + σ_t √(1 − e^{−2ηh}) z,

with D = x̂₀ for order 1 and, for order 2, D = x̂₀ + (1/(2r))(x̂₀ − x̂₀,prev), r = h_prev/h (the
"midpoint" form of both references). η = 1 is the reverse SDE, η = 0 DPM-Solver++(2M).
Equation numbers are not cited: the references give this as code, not as numbered formulas.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .euler_maruyama import gaussian_noise
from .options import check_order, finish, notify, step_order

__all__ = ["dpm_solver_pp_sde"]


@torch.no_grad()
def dpm_solver_pp_sde(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, eta: float = 1.0,
                      generator: torch.Generator | None = None,
                      noise_sampler: Callable[[Tensor, Tensor], Tensor] | None = None, lower_order_final: bool = False,
                      denoise_to_zero: bool = False, callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """DPM-Solver++(``order`` 1 or 2, multistep) on the reverse SDE with noise scale ``eta`` (1 NFE per step)."""
    check_inputs(model, x, ts)
    check_order(order, (1, 2))
    if not eta >= 0:
        raise ValueError(f"eta must be non-negative, got {eta}")
    noise = noise_sampler or gaussian_noise(x, generator)
    sch = model.schedule
    ts = ts.to(x.dtype)
    lam, alpha, sigma = sch.lam(ts), sch.alpha(ts), sch.sigma(ts)
    steps = len(ts) - 1
    prev = None  # (x̂₀, h) of the last step
    for i in range(steps):
        x0 = model.x0(x, ts[i])
        h = lam[i + 1] - lam[i]
        d = x0
        if prev is not None and step_order(i, steps + denoise_to_zero, order, lower_order_final) == 2:
            d = x0 + 0.5 * (h / prev[1]) * (x0 - prev[0])  # midpoint form, 1/(2r) with r = h_prev/h
        x = (sigma[i + 1] / sigma[i]) * torch.exp(-eta * h) * x - alpha[i + 1] * torch.expm1(-(1 + eta) * h) * d
        if eta > 0:
            x = x + sigma[i + 1] * torch.sqrt(-torch.expm1(-2 * eta * h)) * noise(ts[i], ts[i + 1])
        prev = (x0, h)
        x = notify(callback, {"i": i, "t": ts[i + 1], "x": x, "denoised": x0}, model)
    return finish(model, x, ts[-1], denoise_to_zero)
