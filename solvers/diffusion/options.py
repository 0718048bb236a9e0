"""The option vocabulary every sampler shares, checked and applied in one place.

- ``order``: the order of the method (where a sampler has one);
- ``warmup``: how a multistep method starts, before it has ``order`` past evaluations:
  ``"lower_order"`` (steps of order 1, 2, …: one evaluation each, as DPM-Solver's and
  diffusers' multistep samplers do), ``"full"`` (a singlestep method of the full order, so the
  global order holds from any start; a lower-order start costs little only where the trajectory
  is nearly straight, as from pure noise at T: measured from t = 0.4, it holds third-order
  multistep methods to about second order, see ``benchmarks/sampling.py``), or
  ``"auto"``: a sampler called directly cannot tell pure noise from a noised image, so it
  decides by the grid (``"lower_order"`` when it starts at T, ``"full"`` below);
  :meth:`DiffusionSolver.sample` decides by the start instead (``"full"`` only when ``t_start``
  is given, an SDEdit or img2img start; ``"lower_order"`` otherwise, so that a diffusers
  ``"leading"`` grid, which starts below T from pure noise, is warmed up as diffusers does);
- ``lower_order_final``: lower the order over the last steps so the method never uses more
  past points than steps remain (order min(k, steps left), the step of ``denoise_to_zero``
  counted, as diffusers counts its step to σ = 0), which steadies very short grids;
- ``denoise_to_zero``: after the last step, replace x by the data prediction x̂₀(x, t_end)
  (one more evaluation; Karras et al. 2022 and k-diffusion end at σ = 0 this way);
- ``callback(info)``: called after every step with ``i``, ``t``, ``x``, ``nfe`` (and ``denoised``
  where the step has one); a tensor it returns replaces x (a corrected x, as the
  ``correcting_xt_fn`` of DPM-Solver's reference code). UniPC reports its predictor's x̃
  and leaves a step whose x the callback replaced uncorrected (its corrector would rebuild x
  from the step's start); ``probability_flow`` only reports, and refuses a returned tensor.
- ``method`` (``dpm_solver``, ``dpm_solver++``): ``"singlestep"``, ``"multistep"`` or a short
  name ``"2S"``, ``"3S"``, ``"2M"``, ``"3M"`` that gives order and method at once.

Every sampler counts its network evaluations on its :class:`Denoiser` (``model.nfe``).
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .denoiser import Denoiser

__all__ = ["WARMUPS", "METHODS", "SHORT", "check_order", "resolve_method", "resolve_warmup", "step_order",
           "notify", "finish"]

WARMUPS = ("auto", "lower_order", "full")
METHODS = ("singlestep", "multistep")
SHORT = {"2S": (2, "singlestep"), "3S": (3, "singlestep"), "2M": (2, "multistep"), "3M": (3, "multistep")}


def check_order(order: object, allowed: tuple[int, ...]) -> int:
    if isinstance(order, bool) or not (isinstance(order, int) and order in allowed):
        raise ValueError(f"order must be one of {allowed}, got {order!r}")
    return order


def resolve_method(order: int | None, method: str, default_order: int) -> tuple[int, str]:
    """(order, method) from ``method`` (a name of :data:`METHODS` or :data:`SHORT`) and ``order``."""
    if method in SHORT:
        if order is not None and order != SHORT[method][0]:
            raise ValueError(f"method={method!r} means order {SHORT[method][0]}, got order={order}")
        order, method = SHORT[method]
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or {tuple(SHORT)}, got {method!r}")
    return check_order(default_order if order is None else order, (1, 2, 3)), method


def resolve_warmup(warmup: str, model: Denoiser, ts: Tensor) -> bool:
    """True where the first steps must be of full order (see the module docstring)."""
    if warmup not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup!r}")
    if warmup == "auto":
        return float(ts[0]) < model.schedule.T * (1 - 1e-6)
    return warmup == "full"


def step_order(i: int, steps: int, order: int, lower_order_final: bool) -> int:
    """The order allowed at step ``i`` of ``steps`` (the final denoising step included) by the
    history (i + 1 points) and the end."""
    k = min(order, i + 1)
    return min(k, steps - i) if lower_order_final else k


def notify(callback: Callable[[dict], Tensor | None] | None, info: dict, model: Denoiser) -> Tensor:
    """Call ``callback`` with ``info`` plus ``nfe`` and return the x to continue from."""
    if callback is None:
        return info["x"]
    out = callback({**info, "nfe": model.nfe})
    if out is None:
        return info["x"]
    if not isinstance(out, Tensor) or out.shape != info["x"].shape:
        raise ValueError(f"callback must return None or a tensor of shape {tuple(info['x'].shape)}, got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out


def finish(model: Denoiser, x: Tensor, t_end: Tensor, denoise_to_zero: bool) -> Tensor:
    """x, or its data prediction at the last time when ``denoise_to_zero``."""
    return model.x0(x, t_end) if denoise_to_zero else x
