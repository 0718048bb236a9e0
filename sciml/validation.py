"""Checks at the door, with messages that name the argument, the expected and the received value."""
from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["positive_int", "nonnegative_int", "finite_float", "check_range", "check_device"]


INT64_MAX = 2**63 - 1


def _int_at_least(name: str, value: Any, low: int, words: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be a {words} integer, got {value}")
    if value > INT64_MAX:  # torch and numpy index with 64-bit integers
        raise ValueError(f"{name} must be at most 2**63 - 1, got {value}")
    return value


def positive_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 1, "positive")


def nonnegative_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 0, "non-negative")


def finite_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_range(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                high_open: bool = True) -> float:
    """``value`` as a float; ``ValueError("<name> must be in [low, high), got <value>")`` unless it lies there.

    A one-element tensor counts as its number; NaN, infinities and non-numbers are refused.
    """
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    v = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    if v < low or (low_open and v == low) or v > high or (high_open and v == high):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(v)


def check_device(name: str, value: Any) -> torch.device:
    """``value`` as a torch device that this process can use (CUDA only where torch sees a GPU)."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:  # "gpu", "cuda:x", 3.5...
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or another torch device, got {value!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {str(value)!r} needs CUDA, which this torch {torch.__version__} cannot use (no GPU, "
                         "or a CPU-only build); use 'cpu'")
    return device
