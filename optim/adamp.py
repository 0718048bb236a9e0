"""AdamP and SGDP: Adam and SGD without the radial update on scale-invariant weights.

Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for Momentum Optimizers
on Scale-invariant Weights", ICLR 2021, arXiv:2006.08217, Sec. 3 and Algorithms 1 (SGDP) and
2 (AdamP). A weight followed by a normalization layer (BatchNorm, LayerNorm...) is scale
invariant: the loss does not change along w, so its gradient is orthogonal to w. Momentum
nevertheless accumulates a radial component that only grows ‖w‖ and so shrinks the effective
step size. AdamP/SGDP detect scale invariance by a cosine test and project the radial part out:

    p_t = m̂_t / (√v̂_t + ε)      (AdamP)   or   p_t = momentum update   (SGDP)      (1)
    scale invariant  ⇔  max |cos(w, ∇_w f)| < δ / √dim(w)                          (2)
    Π_w(p) = p − (ŵ · p) ŵ,     ŵ = w / ‖w‖                                          (3)
    q_t = Π_w(p_t) if (2) else p_t                                                   (4)
    w_{t+1} = (1 − η λ ρ) w_t − η q_t,  ρ = wd_ratio if projected else 1              (5)

(2) is tried per output channel (rows of the weight viewed as ``out × rest``, each row its own
w), then for the whole tensor as one vector; the first view that passes is projected. Only
tensors of two or more dimensions are tested, as in the paper. SGDP divides λ by 1 − μ in (5)
and AdamP scales the Adam step by the bias corrections, as the authors' code does. Complex
parameters are treated as pairs of real numbers.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer

from ._adam import adam_moments, real_view, update_moments
from ._checks import check_betas, check_range

__all__ = ["AdamP", "SGDP", "project_radial"]


def project_radial(w: Tensor, grad: Tensor, update: Tensor, delta: float, eps: float) -> tuple[Tensor, bool]:
    """``update`` with its radial component removed if ``w`` looks scale invariant, eqs. (2)–(4).

    Returns ``(q, projected)``.
    """
    for rows in (w.shape[0], 1):  # per output channel, then the whole tensor
        wv, gv = w.reshape(rows, -1), grad.reshape(rows, -1)
        cosine = F.cosine_similarity(gv, wv, dim=1, eps=eps).abs()
        if cosine.max() < delta / math.sqrt(wv.shape[1]):  # (2)
            w_hat = wv / (torch.linalg.vector_norm(wv, dim=1, keepdim=True) + eps)
            uv = update.reshape(rows, -1)
            return (uv - w_hat * (w_hat * uv).sum(1, keepdim=True)).view_as(update), True  # (3)
    return update, False


class _Projected(Optimizer):
    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._check(self.param_groups[-1])

    def _check(self, group: dict) -> None:
        check_range("lr", group["lr"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("delta", group["delta"], 0.0)
        check_range("wd_ratio", group["wd_ratio"], 0.0, 1.0, high_open=False)
        if not isinstance(group["nesterov"], bool):
            raise ValueError(f"nesterov must be True or False, got {group['nesterov']!r}")

    def _apply(self, p: Tensor, grad: Tensor, update: Tensor, group: dict, lr: float, decay_scale: float) -> None:
        """(4)–(5): project if scale invariant, decay, step by ``-lr·q``."""
        w, ratio = real_view(p), 1.0
        if p.dim() > 1:
            update, projected = project_radial(w, grad, update, group["delta"], group["eps"])
            ratio = group["wd_ratio"] if projected else 1.0
        if group["weight_decay"]:
            w.mul_(1 - group["lr"] * group["weight_decay"] * ratio * decay_scale)  # (5)
        w.add_(update, alpha=-lr)


class AdamP(_Projected):
    """AdamP (Algorithm 2 of Heo et al.; see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups.
    lr : learning rate η (default 1e-3).
    betas : Adam's (β₁, β₂) (default (0.9, 0.999)).
    eps : Adam's ε, also the floor of the norms in (2)–(3) (default 1e-8).
    weight_decay : decoupled weight decay λ (default 0).
    delta : δ of the scale-invariance test (2) (default 0.1).
    wd_ratio : ρ, the weight-decay factor of projected weights (default 0.1).
    nesterov : Nesterov momentum in (1) (default False).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, delta=delta,
                                      wd_ratio=wd_ratio, nesterov=nesterov))

    def _check(self, group: dict) -> None:
        super()._check(group)
        check_betas("betas", group["betas"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params, grads, exp_avgs, exp_avg_sqs, _ = adam_moments(self, group["params"], "AdamP")
            if not params:
                continue
            update_moments(grads, exp_avgs, exp_avg_sqs, beta1, beta2)
            for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
                t = self.state[p]["step"]
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(group["eps"])
                m_look = torch.lerp(g, m, beta1) if group["nesterov"] else m
                update = m_look / denom  # (1)
                self._apply(p, g, update, group, group["lr"] / (1 - beta1 ** t), 1.0)
        return loss


class SGDP(_Projected):
    """SGDP (Algorithm 1 of Heo et al.; see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups.
    lr : learning rate η (required, as for torch.optim.SGD).
    momentum : μ in [0, 1) (default 0).
    dampening : τ, the buffer takes (1 − τ) g (default 0).
    eps : floor of the norms in (2)–(3) (default 1e-8).
    weight_decay : decoupled weight decay λ, divided by 1 − μ (default 0).
    delta : δ of the scale-invariance test (2) (default 0.1).
    wd_ratio : ρ, the weight-decay factor of projected weights (default 0.1).
    nesterov : Nesterov momentum (default False).
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0, eps: float = 1e-8,
                 weight_decay: float = 0.0, delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, eps=eps,
                                      weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio, nesterov=nesterov))

    def _check(self, group: dict) -> None:
        super()._check(group)
        check_range("momentum", group["momentum"], 0.0, 1.0)
        check_range("dampening", group["dampening"], 0.0, 1.0, high_open=False)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu = group["momentum"]
            params, grads, bufs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("SGDP does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(real_view(p.grad))
                bufs.append(real_view(state["momentum_buffer"]))
            if not params:
                continue
            torch._foreach_mul_(bufs, mu)
            torch._foreach_add_(bufs, grads, alpha=1 - group["dampening"])
            for p, g, b in zip(params, grads, bufs):
                update = g.add(b, alpha=mu) if group["nesterov"] else b  # (1)
                self._apply(p, g, update, group, group["lr"], 1 / (1 - mu))
        return loss
