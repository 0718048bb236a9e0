"""The samplers by name; each is ``fn(model: Denoiser, x, ts, *, callback=None, **options)``, with the
options of :mod:`.options` where they apply, and counts its evaluations on ``model.nfe``."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from sciml.validation import positive_int

from .ddim import ddim
from .denoiser import Denoiser
from .dpm_solver import dpm_solver
from .dpm_solver_pp import dpm_solver_pp
from .dpm_solver_pp_sde import dpm_solver_pp_sde
from .euler_maruyama import euler_maruyama
from .heun_edm import heun_edm
from .momentum import ghvb, heavy_ball
from .pndm import plms, pndm
from .probability_flow import probability_flow
from .schedules import Schedule, time_grid
from .unipc import unipc

__all__ = ["SAMPLERS", "get_sampler", "steps_for_nfe"]

SAMPLERS: dict[str, Callable] = {
    "ddim": ddim,
    "dpm_solver": dpm_solver,
    "dpm_solver++": dpm_solver_pp,
    "pndm": pndm,
    "plms": plms,
    "heavy_ball": heavy_ball,
    "ghvb": ghvb,
    "unipc": unipc,
    "heun_edm": heun_edm,
    "euler_maruyama": euler_maruyama,
    "dpm_solver++_sde": dpm_solver_pp_sde,
    "probability_flow": probability_flow,
}


def get_sampler(name: str) -> Callable:
    """The sampler registered under ``name`` (see :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def steps_for_nfe(name: str, nfe: int, schedule: Schedule, grid: str = "logSNR", t_start: float | None = None,
                  t_end: float | None = None, rho: float | None = None, **options: Any) -> int:
    """The most steps for which sampler ``name`` with ``options`` costs at most ``nfe`` evaluations.

    The cost is counted, not looked up: the sampler runs on one zero-valued scalar with a zero
    network, which follows the same branches (warm-up, singlestep stages, final denoising) as a
    real run, so the count holds for every sampler and option without a table to keep in step.
    """
    positive_int("nfe", nfe)
    fn = get_sampler(name)
    if fn is probability_flow:
        raise ValueError("probability_flow chooses its own steps: nfe does not apply to it")
    options = {k: v for k, v in options.items() if k not in ("callback", "generator", "noise_sampler")}
    accepts = inspect.signature(fn).parameters
    quiet = {"generator": torch.Generator()} if "generator" in accepts else {}  # leave the global RNG alone

    def cost(steps: int) -> int:
        model = Denoiser(lambda x, t: torch.zeros_like(x), schedule)
        ts = time_grid(schedule, steps, grid, t_start, t_end, rho=rho)
        fn(model, torch.zeros(1, 1, dtype=torch.float64), ts, **options, **quiet)
        return model.nfe

    if cost(1) > nfe:
        raise ValueError(f"nfe={nfe} is below the cost of one step of {name} with {options} ({cost(1)} evaluations)")
    lo, hi = 1, nfe  # cost(lo) <= nfe; every step costs at least one evaluation, so cost(nfe + 1) > nfe
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= nfe else (lo, mid - 1)
    return lo
