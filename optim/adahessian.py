"""AdaHessian: Adam with the Hessian diagonal in place of the squared gradient.

Yao, Gholami, Shen, Mustafa, Keutzer & Mahoney, "ADAHESSIAN: An Adaptive Second Order Optimizer
for Machine Learning", AAAI 2021, arXiv:2006.00719, Sec. 3 and Algorithm 1 (numbered here):

    D = |z ⊙ Hz|, Hutchinson's estimate of diag(H)                                   (1)
    D⁽ˢ⁾[i, j, :] = mean of |D[i, j, :]| over the kernel window (spatial averaging)    (2)
    m_t = β₁ m_{t−1} + (1 − β₁) g_t,      v_t = β₂ v_{t−1} + (1 − β₂) D⁽ˢ⁾ ⊙ D⁽ˢ⁾     (3)
    θ ← (1 − ηλ) θ − η (m_t / (1 − β₁ᵗ)) / ((√v_t / √(1 − β₂ᵗ))^k + ε),  k the Hessian power  (4)

Spatial averaging applies to real convolution kernels ``(out, in, *kernel)`` of three or more
dimensions (it smooths the noisy per-entry estimate over the kernel window); vectors, matrices
and complex spectral weights (whose trailing axes are Fourier modes, not a window) keep their
per-entry estimate. As in the authors' code, the estimate may be refreshed only every
``update_every`` steps (v is then updated every step with the last estimate) and weight decay
is decoupled. Complex parameters are pairs of reals.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import real_view
from ._checks import check_betas, check_range
from .hutchinson import hessian_diagonal, stored_generator

__all__ = ["AdaHessian", "spatial_average"]

_RNG = "adahessian_rng"


def spatial_average(d: Tensor, p: Tensor) -> Tensor:
    """|D| averaged over the kernel axes of a real conv kernel ``p`` (2); |D| for other parameters."""
    d = d.abs()
    if p.is_complex() or p.dim() < 3:
        return d
    return d.mean(dim=tuple(range(2, p.dim())), keepdim=True).expand_as(d)


class AdaHessian(Optimizer):
    """AdaHessian (see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups (real or complex).
    lr : learning rate η (default 0.15, the authors' default).
    betas : (β₁, β₂) (default (0.9, 0.999)).
    eps : ε (default 1e-4).
    weight_decay : decoupled weight decay λ (default 0).
    hessian_power : k in (4), in [0, 1] (default 1).
    update_every : steps between Hutchinson refreshes (default 1).
    probes : Hutchinson probes per refresh (default 1).
    seed : seed of the probe generator (kept in the optimizer state).
    """

    def __init__(self, params, lr: float = 0.15, betas=(0.9, 0.999), eps: float = 1e-4, weight_decay: float = 0.0,
                 *, hessian_power: float = 1.0, update_every: int = 1, probes: int = 1, seed: int = 0):
        for name, value in (("update_every", update_every), ("probes", probes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.update_every, self.probes, self.seed = update_every, probes, seed
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      hessian_power=hessian_power))

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0)
        check_betas("betas", group["betas"])
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_range("hessian_power", group["hessian_power"], 0.0, 1.0, high_open=False)

    @property
    def _refresh_due(self) -> bool:
        return self.state.get("adahessian_steps", 0) % self.update_every == 0

    step_may_require = frozenset({"create_graph"})

    @property
    def step_requires(self) -> frozenset[str]:
        """``{"create_graph"}`` on the steps that refresh the Hessian estimate, else nothing."""
        return frozenset({"create_graph"}) if self._refresh_due else frozenset()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step; the gradients must carry their graph on refresh steps (see ``step_requires``)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return loss
        if self._refresh_due:
            with stored_generator(self, _RNG, self.seed) as generator, torch.enable_grad():
                diag = hessian_diagonal(params, [p.grad for p in params], generator, self.probes)  # (1)
            for p, d in zip(params, diag):
                d = spatial_average(d, p)  # (2)
                if bool(torch.isfinite(d).all()):  # a non-finite estimate keeps the previous one
                    self.state[p]["hessian"] = d
        self.state["adahessian_steps"] = self.state.get("adahessian_steps", 0) + 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            k = group["hessian_power"]
            for p in group["params"]:
                state = self.state[p]
                if p.grad is None or "hessian" not in state:
                    continue  # no curvature yet (first gradient after a refresh): D = 0 would step by m/ε
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(real_view(p))
                    state["exp_hessian_sq"] = torch.zeros_like(real_view(p))
                state["step"] += 1
                t, m, v, w = state["step"], state["exp_avg"], state["exp_hessian_sq"], real_view(p)
                d = state["hessian"]
                m.lerp_(real_view(p.grad.detach()), 1 - beta1)  # (3)
                v.mul_(beta2).addcmul_(d, d, value=1 - beta2)  # (3)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).pow_(k).add_(group["eps"])
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])
                w.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1 ** t))  # (4)
        return loss
