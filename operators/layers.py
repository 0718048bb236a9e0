"""Small blocks shared by the operators (see the model files for the methods themselves)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["grid_coordinates", "check_input_2d"]


def grid_coordinates(x: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """The (y, x) coordinates of ``x``'s grid, ``(B, 2, H, W)``, on its device and dtype.

    The first ``size = (h, w)`` points of each axis span ``[0, 1]`` (default: the whole grid,
    ``[0, 1]²``); points beyond them continue with the same spacing, past 1. Operators that see
    only part of a field, or that are not translation-invariant, take them as extra input
    channels; an operator that pads the field takes the padding's true coordinates this way.
    """
    b, _, h, w = x.shape
    ny, nx = (h, w) if size is None else size

    def axis(n: int, spanned: int) -> Tensor:  # n points at spacing 1 / (spanned − 1)
        return torch.linspace(0, (n - 1) / max(spanned - 1, 1), n, device=x.device, dtype=x.dtype)

    gy = axis(h, ny).view(1, 1, h, 1).expand(b, 1, h, w)
    gx = axis(w, nx).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([gy, gx], dim=1)


def check_input_2d(model: nn.Module, x: Tensor, in_channels: int) -> None:
    """Refuse an input of a 2-D operator that is not ``(batch, in_channels, H, W)``, naming the model."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{type(model).__name__} expects input of shape (batch, {in_channels}, H, W), "
                         f"got {tuple(x.shape)}")
