"""DDIM: Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (ICLR).

With η = 0 the update (eq. 12) is the exact solution of the probability-flow ODE under a
constant noise prediction over the step, i.e. DPM-Solver-1 (Lu et al. 2022, "DPM-Solver");
η > 0 adds the stochasticity of eq. 16 (η = 1: DDPM's ancestral sampler). Equation numbers
checked against diffusers' ``DDIMScheduler``, which cites the same formulas.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import finish, notify

__all__ = ["ddim"]


@torch.no_grad()
def ddim(model: Denoiser, x: Tensor, ts: Tensor, *, eta: float = 0.0, generator: torch.Generator | None = None,
         denoise_to_zero: bool = False, callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """Integrate from ``ts[0]`` to ``ts[-1]`` with one noise prediction per step (``len(ts) − 1`` NFE);
    options as in :mod:`.options`."""
    check_inputs(model, x, ts)
    if not eta >= 0:
        raise ValueError(f"eta must be non-negative, got {eta}")
    sch = model.schedule
    alpha, sigma, lam = sch.alpha(ts).to(x.dtype), sch.sigma(ts).to(x.dtype), sch.lam(ts).to(x.dtype)
    for i in range(len(ts) - 1):
        eps = model.eps(x, ts[i])
        x0 = (x - sigma[i] * eps) / alpha[i]  # eq. 12, "predicted x0"
        if eta == 0:
            x = alpha[i + 1] * x0 + sigma[i + 1] * eps  # eq. 12 with σ_t(η) = 0
        else:
            # eq. 16: σ_t(η) = η·sqrt((1−ᾱ_{t−1})/(1−ᾱ_t))·sqrt(1 − ᾱ_t/ᾱ_{t−1}), written as
            # η·σ_{t−1}·sqrt(1 − e^{−2(λ_{t−1} − λ_t)}), which is the same for VP and holds for VE too
            s_eta = eta * sigma[i + 1] * torch.sqrt(-torch.expm1(-2 * (lam[i + 1] - lam[i])))
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = alpha[i + 1] * x0 + torch.sqrt(sigma[i + 1] ** 2 - s_eta**2) * eps + s_eta * noise  # eq. 12
        x = notify(callback, {"i": i, "t": ts[i + 1], "x": x, "denoised": x0}, model)
    return finish(model, x, ts[-1], denoise_to_zero)
