"""The Adam moment bookkeeping that AdamP and the AdamW groups of the orthogonalized methods share."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["real_view", "adam_moments", "update_moments"]


def real_view(t: Tensor) -> Tensor:
    """A complex tensor as pairs of reals (Adam's moments are taken per real number)."""
    return torch.view_as_real(t) if t.is_complex() else t


def adam_moments(optimizer: torch.optim.Optimizer, params, name: str):
    """Parameters with a gradient, their real views of gradient and both moments, and step counts.

    Creates the state lazily and counts the step, as torch.optim.Adam does.
    """
    ps, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")
        state = optimizer.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        ps.append(p)
        grads.append(real_view(p.grad))
        exp_avgs.append(real_view(state["exp_avg"]))
        exp_avg_sqs.append(real_view(state["exp_avg_sq"]))
        steps.append(state["step"])
    return ps, grads, exp_avgs, exp_avg_sqs, steps


def update_moments(grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                   beta1: float, beta2: float) -> None:
    """m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g² (Kingma & Ba 2015, Algorithm 1)."""
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
