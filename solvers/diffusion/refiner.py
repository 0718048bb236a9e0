"""PDE-Refiner: Lippe, Veeling, Perdikaris, Turner & Brandstetter 2023, "PDE-Refiner: Achieving
Accurate Long Rollouts with Neural PDE Solvers" (NeurIPS).

A neural operator predicts the field; a conditional denoiser then refines the prediction in K
steps. Step k adds Gaussian noise of standard deviation σ_k = σ_min^{k/K} (§3, the exponentially
decreasing noise schedule) and removes it again with the denoiser, which is trained on noised
targets at the same K levels with the ε objective. Large early levels correct the large
components of the error, small late ones the low-amplitude, high-frequency components the
operator's MSE training neglects (§3). Here the levels are VP noise levels (α_k² + σ_k² = 1),
so that the removal is done by any registered sampler; ``steps=1`` with ``"ddim"`` is the
paper's one-step refinement x̂ = (ũ − σ_k ε̂)/α_k.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from sciml.solver import Solver

from .denoiser import Denoiser
from .samplers import get_sampler
from .schedules import LinearVP, time_grid

__all__ = ["PDERefinerSolver"]


def _pair(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, dict) and "x" in batch and "y" in batch:
        return batch["x"], batch["y"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"a refiner batch is a dict with 'x' and 'y' or a pair (x, y), got {type(batch).__name__}")


class PDERefinerSolver(Solver):
    """A neural operator's prediction refined by K denoising steps.

    Parameters
    ----------
    operator : ``nn.Module`` mapping ``x (B, C_in, *grid) → y (B, C_out, *grid)``; trained
        jointly by MSE unless its parameters are frozen (``requires_grad=False``).
    denoiser : ``nn.Module`` ``denoiser(u_noisy, level, x) → ε̂`` of u's shape, with ``level``
        a ``(B,)`` tensor ``log σ / log σ_min`` (k/K at the training levels).
    refinement_steps : K, the number of refinement levels.
    sigma_min : the smallest noise level σ_K (PDE-Refiner uses 2e-7 in float32 rollouts).
    """

    def __init__(self, operator: nn.Module, denoiser: nn.Module, refinement_steps: int = 3,
                 sigma_min: float = 1e-3):
        super().__init__()
        if not isinstance(operator, nn.Module):
            raise TypeError(f"operator must be an nn.Module, got {type(operator).__name__}")
        if not isinstance(denoiser, nn.Module):
            raise TypeError(f"denoiser must be an nn.Module, got {type(denoiser).__name__}")
        if not (isinstance(refinement_steps, int) and refinement_steps >= 1):
            raise ValueError(f"refinement_steps must be a positive integer, got {refinement_steps!r}")
        if not 0 < sigma_min < 1:
            raise ValueError(f"sigma_min must be in (0, 1), got {sigma_min}")
        self.operator, self.denoiser = operator, denoiser
        self.K, self.sigma_min = refinement_steps, float(sigma_min)
        # the denoising grids end where σ = σ_min², below every refinement level
        self.schedule = LinearVP(t_min=self._t_of_sigma(self.sigma_min**2))

    def _t_of_sigma(self, sigma: float) -> float:
        lam = 0.5 * math.log((1 - sigma**2) / sigma**2)  # σ² = sigmoid(−2λ)
        return float(LinearVP().t_of_lam(torch.tensor(lam, dtype=torch.float64)))

    def _levels(self) -> list[float]:
        return [self.sigma_min ** (k / self.K) for k in range(1, self.K + 1)]  # σ_k = σ_min^{k/K}

    def _net(self, x: Tensor):
        log_min = math.log(self.sigma_min)

        def fn(u: Tensor, t: Tensor) -> Tensor:
            level = torch.log(self.schedule.sigma(t)) / log_min
            return self.denoiser(u, level.to(u.dtype), x)
        return fn

    def loss(self, batch: Any) -> Tensor:
        x, y = _pair(batch)
        total = y.new_zeros(())
        if any(p.requires_grad for p in self.operator.parameters()):
            total = total + (self.operator(x) - y).pow(2).mean()
        levels = torch.tensor(self._levels(), dtype=y.dtype, device=y.device)
        sigma = levels[torch.randint(0, self.K, (y.shape[0],), device=y.device)]
        shape = (-1,) + (1,) * (y.dim() - 1)
        s, a = sigma.reshape(shape), torch.sqrt(1 - sigma**2).reshape(shape)
        eps = torch.randn_like(y)
        eps_hat = self.denoiser(a * y + s * eps, torch.log(sigma) / math.log(self.sigma_min), x)
        return total + (eps_hat - eps).pow(2).mean()  # the ε objective at the K levels (§3)

    @torch.no_grad()
    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Loss and the relative L2 errors of the operator's and the refined prediction."""
        x, y = _pair(batch)
        rel = lambda p: ((p - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()  # noqa: E731
        return {"loss": self.loss(batch), "rel_l2_operator": rel(self.operator(x)), "rel_l2": rel(self.sample(x))}

    @torch.no_grad()
    def sample(self, x: Tensor, sampler: str = "ddim", steps: int = 1,
               generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """The operator's prediction for ``x`` refined at the K levels, each removed by ``sampler``
        in ``steps`` steps from the level's time to σ = σ_min² (1 NFE per level with the default)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        fn = get_sampler(sampler)
        was_training = self.training
        self.eval()
        u = self.operator(x)
        model = Denoiser(self._net(x), self.schedule, "eps")
        for sigma in self._levels():
            t_k = self._t_of_sigma(sigma)
            noise = torch.randn(u.shape, generator=generator, dtype=u.dtype, device=u.device)
            u_noisy = math.sqrt(1 - sigma**2) * u + sigma * noise
            ts = time_grid(self.schedule, steps, "logSNR", t_start=t_k, dtype=u.dtype, device=u.device)
            u = fn(model, u_noisy, ts, **options)
        self.train(was_training)
        self.last_nfe = model.nfe
        return u
