"""A Gaussian mixture whose noise prediction is exact: the analytic model samplers are tested on.

If x₀ ~ Σ_k w_k N(μ_k, s_k² I) then x_t = α x₀ + σ ε ~ Σ_k w_k N(α μ_k, (α² s_k² + σ²) I), so
ε*(x, t) = −σ ∇ log p_t(x) = σ Σ_k r_k(x) (x − α μ_k)/(α² s_k² + σ²) with the responsibilities
r_k (Tweedie's formula; Efron 2011, "Tweedie's Formula and Selection Bias"). With it a
sampler's error against the exact probability-flow ODE can be measured with no trained model.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .schedules import VPSchedule

__all__ = ["GaussianMixture", "observed_order"]


def observed_order(steps: list[float], errs: list[float]) -> float:
    """The order p of err ∝ steps^{−p}: minus the least-squares slope of log err against log steps."""
    ls, le = torch.log(torch.tensor(steps, dtype=torch.float64)), torch.log(torch.tensor(errs, dtype=torch.float64))
    return float(-((ls - ls.mean()) * (le - le.mean())).sum() / ((ls - ls.mean()) ** 2).sum())


class GaussianMixture:
    """Isotropic Gaussian mixture in ``dim = means.shape[1]`` dimensions.

    Parameters
    ----------
    means : ``(K, D)`` component means.
    stds : ``(K,)`` component standard deviations s_k > 0.
    weights : ``(K,)`` mixture weights (normalised here); default uniform.
    """

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None):
        means = torch.as_tensor(means)
        if means.dim() != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=means.dtype)
        if stds.shape != (k,) or not bool((stds > 0).all()):
            raise ValueError(f"stds must be {k} positive values, got {stds.tolist()}")
        weights = torch.full((k,), 1.0 / k, dtype=means.dtype) if weights is None else torch.as_tensor(weights)
        if weights.shape != (k,) or not bool((weights > 0).all()):
            raise ValueError(f"weights must be {k} positive values, got {weights}")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of x₀, shape ``(n, D)``."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * z

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        centred = self.means - self.mean()
        second = (self.weights[:, None] * centred).T @ centred
        return second + (self.weights * self.stds**2).sum() * torch.eye(self.dim, dtype=self.means.dtype)

    def eps(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """Exact ε*(x, t) at noise level (α, σ): x is ``(B, D)``, α and σ ``(B, 1)`` or scalars."""
        mu, s2, w = (v.to(x) for v in (self.means, self.stds**2, self.weights))
        var = alpha**2 * s2 + sigma**2  # (B, K)
        diff = x[:, None, :] - alpha[..., None] * mu  # (B, K, D)
        logp = torch.log(w) - 0.5 * self.dim * torch.log(var) - 0.5 * diff.pow(2).sum(-1) / var
        r = torch.softmax(logp, dim=1)
        return sigma * (r[..., None] * diff / var[..., None]).sum(1)

    def noise_predictor(self, schedule: VPSchedule):
        """``fn(x, t)`` giving ε* under ``schedule``, ready for :class:`Denoiser`."""
        def fn(x: Tensor, t: Tensor) -> Tensor:
            return self.eps(x, schedule.alpha(t)[:, None], schedule.sigma(t)[:, None])
        return fn
