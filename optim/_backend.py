"""First-order steps on a given direction, for the second-order methods' backends and their
plain parameters (the direction is a preconditioned gradient or the gradient itself)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["adam_step", "momentum_step"]


def adam_step(state: dict, w: Tensor, d: Tensor, lr: float, betas: tuple[float, float], eps: float) -> None:
    """Adam (Kingma & Ba 2015, Algorithm 1) on direction ``d``, moments and count in ``state``.

    ``w`` and ``d`` are real views; weight decay is the caller's.
    """
    beta1, beta2 = betas
    state["step"] = state.get("step", 0) + 1
    m = state.setdefault("exp_avg", torch.zeros_like(w))
    v = state.setdefault("exp_avg_sq", torch.zeros_like(w))
    m.lerp_(d, 1 - beta1)
    v.mul_(beta2).addcmul_(d, d, value=1 - beta2)
    t = state["step"]
    denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
    w.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))


def momentum_step(state: dict, w: Tensor, d: Tensor, lr: float, momentum: float) -> None:
    """Heavy-ball SGD, b ← μ b + d, w ← w − lr b, with the buffer in ``state``."""
    buf = state.setdefault("momentum_buffer", torch.zeros_like(w))
    w.add_(buf.mul_(momentum).add_(d), alpha=-lr)
