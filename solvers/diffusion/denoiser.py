"""The model as every sampler sees it: noise and data predictions at a time t, counted.

A network trained with ε-, x₀-, v- or (EDM) F-prediction is turned into both predictions by the
identities of :mod:`.predictions` (x = α x₀ + σ ε, v = α ε − σ x₀, Karras et al.'s
preconditioning). Two optional corrections act here, so that every sampler gets them:

- classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6):
  out = out(∅) + w·(out(c) − out(∅)); the conditional and unconditional passes go through the
  network as one batch and count as one function evaluation, as in DPM-Solver's wrapper;
- dynamic thresholding of the data prediction (Saharia et al. 2022, "Imagen", §2.3): s is the
  p-quantile of |x₀| per sample, s ← max(s, max_value), x₀ ← clip(x₀, −s, s)·max_value/s.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .predictions import PREDICTIONS, network_input, to_eps, to_x0
from .schedules import Schedule, check_timesteps

__all__ = ["Denoiser", "PREDICTIONS", "check_inputs"]


class Denoiser:
    """Wrap ``fn(x, t[, cond]) → prediction`` for the samplers.

    Parameters
    ----------
    fn : the network; ``t`` is passed as a ``(B,)`` tensor of continuous times (for ``"F"``:
        ``fn(c_in·x̄, c_noise)``, see :mod:`.predictions`).
    schedule : the schedule (VP, VE or EDM) the network was trained with.
    prediction : what ``fn`` predicts: ``"eps"``, ``"x0"``, ``"v"`` or ``"F"``.
    cond : conditioning passed as the third argument of ``fn`` (None: ``fn(x, t)``).
    uncond : the "null" conditioning for classifier-free guidance.
    guidance_scale : s in out(∅) + s·(out(c) − out(∅)); 1 means no guidance (the paper's
        weight w is s − 1). The network must know ∅: train it with condition dropout
        (``DiffusionSolver(cond_drop_prob=...)``).
    dynamic_threshold : the quantile p of Imagen's dynamic thresholding (None: off);
        applied to the data prediction, so it affects data-prediction samplers (DPM-Solver++).
    max_value : the data range bound of dynamic thresholding (1 for images in [−1, 1]).
    sigma_data : σ_d of the ``"F"`` preconditioning (Karras et al. 2022 use 0.5).

    ``nfe`` counts network evaluations (a guided pair counts once).
    """

    def __init__(self, fn: Callable[..., Tensor], schedule: Schedule, prediction: str = "eps", *,
                 cond: Any = None, uncond: Any = None, guidance_scale: float = 1.0,
                 dynamic_threshold: float | None = None, max_value: float = 1.0, sigma_data: float = 0.5):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if guidance_scale != 1.0 and (cond is None or uncond is None):
            raise ValueError(f"guidance_scale={guidance_scale} needs both cond and uncond")
        if dynamic_threshold is not None and not 0 < dynamic_threshold <= 1:
            raise ValueError(f"dynamic_threshold must be a quantile in (0, 1] or None, got {dynamic_threshold}")
        if not max_value > 0:
            raise ValueError(f"max_value must be positive, got {max_value}")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}")
        self.sigma_data = float(sigma_data)
        self.fn, self.schedule, self.prediction = fn, schedule, prediction
        self.cond, self.uncond, self.guidance_scale = cond, uncond, float(guidance_scale)
        self.dynamic_threshold, self.max_value = dynamic_threshold, float(max_value)
        self.nfe = 0

    def output(self, x: Tensor, t: Tensor) -> Tensor:
        """The raw (guided) network output at x and scalar or ``(B,)`` time t."""
        self.nfe += 1
        t = t.to(x.dtype).expand(x.shape[0]) if t.dim() == 0 else t.to(x.dtype)
        if self.prediction == "F":
            x, t = network_input(x, t, *self._coefficients(x, t), "F", self.sigma_data)
        if self.cond is None:
            return self.fn(x, t)
        if self.guidance_scale == 1.0:
            return self.fn(x, t, self.cond)
        both = self.fn(torch.cat([x, x]), torch.cat([t, t]), _cat(self.uncond, self.cond))
        out_u, out_c = both.chunk(2)
        # guidance is linear in the output and all predictions are affine in it with the same
        # coefficients, so guiding the raw output equals guiding ε (Ho & Salimans 2022, eq. 6)
        return out_u + self.guidance_scale * (out_c - out_u)

    def _coefficients(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        shape = (-1,) + (1,) * (x.dim() - 1)
        t = t.to(x.dtype)
        return self.schedule.alpha(t).reshape(shape), self.schedule.sigma(t).reshape(shape)

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        """Noise prediction ε̂(x, t)."""
        out = self.output(x, t)
        return out if self.prediction == "eps" else to_eps(out, x, *self._coefficients(x, t), self.prediction,
                                                            self.sigma_data)

    def x0(self, x: Tensor, t: Tensor) -> Tensor:
        """Data prediction x̂₀(x, t), dynamically thresholded when asked."""
        out = self.output(x, t)
        x0 = to_x0(out, x, *self._coefficients(x, t), self.prediction, self.sigma_data)
        return self._threshold(x0) if self.dynamic_threshold is not None else x0

    def _threshold(self, x0: Tensor) -> Tensor:
        q = torch.quantile(x0.abs().flatten(1), self.dynamic_threshold, dim=1)
        s = q.clamp(min=self.max_value).reshape((-1,) + (1,) * (x0.dim() - 1))
        return torch.maximum(torch.minimum(x0, s), -s) * (self.max_value / s)


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    raise TypeError(f"cond and uncond must be tensors or dicts of tensors for guidance, got {type(a).__name__}")


def check_inputs(model: Any, x: Any, ts: Any) -> None:
    """The checks every sampler runs at its door: a Denoiser, a tensor, a decreasing 1-D grid."""
    if not isinstance(model, Denoiser):
        raise TypeError(f"model must be a Denoiser (wrap the network with Denoiser(fn, schedule)), "
                        f"got {type(model).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if isinstance(ts, Tensor) and ts.device != x.device:
        raise ValueError(f"timesteps must be on the device of x ({x.device}), got {ts.device}")
    check_timesteps(model.schedule, ts)

