"""A small time-conditioned MLP for low-dimensional diffusion and flow models (tests, examples)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["TimeMLP"]


class TimeMLP(nn.Module):
    """``f(x, t[, cond])`` for ``x`` of shape ``(B, dim)`` and times ``t`` of shape ``(B,)``.

    The time enters through ``n_freq`` sinusoidal features (Vaswani et al. 2017, as in DDPM's
    U-Net) of ``time_scale·t``; ``cond`` (``(B, cond_dim)``) is concatenated to the input.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, n_freq: int = 16, cond_dim: int = 0,
                 time_scale: float = 1000.0):
        super().__init__()
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.dim, self.cond_dim, self.time_scale = dim, cond_dim, time_scale
        freqs = torch.exp(-math.log(10000.0) * torch.arange(n_freq) / n_freq)
        self.register_buffer("freqs", freqs)
        layers, width = [], dim + 2 * n_freq + cond_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        arg = self.time_scale * t.to(x.dtype)[:, None] * self.freqs.to(x.dtype)
        parts = [x, torch.sin(arg), torch.cos(arg)]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this TimeMLP needs cond of shape (B, {self.cond_dim})")
            parts.append(cond.to(x.dtype))
        return self.net(torch.cat(parts, dim=1))
