"""The samplers by name; each is ``fn(model: Denoiser, x, ts, *, callback=None, **options)``."""
from __future__ import annotations

from typing import Callable

from .ddim import ddim
from .dpm_solver import dpm_solver
from .dpm_solver_pp import dpm_solver_pp
from .momentum import ghvb, heavy_ball
from .pndm import plms, pndm
from .probability_flow import probability_flow

__all__ = ["SAMPLERS", "get_sampler"]

SAMPLERS: dict[str, Callable] = {
    "ddim": ddim,
    "dpm_solver": dpm_solver,
    "dpm_solver++": dpm_solver_pp,
    "pndm": pndm,
    "plms": plms,
    "heavy_ball": heavy_ball,
    "ghvb": ghvb,
    "probability_flow": probability_flow,
}


def get_sampler(name: str) -> Callable:
    """The sampler registered under ``name`` (see :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]
