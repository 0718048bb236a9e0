"""Rectified flow: Liu, Gong & Liu 2023, "Flow Straight and Fast: Learning to Generate and
Transfer Data with Rectified Flow" (ICLR).

Given a coupling (X₀, X₁) — independent noise and data at first — the velocity field v is
fitted to the straight interpolation X_t = t X₁ + (1 − t) X₀ (eq. 1):

    min_v ∫₀¹ E ‖(X₁ − X₀) − v(X_t, t)‖² dt.

The ODE dZ_t = v(Z_t, t) dt from Z₀ = X₀ then transports noise to data. *Reflow* draws
a new coupling (Z₀, Z₁) from the trained flow and fits again; each reflow makes the paths
straighter, measured by the paper's straightness

    S(Z) = ∫₀¹ E ‖(Z₁ − Z₀) − Ż_t‖² dt,

zero exactly for straight paths, which one Euler step integrates without error. (Reflow and
the straightness are cited by name: their section and equation numbers could not be checked
against the paper's text.)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sciml.solver import Solver

__all__ = ["RectifiedFlowSolver"]

METHODS = ("euler", "heun")


def _split(batch: Any) -> tuple[Tensor | None, Tensor]:
    """A batch is x₁, (x₁,) — paired with fresh noise — or a coupling pair (x₀, x₁)."""
    if isinstance(batch, Tensor):
        return None, batch
    if isinstance(batch, (tuple, list)) and len(batch) == 1 and isinstance(batch[0], Tensor):
        return None, batch[0]
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(b, Tensor) for b in batch):
        if batch[0].shape != batch[1].shape:
            raise ValueError(f"a coupling (x0, x1) needs equal shapes, got {tuple(batch[0].shape)} "
                             f"and {tuple(batch[1].shape)}")
        return batch[0], batch[1]
    raise TypeError(f"a rectified-flow batch is x1, (x1,) or a pair (x0, x1), got {type(batch).__name__}")


class RectifiedFlowSolver(Solver):
    """Rectified flow from standard normal noise to data of shape ``(B, *data_shape)``.

    Parameters
    ----------
    model : velocity network ``model(x_t, t)`` with t a ``(B,)`` tensor in [0, 1].
    data_shape : shape of one sample; found by :meth:`prepare` (the Trainer calls it) if None.
    """

    def __init__(self, model: nn.Module, data_shape: tuple[int, ...] | None = None):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.data_shape = tuple(data_shape) if data_shape is not None else None

    def prepare(self, dataset) -> None:
        if self.data_shape is None:
            self.data_shape = tuple(_split(dataset[0])[1].shape)

    def loss(self, batch: Any) -> Tensor:
        x0, x1 = _split(batch)
        if x0 is None:
            x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device, dtype=x1.dtype)
        tb = t.reshape((-1,) + (1,) * (x1.dim() - 1))
        xt = tb * x1 + (1 - tb) * x0  # eq. 1, the linear interpolation
        return (self.model(xt, t) - (x1 - x0)).pow(2).mean()  # eq. 1, the objective

    def _noise(self, n: int | Tensor, generator: torch.Generator | None) -> Tensor:
        if isinstance(n, Tensor):
            return n
        if not (isinstance(n, int) and n >= 1):
            raise TypeError(f"n must be a positive int or a noise tensor x0, got {n!r}")
        if self.data_shape is None:
            raise ValueError("data_shape is unknown: pass x0 or build the solver with data_shape=...")
        dtype = next(self.model.parameters()).dtype
        return torch.randn((n, *self.data_shape), generator=generator, dtype=dtype, device=self.device)

    def _v(self, z: Tensor, t: float) -> Tensor:
        return self.model(z, torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device))

    @torch.no_grad()
    def _path(self, z: Tensor, steps: int, method: str) -> tuple[Tensor, list[Tensor]]:
        """Integrate dZ = v dt on a uniform grid; return Z₁ and the velocity used on each step."""
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        dt, used = 1.0 / steps, []
        was_training = self.training
        self.eval()
        for k in range(steps):
            v = self._v(z, k * dt)
            if method == "heun":  # explicit trapezoid: average the slopes at both ends
                v = 0.5 * (v + self._v(z + dt * v, (k + 1) * dt))
            used.append(v)
            z = z + dt * v
        self.train(was_training)
        return z, used

    @torch.no_grad()
    def sample(self, n: int | Tensor, steps: int = 50, method: str = "euler",
               generator: torch.Generator | None = None) -> Tensor:
        """Z₁ from ``n`` fresh noise draws (or from the given noise tensor) by Euler or Heun steps."""
        return self._path(self._noise(n, generator), steps, method)[0]

    @torch.no_grad()
    def reflow(self, n: int | Tensor, steps: int = 100, method: str = "heun",
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The coupling (Z₀, Z₁) of the trained flow (reflow): train on it to get the next rectified flow."""
        z0 = self._noise(n, generator)
        return z0, self._path(z0, steps, method)[0]

    @torch.no_grad()
    def straightness(self, n: int | Tensor, steps: int = 100, generator: torch.Generator | None = None) -> float:
        """The straightness S(Z), by the rectangle rule along the Euler path with ``steps`` steps."""
        z0 = self._noise(n, generator)
        z1, used = self._path(z0, steps, "euler")
        chord = (z1 - z0).flatten(1)
        return float(torch.stack([(chord - v.flatten(1)).pow(2).sum(1).mean() for v in used]).mean())
