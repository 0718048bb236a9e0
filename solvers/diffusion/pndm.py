"""PNDM and PLMS: Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical Methods for Diffusion Models on
Manifolds" (ICLR).

A pseudo numerical method splits each step into a gradient part (a linear-multistep or
Runge–Kutta combination of noise predictions) and a transfer part φ, the DDIM step that moves
x along the data manifold with a given ε (eq. 9). PLMS uses the fourth-order Adams–Bashforth
combination (eq. 12); PNDM warms it up with three pseudo Runge–Kutta steps of four NFE each
(eq. 13), ``plms`` with lower-order Adams–Bashforth steps instead (one NFE each, as
``PNDMScheduler(skip_prk_steps=True)`` does in spirit). Equation numbers as in diffusers'
``PNDMScheduler``, which cites the paper's formulas (9), (12), (13). The coefficients are those of a
uniform grid; on other grids they are what the paper uses, not exact.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs

__all__ = ["pndm", "plms", "adams_bashforth"]

# Adams–Bashforth weights, newest first (eq. 12 for order 4)
_AB = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def adams_bashforth(history: list[Tensor]) -> Tensor:
    """The Adams–Bashforth combination of order ``min(4, len(history))`` (newest last)."""
    weights = _AB[min(4, len(history))]
    return sum(w * e for w, e in zip(weights, reversed(history)))


def _transfer(model: Denoiser, x: Tensor, eps: Tensor, s: Tensor, t: Tensor) -> Tensor:
    """φ(x_s, ε, s, t) of eq. 9: the DDIM step, written x_t/α_t = x_s/α_s + (σ_t/α_t − σ_s/α_s) ε."""
    sch = model.schedule
    a_s, a_t = sch.alpha(s), sch.alpha(t)
    return (a_t / a_s) * x + a_t * (sch.sigma(t) / a_t - sch.sigma(s) / a_s) * eps


def _run(model, x, ts, warmup: str, callback):
    check_inputs(model, x, ts)
    ts = ts.to(x.dtype)
    hist: list[Tensor] = []
    for i in range(len(ts) - 1):
        s, t = ts[i], ts[i + 1]
        if warmup == "prk" and i < 3:
            m = 0.5 * (s + t)  # the half step t − δ/2 of eq. 13
            e1 = model.eps(x, s)
            e2 = model.eps(_transfer(model, x, e1, s, m), m)
            e3 = model.eps(_transfer(model, x, e2, s, m), m)
            e4 = model.eps(_transfer(model, x, e3, s, t), t)
            hist.append(e1)
            eps = (e1 + 2 * e2 + 2 * e3 + e4) / 6  # eq. 13
        else:
            hist.append(model.eps(x, s))
            eps = adams_bashforth(hist)  # eq. 12
        hist = hist[-4:]
        x = _transfer(model, x, eps, s, t)
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


@torch.no_grad()
def pndm(model: Denoiser, x: Tensor, ts: Tensor, *, callback: Callable[[dict], None] | None = None) -> Tensor:
    """PNDM: three pseudo Runge–Kutta steps (4 NFE each), then PLMS (1 NFE per step)."""
    return _run(model, x, ts, "prk", callback)


@torch.no_grad()
def plms(model: Denoiser, x: Tensor, ts: Tensor, *, callback: Callable[[dict], None] | None = None) -> Tensor:
    """PLMS with Adams–Bashforth warm-up of orders 1, 2, 3 (1 NFE per step throughout)."""
    return _run(model, x, ts, "ab", callback)
