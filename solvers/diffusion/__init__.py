"""Diffusion and flow models with their ODE and SDE samplers.

- schedules: :class:`LinearVP`, :class:`CosineVP`, :class:`DiscreteVP` (VP), :class:`VESchedule`,
  :class:`EDMSchedule`; grids by :func:`time_grid` (logSNR, time-uniform, time-quadratic, Karras)
  or any decreasing tensor of times
- the model as samplers see it: :class:`Denoiser` (ε/x₀/v/F, guidance, thresholding, NFE);
  conversions between predictions in :mod:`.predictions`
- samplers, ``fn(model, x, ts, *, callback=None, **options)``, by name in :data:`SAMPLERS`:
  ``ddim``, ``dpm_solver``, ``dpm_solver++``, ``pndm``, ``plms``, ``heavy_ball``, ``ghvb``, ``unipc``,
  ``heun_edm`` (EDM's Heun with churn), the SDE samplers ``euler_maruyama`` and ``dpm_solver++_sde``,
  and ``probability_flow`` (adaptive reference); the options they share: :mod:`.options`
- Solvers: :class:`DiffusionSolver`, :class:`RectifiedFlowSolver`, :class:`PDERefinerSolver`
- test problem: :class:`GaussianMixture` (exact noise prediction); network: :class:`TimeMLP`
"""
from .ddim import ddim
from .denoiser import PREDICTIONS, Denoiser
from .denoising import DiffusionSolver
from .dpm_solver import dpm_solver
from .dpm_solver_pp import dpm_solver_pp
from .dpm_solver_pp_sde import dpm_solver_pp_sde
from .euler_maruyama import euler_maruyama
from .gaussian_mixture import GaussianMixture
from .heun_edm import heun_edm
from .momentum import ghvb, heavy_ball
from .nets import TimeMLP
from .pndm import plms, pndm
from .probability_flow import probability_flow
from .rectified_flow import RectifiedFlowSolver
from .refiner import PDERefinerSolver
from .samplers import SAMPLERS, get_sampler, steps_for_nfe
from .unipc import unipc
from .schedules import (GRIDS, SCHEDULES, CosineVP, DiscreteVP, EDMSchedule, LinearVP, Schedule, VESchedule,
                        VPSchedule, check_timesteps, get_schedule, karras_sigmas, time_grid)

__all__ = [
    "Schedule", "VPSchedule", "LinearVP", "CosineVP", "DiscreteVP", "VESchedule", "EDMSchedule", "get_schedule",
    "time_grid", "karras_sigmas", "check_timesteps", "SCHEDULES", "GRIDS",
    "Denoiser", "PREDICTIONS", "SAMPLERS", "get_sampler", "steps_for_nfe",
    "ddim", "dpm_solver", "dpm_solver_pp", "pndm", "plms", "heavy_ball", "ghvb", "unipc", "heun_edm",
    "euler_maruyama", "dpm_solver_pp_sde", "probability_flow",
    "DiffusionSolver", "RectifiedFlowSolver", "PDERefinerSolver", "GaussianMixture", "TimeMLP",
]
