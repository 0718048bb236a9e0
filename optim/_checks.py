"""Hyperparameter checks shared by the optimizers: one message format, naming argument and value."""
from __future__ import annotations

import math

import torch


def _number(value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def check_range(name: str, value, low: float, high: float = math.inf, *, low_open: bool = False,
                high_open: bool = True) -> None:
    """Raise ``ValueError("<name> must be in [low, high), got <value>")`` unless ``value`` lies in the interval."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    try:
        v = _number(value)
    except ValueError:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}") from None
    if v < low or (low_open and v == low) or v > high or (high_open and v == high):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_betas(name: str, betas) -> None:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        check_range(f"{name}[{i}]", b, 0.0, 1.0)

