"""Small synthetic datasets with known structure, made on the spot (nothing is downloaded).

They give the generative and neural-ODE families data to train on in examples, configs and
tests: ``sciml train --family diffusion --data sciml.datasets.toy:noisy_ring``.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, TensorDataset

from sciml.validation import check_range, positive_int

__all__ = ["noisy_ring", "spiral", "Trajectories"]


def noisy_ring(n: int = 4096, radius: float = 1.0, noise: float = 0.1, seed: int = 0) -> TensorDataset:
    """``n`` points of the plane at angle θ ~ U(0, 2π) on a circle of ``radius``, plus N(0, noise²) per axis."""
    positive_int("n", n)
    check_range("radius", radius, 0.0, low_open=True)
    check_range("noise", noise, 0.0)
    g = torch.Generator().manual_seed(seed)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    points = radius * torch.stack([angle.cos(), angle.sin()], 1) + noise * torch.randn(n, 2, generator=g)
    return TensorDataset(points)


class Trajectories(Dataset):
    """Trajectories on one time grid: item ``i`` is ``{"t": t (T,), "y": y[i] (T, *state)}``."""

    def __init__(self, t: torch.Tensor, y: torch.Tensor):
        if t.dim() != 1 or y.dim() < 3 or y.shape[1] != t.numel():
            raise ValueError(f"need t (T,) and y (N, T, *state), got {tuple(t.shape)} and {tuple(y.shape)}")
        self.t, self.y = t, y

    def __len__(self) -> int:
        return self.y.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"t": self.t, "y": self.y[i]}


def spiral(n: int = 256, steps: int = 16, t_end: float = 3.0, damping: float = 0.1, frequency: float = 2.0,
           seed: int = 0) -> Trajectories:
    """Trajectories of the linear spiral dy/dt = A y, A = [[-d, w], [-w, -d]], from y0 ~ U([-1, 1]²).

    The exact flow is y(t) = exp(tA) y0, so a learned vector field can be checked against A.
    """
    positive_int("n", n)
    positive_int("steps", steps)
    check_range("t_end", t_end, 0.0, low_open=True)
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[-damping, frequency], [-frequency, -damping]], dtype=torch.float64)
    y0 = 2 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 1
    t = torch.linspace(0, t_end, max(steps, 2), dtype=torch.float64)
    y = torch.einsum("tij,bj->bti", torch.linalg.matrix_exp(t[:, None, None] * a), y0)
    return Trajectories(t.float(), y.float())
