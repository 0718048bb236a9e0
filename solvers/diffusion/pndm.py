"""PNDM and PLMS: Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical Methods for Diffusion Models on
Manifolds" (ICLR).

A pseudo numerical method splits each step into a gradient part (a linear-multistep or
Runge–Kutta combination of noise predictions) and a transfer part φ, the DDIM step that moves
x along the data manifold with a given ε (eq. 9). In the scaled variables x̄ = x/α and
σ̄ = σ/α the transfer is x̄ + (σ̄_t − σ̄_s) ε: the methods integrate dx̄/dσ̄ = ε. PLMS uses the
fourth-order Adams–Bashforth combination (eq. 12); PNDM warms it up with three pseudo
Runge–Kutta steps of four NFE each (eq. 13), ``plms`` by default with lower-order
Adams–Bashforth steps instead (one NFE each, as ``PNDMScheduler(skip_prk_steps=True)`` does in
spirit). Equation numbers as in diffusers' ``PNDMScheduler``, which cites the paper's formulas.

The paper's weights (55, −59, 37, −9)/24 and its half step are those of a grid uniform in σ̄,
which no usual grid is (logSNR, time-uniform, Karras). Here the Adams–Bashforth weights are
recomputed for the actual nodes, w_j = ∫ L_j(σ̄) dσ̄ over the step with L_j the Lagrange basis
of the past σ̄_j (the variable-step Adams–Bashforth method, Hairer, Nørsett & Wanner, "Solving
Ordinary Differential Equations I", §III.5), and the Runge–Kutta midpoint is taken in σ̄, so both
keep order 4 on any monotone grid; on a uniform σ̄ grid they are the paper's.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import finish, notify, resolve_warmup, step_order

__all__ = ["pndm", "plms", "adams_bashforth_weights", "runge_kutta"]


def adams_bashforth_weights(nodes: list[float], a: float, b: float) -> list[float]:
    """w_j with ∫_a^b p = Σ_j w_j p(nodes_j) for every polynomial p of degree < len(nodes)."""
    k = len(nodes)
    u = torch.tensor([(v - a) / (b - a) for v in nodes], dtype=torch.float64)  # nodes scaled to the step
    vander = u[None, :] ** torch.arange(k, dtype=torch.float64)[:, None]
    moments = 1 / torch.arange(1, k + 1, dtype=torch.float64)  # ∫_0^1 u^q du
    return (torch.linalg.solve(vander, moments) * (b - a)).tolist()


# Runge–Kutta tableaux (c, A, b) in σ̄ of orders 2 (Heun), 3 (Kutta) and 4 (the classical one of eq. 13)
_RK = {
    2: ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    3: ((0.0, 0.5, 1.0), ((), (0.5,), (-1.0, 2.0)), (1 / 6, 4 / 6, 1 / 6)),
    4: ((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 2 / 6, 2 / 6, 1 / 6)),
}


def runge_kutta(model: Denoiser, x: Tensor, s: Tensor, t: Tensor, order: int, eps: Tensor) -> Tensor:
    """One explicit Runge–Kutta step of ``order`` (2–4) on dx̄/dσ̄ = ε from s to t, given ε(x, s)."""
    sch = model.schedule
    a_s, a_t = sch.alpha(s), sch.alpha(t)
    sb_s, sb_t = sch.sbar(s), sch.sbar(t)
    d = sb_t - sb_s
    c, A, b = _RK[order]
    xbar, ks = x / a_s, [eps]
    for j in range(1, order):
        sb_j = sb_s + c[j] * d
        t_j = sch.t_of_sbar(sb_j)
        xbar_j = xbar + d * sum(w * k for w, k in zip(A[j], ks))
        ks.append(model.eps(sch.alpha(t_j) * xbar_j, t_j))
    return a_t * (xbar + d * sum(w * k for w, k in zip(b, ks)))  # eq. 13 for order 4


def _run(model, x, ts, full, lower_order_final, denoise_to_zero, callback):
    check_inputs(model, x, ts)
    ts = ts.to(x.dtype)
    sch = model.schedule
    alpha, sbar = sch.alpha(ts), sch.sbar(ts)
    steps = len(ts) - 1
    hist: list[Tensor] = []
    for i in range(steps):
        eps = model.eps(x, ts[i])
        hist = (hist + [eps])[-4:]
        k = step_order(i, steps + denoise_to_zero, 4, lower_order_final)
        if full and i < 3:
            x = runge_kutta(model, x, ts[i], ts[i + 1], 4, eps)  # the pseudo Runge–Kutta warm-up, eq. 13
        else:
            w = adams_bashforth_weights([float(v) for v in sbar[i + 1 - k:i + 1]], float(sbar[i]), float(sbar[i + 1]))
            xbar = x / alpha[i] + sum(wj * e for wj, e in zip(w, hist[-k:]))  # eq. 12, variable-step weights
            x = alpha[i + 1] * xbar
        x = notify(callback, {"i": i, "t": ts[i + 1], "x": x}, model)
    return finish(model, x, ts[-1], denoise_to_zero)


@torch.no_grad()
def pndm(model: Denoiser, x: Tensor, ts: Tensor, *, lower_order_final: bool = False, denoise_to_zero: bool = False,
         callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """PNDM: three pseudo Runge–Kutta steps (4 NFE each), then PLMS (1 NFE per step); order 4."""
    return _run(model, x, ts, True, lower_order_final, denoise_to_zero, callback)


@torch.no_grad()
def plms(model: Denoiser, x: Tensor, ts: Tensor, *, warmup: str = "auto", lower_order_final: bool = False,
         denoise_to_zero: bool = False, callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """PLMS: Adams–Bashforth 4 with variable-step weights (1 NFE per step); ``warmup`` as in :mod:`.options`
    (``"full"``: PNDM's Runge–Kutta start)."""
    return _run(model, x, ts, resolve_warmup(warmup, model, ts), lower_order_final, denoise_to_zero, callback)
