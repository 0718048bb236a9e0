"""Sophia: a clipped, diagonally preconditioned momentum with a lazily refreshed Hessian estimate.

Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
Model Pre-training", ICLR 2024, arXiv:2305.14342, Algorithm 3, with its two estimators of the
Hessian diagonal (Algorithms 1 and 2):

    m_t = β₁ m_{t−1} + (1 − β₁) g_t                                                  (1)
    every k steps:  h_t = β₂ h_{t−k} + (1 − β₂) ĥ_t,  otherwise h_t = h_{t−1}        (2)
    θ ← θ − η λ θ                                                                    (3)
    θ ← θ − η · sign(m_t) · min(|m_t| / max(ρ h_t, ε), 1)                           (4)

- Sophia-H (``estimator="hutchinson"``, Algorithm 1): ĥ = z ⊙ ∇(⟨∇L, z⟩), z Rademacher
  (:mod:`sciml.optim.hutchinson`); needs the gradient's graph on refresh steps.
- Sophia-G (``estimator="gnb"``, Algorithm 2, Gauss–Newton–Bartlett): ĥ = ĝ ⊙ ĝ, where ĝ is the
  gradient of the loss with labels drawn from the model's predictive distribution. The paper
  writes ĥ = B·ĝ_B ⊙ ĝ_B with ĝ_B the gradient of the batch-mean loss; here the batch factor is
  folded into the sampled loss, whose gradient satisfies E[ĝĝᵀ] = Gauss–Newton matrix of the
  loss (see :meth:`sciml.Solver.sampled_loss`), so ĥ = ĝ ⊙ ĝ estimates its diagonal without
  knowing B. ``step`` receives ``sampled_grad(generator, params) -> list of gradients``.

A negative Hutchinson estimate makes the denominator in (4) ε, so the step is the clipped
sign step, as in the paper. Complex parameters are pairs of reals throughout.

What a step needs is declared in :attr:`Sophia.step_requires`, which changes from step to step:
the graph (Sophia-H) or the sampled gradient (Sophia-G) only on refresh steps.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import real_view
from ._checks import check_betas, check_choice, check_range
from .hutchinson import hessian_diagonal, stored_generator

__all__ = ["Sophia", "ESTIMATORS"]

ESTIMATORS = ("hutchinson", "gnb")
_RNG = "sophia_rng"


class Sophia(Optimizer):
    """Sophia-H or Sophia-G (see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups (real or complex).
    lr : learning rate η (default 1e-4, the paper's GPT-2 small setting).
    betas : (β₁, β₂) of (1) and (2) (default (0.965, 0.99)).
    rho : ρ, the clipping scale of (4) (default 0.04).
    weight_decay : decoupled weight decay λ of (3) (default 0).
    estimator : ``"hutchinson"`` (Sophia-H) or ``"gnb"`` (Sophia-G).
    update_every : k, steps between refreshes of the Hessian estimate (default 10).
    probes : Hutchinson probes per refresh (default 1).
    eps : ε of (4) (default 1e-15).
    seed : seed of the generator of probes / sampled labels (kept in the optimizer state).
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.965, 0.99), rho: float = 0.04, weight_decay: float = 0.0,
                 *, estimator: str = "hutchinson", update_every: int = 10, probes: int = 1, eps: float = 1e-15,
                 seed: int = 0):
        check_choice("estimator", estimator, ESTIMATORS)
        for name, value in (("update_every", update_every), ("probes", probes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.estimator, self.update_every, self.probes, self.seed = estimator, update_every, probes, seed
        super().__init__(params, dict(lr=lr, betas=tuple(betas), rho=rho, weight_decay=weight_decay, eps=eps))

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0)
        check_betas("betas", group["betas"])
        check_range("rho", group["rho"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_range("eps", group["eps"], 0.0, low_open=True)

    @property
    def _refresh_due(self) -> bool:
        return self.state.get("sophia_steps", 0) % self.update_every == 0

    @property
    def step_may_require(self) -> frozenset[str]:
        """What a refresh step needs: ``{"create_graph"}`` (Sophia-H) or ``{"sampled_loss"}`` (Sophia-G)."""
        return frozenset({"create_graph" if self.estimator == "hutchinson" else "sampled_loss"})

    @property
    def step_requires(self) -> frozenset[str]:
        """:attr:`step_may_require` on refresh steps, else nothing."""
        return self.step_may_require if self._refresh_due else frozenset()

    def _estimate(self, params: list[Tensor],
                  sampled_grad: Callable[[torch.Generator, Sequence[Tensor]], Sequence[Tensor | None]] | None
                  ) -> list[Tensor]:
        """ĥ for every parameter (real views), by the chosen estimator."""
        with stored_generator(self, _RNG, self.seed) as generator:
            if self.estimator == "hutchinson":
                with torch.enable_grad():
                    return hessian_diagonal(params, [p.grad for p in params], generator, self.probes)  # Alg. 1
            if sampled_grad is None:
                raise RuntimeError("Sophia-G needs step(sampled_grad=...) on refresh steps ('sampled_loss' is in its "
                                   "step_requires): the gradient of the loss with labels sampled from the model")
            with torch.enable_grad():
                grads = sampled_grad(generator, params)
            return [real_view(g).square() if g is not None else torch.zeros_like(real_view(p))
                    for p, g in zip(params, grads)]  # Alg. 2: ĥ = ĝ ⊙ ĝ

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, *,
             sampled_grad: Callable[[torch.Generator, Sequence[Tensor]], Sequence[Tensor | None]] | None = None
             ) -> Tensor | None:
        """One step; ``closure`` re-evaluates the loss, ``sampled_grad`` serves Sophia-G's refreshes."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return loss
        refresh = self._refresh_due
        estimates = dict(zip(params, self._estimate(params, sampled_grad))) if refresh else {}
        self.state["sophia_steps"] = self.state.get("sophia_steps", 0) + 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(real_view(p))
                    state["hessian"] = torch.zeros_like(real_view(p))
                m, h, w = state["exp_avg"], state["hessian"], real_view(p)
                m.lerp_(real_view(p.grad.detach()), 1 - beta1)  # (1)
                # A non-finite estimate would poison the EMA for good: that refresh is skipped.
                if refresh and bool(torch.isfinite(estimates[p]).all()):
                    h.mul_(beta2).add_(estimates[p], alpha=1 - beta2)  # (2)
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])  # (3)
                ratio = (m.abs() / (group["rho"] * h).clamp_min(group["eps"])).clamp_max(1.0)
                w.addcmul_(m.sign(), ratio, value=-group["lr"])  # (4)
        return loss
