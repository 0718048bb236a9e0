"""diffusers interop: a diffusers ``UNet2DModel`` with its scheduler's noise schedule as a
:class:`DiffusionSolver`, so that every sampler here runs on a pretrained diffusers model.

diffusers numbers its N training steps k = 0 … N − 1 with ᾱ_k = Π_{i≤k}(1 − β_i) (Ho et al. 2020,
eq. 4); :class:`DiscreteVP` puts the same ᾱ at the continuous times t = (k + 1)/N, so the wrapped
network is called with the timestep k = tN − 1 (an integer on every grid built from diffusers'
timesteps, a float in between, which the sinusoidal time embedding of ``UNet2DModel`` accepts).
The schedule is rebuilt from the scheduler's own ``alphas_cumprod`` (float32 in diffusers), so
both libraries see the same ᾱ to float64 rounding. diffusers is an optional dependency
(``pip install sciml[diffusers]``); nothing here downloads: load the weights as you like
(``UNet2DModel.from_pretrained`` with a local path, or a model built in code).
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .denoising import DiffusionSolver
from .schedules import DiscreteVP

__all__ = ["DiffusersUNet", "from_diffusers", "PREDICTION_TYPES"]

# diffusers' prediction_type → ours
PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


class DiffusersUNet(nn.Module):
    """``f(x, t[, cond])`` over a diffusers ``UNet2DModel`` (or any module called as
    ``unet(x, timestep[, class_labels]).sample``) trained with ``num_train_timesteps`` steps."""

    def __init__(self, unet: nn.Module, num_train_timesteps: int):
        super().__init__()
        if not isinstance(unet, nn.Module):
            raise TypeError(f"unet must be an nn.Module (a diffusers UNet2DModel), got {type(unet).__name__}")
        if not (isinstance(num_train_timesteps, int) and num_train_timesteps >= 2):
            raise ValueError(f"num_train_timesteps must be an integer >= 2, got {num_train_timesteps!r}")
        self.unet, self.n = unet, num_train_timesteps

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        k = t * self.n - 1
        k = torch.where((k - k.round()).abs() < 1e-6, k.round(), k)  # the integer timesteps exactly
        out = self.unet(x, k) if cond is None else self.unet(x, k, class_labels=cond)
        return out.sample if hasattr(out, "sample") else out


def from_diffusers(unet: nn.Module, scheduler: Any, data_shape: tuple[int, ...] | None = None) -> DiffusionSolver:
    """A :class:`DiffusionSolver` over ``unet`` with the schedule and prediction type of ``scheduler``
    (any diffusers scheduler with ``alphas_cumprod`` and ``config.prediction_type``).

    ``data_shape`` defaults to ``(unet.config.in_channels, sample_size, sample_size)`` when the UNet
    has a diffusers config. The scheduler's ``clip_sample`` and ``thresholding`` are not carried over
    (a warning says so; :meth:`DiffusionSolver.sample` takes ``dynamic_threshold=``); a
    zero-terminal-SNR schedule (ᾱ_N = 0) is refused, since every sampler here works in λ = log(α/σ),
    which is −∞ there. Times are continuous: diffusers' timestep k is t = (k + 1)/N.
    """
    abar = getattr(scheduler, "alphas_cumprod", None)
    if not isinstance(abar, Tensor) or abar.dim() != 1:
        raise TypeError(f"scheduler must be a diffusers scheduler with alphas_cumprod, got {type(scheduler).__name__}")
    kind = scheduler.config.prediction_type
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"scheduler prediction_type must be one of {sorted(PREDICTION_TYPES)}, got {kind!r}")
    abar = abar.detach().double().cpu()
    if not float(abar[-1]) > 0:
        raise ValueError("the scheduler has zero terminal SNR (alphas_cumprod[-1] = 0, e.g. "
                         "rescale_betas_zero_snr=True): λ = log(α/σ) is −∞ at T, where every sampler here "
                         "starts; rebuild the scheduler with rescale_betas_zero_snr=False")
    ignored = [k for k in ("clip_sample", "thresholding") if getattr(scheduler.config, k, False)]
    if ignored:
        warnings.warn(f"from_diffusers ignores the scheduler's {' and '.join(f'{k}=True' for k in ignored)}: "
                      "the samplers here do not clip x̂₀ unless sample(dynamic_threshold=...) is given, so "
                      "results differ from the scheduler's own", UserWarning, stacklevel=2)
    betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])  # β_k = 1 − ᾱ_k/ᾱ_{k−1}, exact for diffusers' ᾱ
    config = getattr(unet, "config", None)
    if data_shape is None and config is not None:
        size = config.sample_size
        data_shape = (config.in_channels, *((size, size) if isinstance(size, int) else size))
    return DiffusionSolver(DiffusersUNet(unet, abar.numel()), DiscreteVP(betas), PREDICTION_TYPES[kind],
                           data_shape=data_shape)
