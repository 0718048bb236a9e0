"""Small blocks shared by the operators (see the model files for the methods themselves)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["grid_coordinates"]


def grid_coordinates(x: Tensor) -> Tensor:
    """The (y, x) coordinates of ``x``'s grid on ``[0, 1]²``, ``(B, 2, H, W)``, on its device and dtype.

    Operators that see only part of a field, or that are not translation-invariant, take them
    as extra input channels.
    """
    b, _, h, w = x.shape
    gy = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    gx = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([gy, gx], dim=1)
