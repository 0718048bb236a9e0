"""What the orthogonalized optimizers (Muon, NorMuon, ROOT, AuON) share.

One :class:`OrthogonalizedOptimizer` step, for every parameter group that is not an AdamW group:

    M_t = μ M_{t−1} + (1 − μ) g_t                 momentum (an EMA, as torch.optim.Muon)
    M̃_t = μ M_t + (1 − μ) g_t  (Nesterov) or M_t
    D_t = direction(matrix_view(M̃_t))            the method: Newton–Schulz, normalization...
    θ_t = (1 − η λ) θ_{t−1} − η s(m, n) D_t       decoupled weight decay, shape-aware scale s

A group with ``adamw=True`` is stepped by plain AdamW instead (Loshchilov & Hutter, ICLR 2019),
so one optimizer object holds a whole model: hidden matrices under the orthogonalized method,
lifting/projection layers, biases and norms under AdamW (see :func:`sciml.optim.build_optimizer`).

Matrix views. An orthogonalized method needs a parameter as a matrix, or a batch of them:

- a real tensor ``(out, in, *k)`` (a Linear weight, a conv kernel) is the ``out × (in·k)``
  matrix, rows being output neurons (as in Keller Jordan's Muon for convolutions);
- a complex tensor is read in neuraloperator's spectral-weight layout ``(in, out, *modes)``:
  ``complex_mode="per_mode"`` makes it a batch of ``out × in`` complex matrices, one per Fourier
  mode, orthogonalized with the conjugate transpose (each mode is its own linear map, so each
  gets an orthogonal update); ``complex_mode="flatten"`` makes it one real matrix
  ``out × (in·modes·2)`` of real and imaginary parts (the whole layer as one map from its real
  parameters). ``benchmarks/optimizers.py`` measures which trains an FNO better.

The shape-aware scale ``s(m, n)`` of an ``m × n`` direction follows torch.optim.Muon's
``adjust_lr_fn``: ``"original"`` is √max(1, m/n) (Jordan et al.), ``"match_rms_adamw"`` is
0.2·√max(m, n) (Liu et al., "Muon is Scalable for LLM Training", 2025), which gives an
orthogonal update the RMS of an AdamW update, so both halves of a model can share one learning rate.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import adam_moments, real_view, update_moments
from ._checks import check_betas, check_choice, check_range
from .newton_schulz import MUON_COEFFICIENTS

__all__ = ["OrthogonalizedOptimizer", "matrix_view", "from_matrix_view", "adjust_lr", "COMPLEX_MODES",
           "ADJUST_LR_FNS"]

COMPLEX_MODES = ("per_mode", "flatten")
ADJUST_LR_FNS = ("original", "match_rms_adamw")


def matrix_view(t: Tensor, complex_mode: str = "per_mode") -> Tensor:
    """``t`` as a matrix ``(m, n)`` or a batch of matrices ``(..., m, n)`` (see the module docstring)."""
    if not t.is_complex():
        return t.reshape(t.shape[0], -1)
    if complex_mode == "per_mode":
        return t.movedim((0, 1), (-1, -2))
    return torch.view_as_real(t.movedim(1, 0)).reshape(t.shape[1], -1)


def from_matrix_view(u: Tensor, like: Tensor, complex_mode: str = "per_mode") -> Tensor:
    """Inverse of :func:`matrix_view`: ``u`` back in the shape of ``like``."""
    if not like.is_complex():
        return u.reshape(like.shape)
    if complex_mode == "per_mode":
        return u.movedim((-1, -2), (0, 1))
    shape = (like.shape[1], like.shape[0], *like.shape[2:], 2)
    return torch.view_as_complex(u.reshape(shape).contiguous()).movedim(0, 1)


def adjust_lr(lr: float, m: int, n: int, adjust_lr_fn: str) -> float:
    """The learning rate for an ``m × n`` direction: ``lr·s(m, n)`` (see the module docstring)."""
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(m, n))
    return lr * math.sqrt(max(1.0, m / n))


class OrthogonalizedOptimizer(Optimizer):
    """Base class: momentum, matrix views, weight decay, scaling and the AdamW groups.

    A subclass supplies :meth:`_directions` (and, if it keeps more state, :meth:`_init_state`
    and :meth:`_check_method`). Hyperparameters common to all of them:

    Parameters
    ----------
    params : parameters or parameter groups. A group with ``adamw=True`` is stepped by AdamW.
    lr : learning rate η.
    weight_decay : decoupled weight decay λ (the parameter is multiplied by 1 − ηλ).
    momentum : μ in [0, 1).
    nesterov : use the Nesterov look-ahead M̃_t.
    ns_steps : Newton–Schulz iterations.
    ns_coefficients : the quintic's (a, b, c), default Muon's (3.4445, −4.7750, 2.0315).
    eps : floor of the Frobenius norm before Newton–Schulz.
    ns_dtype : dtype of the Newton–Schulz products; None: bfloat16 on CUDA, float32 on CPU.
    adjust_lr_fn : ``"original"`` or ``"match_rms_adamw"`` (module docstring).
    complex_mode : ``"per_mode"`` or ``"flatten"``, the matrix view of complex parameters.
    adamw_betas, adamw_eps : AdamW's betas and eps for ``adamw=True`` groups.
    """

    #: whether ``ns_coefficients=None`` (coefficients chosen per matrix shape) is meaningful
    _shape_coefficients = False
    #: the fewest Newton–Schulz steps a subclass accepts
    _min_ns_steps = 1

    def __init__(self, params, defaults: dict):
        base = dict(weight_decay=0.0, momentum=0.95, nesterov=True, ns_steps=5, ns_coefficients=MUON_COEFFICIENTS,
                    eps=1e-7, ns_dtype=None, adjust_lr_fn="original", complex_mode="per_mode", adamw=False,
                    adamw_betas=(0.9, 0.999), adamw_eps=1e-8)
        super().__init__(params, {**base, **defaults})

    # ------------------------------------------------------------------ validation
    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_common(group)
        if not group["adamw"]:
            self._check_method(group)

    def _check_common(self, g: dict) -> None:
        check_range("lr", g["lr"], 0.0)
        check_range("weight_decay", g["weight_decay"], 0.0)
        check_betas("adamw_betas", g["adamw_betas"])
        check_range("adamw_eps", g["adamw_eps"], 0.0)
        if not isinstance(g["adamw"], bool):
            raise ValueError(f"adamw must be True or False, got {g['adamw']!r}")
        if g["adamw"]:
            return
        check_range("momentum", g["momentum"], 0.0, 1.0)
        steps = g["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < self._min_ns_steps:
            raise ValueError(f"ns_steps must be an integer >= {self._min_ns_steps}, got {steps!r}")
        coefficients = g["ns_coefficients"]
        if coefficients is not None or not self._shape_coefficients:
            if not (isinstance(coefficients, (tuple, list)) and len(coefficients) == 3):
                raise ValueError(f"ns_coefficients must be a triple (a, b, c), got {coefficients!r}")
            for name, v in zip("abc", coefficients):
                check_range(f"ns_coefficients[{name!r}]", v, -math.inf)
        check_range("eps", g["eps"], 0.0, low_open=True)
        if g["ns_dtype"] not in (None, torch.float32, torch.float64, torch.bfloat16, torch.float16):
            raise ValueError(f"ns_dtype must be None or a real floating dtype, got {g['ns_dtype']!r}")
        check_choice("adjust_lr_fn", g["adjust_lr_fn"], ADJUST_LR_FNS)
        check_choice("complex_mode", g["complex_mode"], COMPLEX_MODES)
        if not isinstance(g["nesterov"], bool):
            raise ValueError(f"nesterov must be True or False, got {g['nesterov']!r}")
        for p in g["params"]:
            if p.dim() < 2:
                raise ValueError(f"{type(self).__name__} orthogonalizes matrices, got a parameter of shape "
                                 f"{tuple(p.shape)}; put it in a group with adamw=True "
                                 "(sciml.optim.build_optimizer does)")

    def _check_method(self, group: dict) -> None:
        """Validate the subclass's own hyperparameters (none here)."""

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["adamw"]:
                self._adamw_step(group)
            else:
                self._matrix_step(group)
        return loss

    def _init_state(self, p: Tensor, state: dict, group: dict) -> None:
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _directions(self, group: dict, params: list[Tensor], mats: list[Tensor]) -> list[Tensor]:
        """The update directions D_t, in matrix view, for the momenta ``mats`` of ``params``."""
        raise NotImplementedError

    def _ns_coefficients(self, group: dict) -> Sequence[float] | Callable[[int, int], Sequence[float]]:
        return group["ns_coefficients"]

    def _matrix_step(self, group: dict) -> None:
        params, grads, bufs = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[p]
            if not state:
                self._init_state(p, state, group)
            params.append(p)
            grads.append(p.grad)
            bufs.append(state["momentum_buffer"])
        if not params:
            return
        mu, mode = group["momentum"], group["complex_mode"]
        torch._foreach_lerp_(bufs, grads, 1 - mu)  # M_t
        # M̃_t in new tensors: p.grad is never written
        looks = torch._foreach_lerp(grads, bufs, mu) if group["nesterov"] else bufs
        directions = self._directions(group, params, [matrix_view(m, mode) for m in looks])
        lr, wd = group["lr"], group["weight_decay"]
        if wd:
            torch._foreach_mul_(params, 1 - lr * wd)
        for p, d in zip(params, directions):
            p.add_(from_matrix_view(d, p, mode), alpha=-adjust_lr(lr, *d.shape[-2:], group["adjust_lr_fn"]))

    def _adamw_step(self, group: dict) -> None:
        """AdamW (torch.optim.AdamW's update, with bias correction) on the group's parameters."""
        params, grads, exp_avgs, exp_avg_sqs, steps = adam_moments(self, group["params"], "AdamW")
        if not params:
            return
        params = [real_view(p) for p in params]
        (beta1, beta2), lr, wd = group["adamw_betas"], group["lr"], group["weight_decay"]
        update_moments(grads, exp_avgs, exp_avg_sqs, beta1, beta2)
        if wd:
            torch._foreach_mul_(params, 1 - lr * wd)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, [math.sqrt(1 - beta2 ** s) for s in steps])
        torch._foreach_add_(denom, group["adamw_eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / (1 - beta1 ** s) for s in steps])
