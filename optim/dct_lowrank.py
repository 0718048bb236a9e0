"""Low-rank Adam in a fixed DCT basis: columns chosen by alignment with the gradient, no SVD.

Modoranu et al., "SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language Models",
2025 (reference code: the ``ista-daslab-optimizers`` package). GaLore-style methods project each
weight's gradient G (rows × n) onto r directions and keep Adam's moments there; instead of an
SVD of G, the directions are r columns of the orthonormal DCT-II matrix Q (n × n), those best
aligned with the gradient (numbered here):

    Q_jk = √(2/n) cos(π (2j + 1) k / (2n)),   Q_j0 = √(1/n)                             (1)
    I = indices of the r largest column norms ‖G Q_{:,k}‖                               (2)
    R = G Q_{:,I}    (rows × r, the low-rank gradient)                                  (3)
    M ← β₁ M + (1 − β₁) R,   V ← β₂ V + (1 − β₂) R ⊙ R                                  (4)
    W ← (1 − ηλ) W − η α (M̂ / (√V̂ + ε)) Q_{:,I}ᵀ                                       (5)

Only the indices I are stored, never a projection matrix; the DCT matrix is built once per
size n (the reference builds one for all layers and fails on layers of different shapes; here
every size gets its own). The projection acts on the smaller side of the matrix (Qᵀ G from the
left when rows < n). I is reselected every ``update_every`` steps; because the basis is fixed
and orthonormal, the change of basis between two selections maps a kept column onto itself and
a new column onto nothing, so the moments of kept columns are carried over exactly and those of
new columns start at zero, each column with its own bias-correction count.

Matrices are 2-D real weights and conv kernels ``(out, in, *k)`` seen as ``out × rest``; vectors
and complex spectral weights get a plain AdamW step in the same optimizer.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import real_view
from ._backend import adam_step
from ._checks import check_betas, check_range

__all__ = ["DCTLowRank", "dct_matrix"]


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal DCT-II matrix Q (n × n) of (1); its columns are the basis vectors."""
    j = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    k = torch.arange(n, dtype=torch.float64, device=device)[None, :]
    q = torch.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)  # (1)
    q[:, 0] /= math.sqrt(2.0)
    return q.to(dtype)


def _low_rank(p: Tensor) -> bool:
    return not p.is_complex() and p.dim() >= 2 and min(p.shape[0], p[0].numel()) >= 2


class DCTLowRank(Optimizer):
    """Low-rank Adam in a DCT basis (see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups.
    lr : learning rate η (default 1e-3).
    betas, eps : Adam's (β₁, β₂) and ε.
    weight_decay : decoupled weight decay λ (default 0).
    rank : r, columns kept per matrix (at most its smaller side; default 8).
    update_every : steps between reselections (2) of the columns (default 10).
    scale : α of (5) (default 1).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 *, rank: int = 8, update_every: int = 10, scale: float = 1.0):
        for name, value in (("rank", rank), ("update_every", update_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_range("scale", scale, 0.0, low_open=True)
        self.rank, self.update_every, self.scale = rank, update_every, float(scale)
        self._dct: dict[tuple, Tensor] = {}
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0)
        check_betas("betas", group["betas"])
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch casts every tensor of a parameter's state to the parameter's dtype, which for bf16
        # would round column indices above 256: the integer buffers are taken from the saved state.
        params = [p for group in self.param_groups for p in group["params"]]
        for index, saved in state_dict["state"].items():
            state = self.state[params[index]]
            for key in ("indices", "column_steps"):
                if key in saved:
                    state[key] = saved[key].to(device=params[index].device, dtype=torch.long)

    def _basis(self, n: int, like: Tensor) -> Tensor:
        key = (n, like.dtype, like.device)
        if key not in self._dct:
            self._dct[key] = dct_matrix(n, like.dtype, like.device)
        return self._dct[key]

    def _select(self, state: dict, g: Tensor, q: Tensor, left: bool) -> None:
        """(2), and the moments carried over to the new columns."""
        scores = (q.T @ g).norm(dim=1) if left else (g @ q).norm(dim=0)  # alignment of each column
        new = torch.topk(scores, min(self.rank, q.shape[0])).indices.sort().values  # (2)
        old = state.get("indices")
        shape = (new.numel(), g.shape[1]) if left else (g.shape[0], new.numel())
        m, v, t = g.new_zeros(shape), g.new_zeros(shape), torch.zeros(new.numel(), dtype=torch.long,
                                                                       device=g.device)
        if old is not None:
            keep_new, keep_old = (new[:, None] == old[None, :]).nonzero(as_tuple=True)
            if left:
                m[keep_new], v[keep_new] = state["exp_avg"][keep_old], state["exp_avg_sq"][keep_old]
            else:
                m[:, keep_new], v[:, keep_new] = state["exp_avg"][:, keep_old], state["exp_avg_sq"][:, keep_old]
            t[keep_new] = state["column_steps"][keep_old]
        state.update(indices=new, exp_avg=m, exp_avg_sq=v, column_steps=t)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state, w = self.state[p], real_view(p)
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])
                if not _low_rank(p):  # a full-rank AdamW step
                    adam_step(state, w, real_view(p.grad), group["lr"], group["betas"], group["eps"])
                    continue
                state["step"] = state.get("step", 0) + 1
                g = p.grad.reshape(p.shape[0], -1)
                left = g.shape[0] < g.shape[1]
                q = self._basis(min(g.shape), g)
                if (state["step"] - 1) % self.update_every == 0:
                    self._select(state, g, q, left)
                q_sel = q[:, state["indices"]]
                r = q_sel.T @ g if left else g @ q_sel  # (3)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(r, 1 - beta1)  # (4)
                v.mul_(beta2).addcmul_(r, r, value=1 - beta2)  # (4)
                t = state["column_steps"].add_(1).to(g.dtype)
                c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t  # per column
                if left:
                    c1, c2 = c1[:, None], c2[:, None]
                update = (m / c1) / ((v / c2).sqrt() + group["eps"])
                full = q_sel @ update if left else update @ q_sel.T  # back to rows × n
                p.add_(full.view_as(p), alpha=-group["lr"] * self.scale)  # (5)
        return loss
