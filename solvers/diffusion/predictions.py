"""What a network predicts, and the conversions between its outputs (ε, x₀, v, F).

With x = α x₀ + σ ε:

- ``"eps"``: the noise ε (Ho et al. 2020, "DDPM", eq. 14);
- ``"x0"``: the data x₀;
- ``"v"``: v = α ε − σ x₀ (Salimans & Ho 2022, "Progressive Distillation", §4 and App. D);
- ``"F"``: the raw network F of Karras et al. 2022 ("Elucidating the Design Space of
  Diffusion-Based Generative Models", eq. 7 and Table 1, "EDM" preconditioning), written in the
  scaled variables x̄ = x/α and σ̄ = σ/α so that it holds for VP and VE schedules alike:
  the network sees c_in(σ̄)·x̄ and c_noise(σ̄) = ¼ ln σ̄ and D(x̄; σ̄) = c_skip x̄ + c_out F with
  c_skip = σ_d²/(σ̄² + σ_d²), c_out = σ̄ σ_d/√(σ̄² + σ_d²), c_in = 1/√(σ̄² + σ_d²).
  Training F on the target (x₀ − c_skip x̄)/c_out with plain MSE is EDM's loss, eq. 8, whose
  weight λ(σ) = 1/c_out² the preconditioning cancels.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["PREDICTIONS", "network_input", "to_x0", "to_eps", "target"]

PREDICTIONS = ("eps", "x0", "v", "F")


def _edm(sbar: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    d2 = sbar**2 + sigma_data**2
    return sigma_data**2 / d2, sbar * sigma_data / d2.sqrt(), 1 / d2.sqrt()  # c_skip, c_out, c_in (Table 1)


def network_input(x: Tensor, t: Tensor, alpha: Tensor, sigma: Tensor, prediction: str,
                  sigma_data: float = 0.5) -> tuple[Tensor, Tensor]:
    """What the network is called with: ``(x, t)``, or ``(c_in·x̄, c_noise)`` for ``"F"``.

    ``alpha`` and ``sigma`` broadcast against x; ``t`` is the ``(B,)`` time.
    """
    if prediction != "F":
        return x, t
    sbar = sigma / alpha
    return _edm(sbar, sigma_data)[2] * (x / alpha), 0.25 * torch.log(sbar.reshape(-1)).expand(t.shape)


def to_x0(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, prediction: str, sigma_data: float = 0.5) -> Tensor:
    """The data prediction x̂₀ from the network output ``out`` at x."""
    if prediction == "x0":
        return out
    if prediction == "eps":
        return (x - sigma * out) / alpha
    if prediction == "v":
        return (alpha * x - sigma * out) / (alpha**2 + sigma**2)  # from v = αε − σx₀ and x = αx₀ + σε
    c_skip, c_out, _ = _edm(sigma / alpha, sigma_data)
    return c_skip * (x / alpha) + c_out * out  # eq. 7


def to_eps(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, prediction: str, sigma_data: float = 0.5) -> Tensor:
    """The noise prediction ε̂ from the network output ``out`` at x."""
    if prediction == "eps":
        return out
    if prediction == "v":
        return (alpha * out + sigma * x) / (alpha**2 + sigma**2)
    return (x - alpha * to_x0(out, x, alpha, sigma, prediction, sigma_data)) / sigma


def target(x0: Tensor, eps: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, prediction: str,
           sigma_data: float = 0.5) -> Tensor:
    """The output an exact network would give at x = α x₀ + σ ε: the regression target of training."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha * eps - sigma * x0
    c_skip, c_out, _ = _edm(sigma / alpha, sigma_data)
    return (x0 - c_skip * (x / alpha)) / c_out  # the effective target of eq. 8

