"""The adaptive reference: the probability-flow ODE (Song et al. 2021, "Score-Based Generative
Modeling through SDEs", eq. 13) integrated by torchdiffeq's dopri5 (Dormand & Prince 1980).

In the scaled variables x̄ = x/α and σ̄ = σ/α = e^{−λ} the ODE of every schedule (VP, VE,
EDM) is dx̄/dσ̄ = ε̂ (Song, Meng & Ermon 2021, "DDIM"; Karras et al. 2022, eq. 4), so in
the half-log-SNR λ (Lu et al. 2022, "DPM-Solver", Proposition 3.1, differentiated)

    dx̄/dλ = −e^{−λ} ε̂(α x̄, t(λ)).

Integrating in λ rather than t keeps the right-hand side bounded near t = 0, where dλ/dt blows up.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torchdiffeq import odeint

from .denoiser import Denoiser, check_inputs

__all__ = ["probability_flow"]


@torch.no_grad()
def probability_flow(model: Denoiser, x: Tensor, ts: Tensor, *, rtol: float = 1e-8, atol: float = 1e-8,
                     method: str = "dopri5", callback: Callable[[dict], None] | None = None) -> Tensor:
    """Solve the probability-flow ODE from ``ts[0]`` to ``ts[-1]`` adaptively (to ``rtol``/``atol``).

    The grid only says where to report to ``callback``; the solver picks its own steps. The
    callback reports a finished solve, so it may not return a corrected x (that is an error).
    """
    check_inputs(model, x, ts)
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    sch = model.schedule
    ts = ts.to(x.dtype)
    lams, alpha = sch.lam(ts), sch.alpha(ts)

    def rhs(lam: Tensor, y: Tensor) -> Tensor:
        t = sch.t_of_lam(lam)
        return -torch.exp(-lam) * model.eps(sch.alpha(t) * y, t)

    path = odeint(rhs, x / alpha[0], lams, rtol=rtol, atol=atol, method=method)
    if callback is not None:
        for i in range(1, len(ts)):
            if callback({"i": i - 1, "t": ts[i], "x": alpha[i] * path[i], "nfe": model.nfe}) is not None:
                raise ValueError("probability_flow's callback only observes (the adaptive solve is already "
                                 "done): it must return None, not a corrected x; use a fixed-step sampler")
    return alpha[-1] * path[-1]
