"""Diffusion and flow models with their ODE samplers.

- schedules: :class:`LinearVP`, :class:`CosineVP`, :class:`DiscreteVP`, :func:`time_grid`
- the model as samplers see it: :class:`Denoiser` (ε/x₀/v, guidance, thresholding, NFE)
- samplers, ``fn(model, x, ts, *, callback=None, **options)``, by name in :data:`SAMPLERS`:
  ``ddim``, ``dpm_solver``, ``dpm_solver++``, ``pndm``, ``plms``, ``heavy_ball``, ``ghvb``,
  ``probability_flow`` (adaptive reference)
- Solvers: :class:`DiffusionSolver`, :class:`RectifiedFlowSolver`, :class:`PDERefinerSolver`
- test problem: :class:`GaussianMixture` (exact noise prediction); network: :class:`TimeMLP`
"""
from .ddim import ddim
from .denoiser import PREDICTIONS, Denoiser
from .denoising import DiffusionSolver
from .dpm_solver import dpm_solver
from .dpm_solver_pp import dpm_solver_pp
from .gaussian_mixture import GaussianMixture
from .momentum import ghvb, heavy_ball
from .nets import TimeMLP
from .pndm import plms, pndm
from .probability_flow import probability_flow
from .rectified_flow import RectifiedFlowSolver
from .refiner import PDERefinerSolver
from .samplers import SAMPLERS, get_sampler
from .schedules import GRIDS, SCHEDULES, CosineVP, DiscreteVP, LinearVP, VPSchedule, get_schedule, time_grid

__all__ = [
    "VPSchedule", "LinearVP", "CosineVP", "DiscreteVP", "get_schedule", "time_grid", "SCHEDULES", "GRIDS",
    "Denoiser", "PREDICTIONS", "SAMPLERS", "get_sampler",
    "ddim", "dpm_solver", "dpm_solver_pp", "pndm", "plms", "heavy_ball", "ghvb", "probability_flow",
    "DiffusionSolver", "RectifiedFlowSolver", "PDERefinerSolver", "GaussianMixture", "TimeMLP",
]
