"""Losses and metrics on fields of shape ``(batch, channels, *grid)``.

Every loss here is *averaged* over the batch (neuraloperator's ``LpLoss``/``H1Loss`` sum over
it by default, which ties the learning rate to the batch size), and every norm is taken over
all non-batch axes at once.

- :func:`relative_lp`: ‖u − v‖_p / ‖v‖_p, the error measure of the FNO paper (Li et al. 2021).
- :func:`h1`: the relative H¹ error ‖u − v‖_H¹ / ‖v‖_H¹ with derivatives by second-order finite
  differences that are one-sided at the edges, so it is correct on non-periodic grids
  (neuraloperator's ``H1Loss`` assumes periodic ones).
- :func:`mse`: mean squared error.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["relative_lp", "relative_l2", "h1", "mse", "get_loss", "LOSSES"]

_EPS = 1e-12  # keeps a zero target from dividing by zero


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"pred and target must be tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.dim() < 2:
        raise ValueError(f"pred must be batched, shape (batch, ...), got {tuple(pred.shape)}")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def relative_lp(pred: Tensor, target: Tensor, p: float = 2.0, reduction: str = "mean") -> Tensor:
    """Relative Lp error per sample, ‖pred − target‖_p / ‖target‖_p, then reduced over the batch.

    The grid spacing cancels in the ratio, so no quadrature weights are needed on a uniform grid.
    """
    _check_pair(pred, target)
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    diff = torch.linalg.vector_norm((pred - target).flatten(1), ord=p, dim=1)
    ref = torch.linalg.vector_norm(target.flatten(1), ord=p, dim=1)
    return _reduce(diff / (ref + _EPS), reduction)


def relative_l2(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Relative L2 error per sample, averaged over the batch (see :func:`relative_lp`)."""
    return relative_lp(pred, target, 2.0, reduction)


def _gradients(u: Tensor, spacing: Sequence[float]) -> list[Tensor]:
    dims = tuple(range(2, u.dim()))
    # edge_order=2: one-sided second-order differences at the boundary, no periodic wrap
    return list(torch.gradient(u, spacing=list(spacing), dim=dims, edge_order=2))


def _trapezoid_weights(grid: Sequence[int], spacing: Sequence[float], device) -> Tensor:
    """Trapezoidal quadrature weights on the grid nodes (half weight on each boundary face)."""
    weights = torch.ones((), dtype=torch.float64, device=device)
    for n, h in zip(grid, spacing):
        w = torch.full((n,), float(h), dtype=torch.float64, device=device)
        w[0] = w[-1] = h / 2
        weights = weights.unsqueeze(-1) * w
    return weights


def h1(
    pred: Tensor,
    target: Tensor,
    spacing: float | Sequence[float] | None = None,
    relative: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """H¹ error ‖u − v‖_H¹ (relative to ‖v‖_H¹ by default), with ‖w‖²_H¹ = ‖w‖²_L2 + ‖∇w‖²_L2
    integrated by the trapezoidal rule.

    Parameters
    ----------
    pred, target : Tensor (B, C, *grid)
    spacing : grid spacing per spatial axis; default ``1 / (n - 1)`` on each axis, the nodes of
        the unit cube including its boundary (the layout of :mod:`sciml.datasets`).
    relative : divide by ‖target‖_H¹ per sample.
    """
    _check_pair(pred, target)
    grid = pred.shape[2:]
    if not grid or min(grid) < 3:
        raise ValueError(f"h1 needs at least 3 grid points per spatial axis, got grid {tuple(grid)}")
    if spacing is None:
        spacing = [1.0 / (n - 1) for n in grid]
    elif isinstance(spacing, (int, float)):
        spacing = [float(spacing)] * len(grid)
    if len(spacing) != len(grid):
        raise ValueError(f"spacing must give one value per spatial axis ({len(grid)}), got {len(spacing)}")
    weights = _trapezoid_weights(grid, spacing, pred.device)

    def sq_norm(w: Tensor) -> Tensor:
        total = w.pow(2)
        for g in _gradients(w, spacing):
            total = total + g.pow(2)
        return (total * weights.to(total.dtype)).flatten(1).sum(1)

    err = sq_norm(pred - target).sqrt()
    if relative:
        err = err / (sq_norm(target).sqrt() + _EPS)
    return _reduce(err, reduction)


def mse(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error per sample, reduced over the batch."""
    _check_pair(pred, target)
    return _reduce((pred - target).pow(2).flatten(1).mean(1), reduction)


LOSSES: dict[str, Callable[..., Tensor]] = {"l2": relative_l2, "h1": h1, "mse": mse}


def get_loss(name: str | Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A loss by name (``'l2'``, ``'h1'``, ``'mse'``) or a callable passed through."""
    if callable(name):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    return LOSSES[name]
