"""The adaptive reference: the probability-flow ODE (Song et al. 2021, "Score-Based Generative
Modeling through SDEs", eq. 13) integrated by torchdiffeq's dopri5 (Dormand & Prince 1980).

In the half-log-SNR λ the ODE of a VP model is schedule-free (Lu et al. 2022, "DPM-Solver",
Proposition 3.1, differentiated): with α² = sigmoid(2λ) and σ² = sigmoid(−2λ),

    dx/dλ = σ² x − σ ε̂(x, t(λ)).

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

    The grid only says where to report to ``callback``; the solver picks its own steps.
    """
    check_inputs(model, x, ts)
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    sch = model.schedule
    lams = sch.lam(ts.to(x.dtype))

    def rhs(lam: Tensor, y: Tensor) -> Tensor:
        sig = torch.sqrt(torch.sigmoid(-2 * lam))
        return sig**2 * y - sig * model.eps(y, sch.t_of_lam(lam))

    path = odeint(rhs, x, lams, rtol=rtol, atol=atol, method=method)
    if callback is not None:
        for i in range(1, len(ts)):
            callback({"i": i - 1, "t": ts[i], "x": path[i]})
    return path[-1]
