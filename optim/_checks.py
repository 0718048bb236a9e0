"""Hyperparameter checks shared by the optimizers: one message format, naming argument and value."""
from __future__ import annotations

from sciml.validation import check_range  # one message format with the core; the optimizers import it from here


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_betas(name: str, betas) -> None:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        check_range(f"{name}[{i}]", b, 0.0, 1.0)

