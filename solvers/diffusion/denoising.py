"""DiffusionSolver: a VP diffusion model trained by denoising, sampled by any registered sampler.

The loss is the "simple" denoising objective of Ho, Jain & Abbeel 2020 ("Denoising Diffusion
Probabilistic Models", eq. 14): draw t, noise x_t = α_t x₀ + σ_t ε and regress the network
output on the target of its parameterisation: ε (Ho et al. 2020), x₀, or v = α_t ε − σ_t x₀
(Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models", §4).

Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Algorithm 1)
needs one network that is both conditional and unconditional: during training the condition of
each sample is replaced by a null condition ∅ with probability ``cond_drop_prob`` (the paper's
p_uncond), so that ``sample(cond=c, guidance_scale=w)`` can mix ε(x, c) and ε(x, ∅).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from sciml.solver import Solver
from sciml.validation import positive_int

from .denoiser import Denoiser
from .predictions import PREDICTIONS, network_input, target
from .samplers import get_sampler, steps_for_nfe
from .schedules import Schedule, VPSchedule, check_timesteps, get_schedule, time_grid

__all__ = ["DiffusionSolver"]


def _split(batch: Any) -> tuple[Tensor, Any]:
    """A batch is x₀, a tuple (x₀,) (what a TensorDataset yields), or a pair (x₀, cond)."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) in (1, 2) and isinstance(batch[0], Tensor):
        return batch[0], (batch[1] if len(batch) == 2 else None)
    raise TypeError(f"a diffusion batch is x0, (x0,) or (x0, cond), got {type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


class DiffusionSolver(Solver):
    """Denoising diffusion on data of any shape ``(B, *data_shape)``.

    Parameters
    ----------
    model : network ``model(x_t, t)`` (or ``model(x_t, t, cond)`` for conditional batches),
        with t a ``(B,)`` tensor of continuous times in (0, T]; returns the shape of x_t.
    schedule : a :class:`Schedule` (VP, VE, EDM) or a name from ``schedules.SCHEDULES``.
    prediction : ``"eps"``, ``"x0"``, ``"v"`` or ``"F"`` — what the network predicts (``"F"``:
        Karras et al. 2022's preconditioned network, see :mod:`.predictions`).
    data_shape : shape of one sample; found by :meth:`prepare` (the Trainer calls it) if None.
    cond_drop_prob : probability p_uncond with which a training sample's condition is replaced
        by ``null_cond`` (Ho & Salimans 2022 use 0.1–0.2); 0 trains a purely conditional model.
    null_cond : the null condition ∅, a tensor of the shape of one sample's condition (broadcast
        over the batch); None means zeros, which suits one-hot or embedding-vector conditions.
        Give an explicit value (e.g. an unused class index) when zero is a real condition.
    sigma_data : σ_d of the ``"F"`` preconditioning (the data's standard deviation; EDM uses 0.5).
    """

    def __init__(self, model: nn.Module, schedule: str | Schedule = "linear", prediction: str = "eps",
                 data_shape: tuple[int, ...] | None = None, *, cond_drop_prob: float = 0.0,
                 null_cond: Tensor | None = None, sigma_data: float = 0.5):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not (isinstance(cond_drop_prob, (int, float)) and 0 <= cond_drop_prob < 1):
            raise ValueError(f"cond_drop_prob must be a probability in [0, 1), got {cond_drop_prob!r}")
        if null_cond is not None and not isinstance(null_cond, Tensor):
            raise TypeError(f"null_cond must be a tensor or None, got {type(null_cond).__name__}")
        if not (isinstance(sigma_data, (int, float)) and sigma_data > 0):
            raise ValueError(f"sigma_data must be a positive number, got {sigma_data!r}")
        self.sigma_data = float(sigma_data)
        self.model = model
        self.schedule = get_schedule(schedule)
        self.prediction = prediction
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        self.cond_drop_prob = float(cond_drop_prob)
        self.register_buffer("null_cond", null_cond.detach().clone() if null_cond is not None else None)

    def prepare(self, dataset) -> None:
        """Record the shape of one sample, so that ``sample(n)`` knows what to draw."""
        if self.data_shape is None:
            self.data_shape = tuple(_split(dataset[0])[0].shape)

    def _call(self, x: Tensor, t: Tensor, cond: Any) -> Tensor:
        return self.model(x, t) if cond is None else self.model(x, t, cond)

    def null_like(self, cond: Tensor) -> Tensor:
        """The null condition ∅ repeated over the batch of ``cond``."""
        if not isinstance(cond, Tensor):
            raise TypeError(f"classifier-free guidance needs a tensor condition, got {type(cond).__name__}")
        if self.null_cond is None:
            return torch.zeros_like(cond)
        if self.null_cond.shape != cond.shape[1:]:
            raise ValueError(f"null_cond must have the shape of one condition {tuple(cond.shape[1:])}, "
                             f"got {tuple(self.null_cond.shape)}")
        return self.null_cond.to(cond).expand_as(cond)

    def _drop(self, cond: Tensor) -> Tensor:
        """Replace each sample's condition by ∅ with probability p_uncond (Ho & Salimans, Alg. 1)."""
        drop = torch.rand(cond.shape[0], device=cond.device) < self.cond_drop_prob
        return torch.where(drop.reshape((-1,) + (1,) * (cond.dim() - 1)), self.null_like(cond), cond)

    def loss(self, batch: Any) -> Tensor:
        x0, cond = _split(batch)
        if cond is not None and self.cond_drop_prob > 0:
            cond = self._drop(cond)
        t = self.schedule.train_times(x0.shape[0], x0)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a, s = self.schedule.alpha(t).reshape(shape), self.schedule.sigma(t).reshape(shape)
        eps = torch.randn_like(x0)
        x = a * x0 + s * eps  # forward process, Ho et al. eq. 4
        out = self._call(*network_input(x, t, a, s, self.prediction, self.sigma_data), cond)
        want = target(x0, eps, x, a, s, self.prediction, self.sigma_data)
        return (out - want).pow(2).mean()  # eq. 14

    def denoiser(self, **options: Any) -> Denoiser:
        """The network as the samplers see it (``options`` go to :class:`Denoiser`)."""
        return Denoiser(self.model, self.schedule, self.prediction, sigma_data=self.sigma_data, **options)

    @torch.no_grad()
    def sample(self, n: int | tuple[int, ...], sampler: str = "dpm_solver++", steps: int | None = None,
               grid: str = "logSNR", *, nfe: int | None = None, timesteps: Tensor | None = None,
               rho: float | None = None, x_T: Tensor | None = None, generator: torch.Generator | None = None,
               t_start: float | None = None, t_end: float | None = None, cond: Any = None, uncond: Any = None,
               guidance_scale: float = 1.0, dynamic_threshold: float | None = None, max_value: float = 1.0,
               **options: Any) -> Tensor:
        """Draw samples by solving from noise at ``t_start`` (default T) to ``t_end`` (default t_min).

        Parameters
        ----------
        n : number of samples (needs ``data_shape``), or the full shape ``(B, *data_shape)``.
        sampler : a name from :data:`SAMPLERS` (``"ddim"``, ``"dpm_solver"``, ``"dpm_solver++"``, ...).
        steps, grid, rho : the time grid (:func:`time_grid`): number of intervals (default 20), spacing
            (``"logSNR"``, ``"time_uniform"``, ``"time_quadratic"``, ``"karras"``) and Karras' ρ
            (default 7; only with ``grid="karras"``).
        nfe : instead of ``steps``, a budget of network evaluations: the most steps whose run costs
            at most ``nfe`` (singlestep order k costs k per step, multistep ones 1, ...).
        timesteps : instead of a named grid, any strictly decreasing 1-D tensor of times in (0, T].
        x_T : the starting noise at ``t_start`` (default: standard normal from ``generator``, times
            σ/α at t_start for schedules whose x_T is not of unit variance, VE and EDM).
        generator : the random source of x_T and of the stochastic samplers' noise (``ddim`` with
            η > 0, ``heun_edm`` with churn, ``euler_maruyama``, ``dpm_solver++_sde``): one seed, one sample.
        cond, uncond, guidance_scale, dynamic_threshold, max_value : see :class:`Denoiser`;
            with ``guidance_scale != 1`` and no ``uncond``, the null condition of training is used.
        options : passed to the sampler (e.g. ``order=3``, ``method="multistep"``, ``warmup="full"``,
            ``lower_order_final=True``, ``denoise_to_zero=True``, ``callback=...``). ``warmup="auto"``
            (the default) means ``"full"`` when ``t_start`` is given and ``"lower_order"`` otherwise.

        ``self.last_nfe`` holds the number of network evaluations of this call.
        """
        if isinstance(n, int) and not isinstance(n, bool):
            positive_int("n", n)
            if self.data_shape is None:
                raise ValueError("data_shape is unknown: pass a full shape (B, ...) or build the solver "
                                 "with data_shape=... (the Trainer records it before training)")
            shape = (n, *self.data_shape)
        elif isinstance(n, (tuple, list)) and all(type(v) is int and v >= 1 for v in n):
            shape = tuple(n)
        else:
            raise TypeError(f"n must be a positive int or a shape tuple, got {n!r}")
        fn = get_sampler(sampler)
        accepts = inspect.signature(fn).parameters
        if rho is not None and timesteps is not None:
            raise ValueError(f"rho shapes a Karras grid, not given timesteps: got rho={rho} with timesteps")
        if "warmup" in accepts and options.get("warmup", "auto") == "auto":
            # only the caller knows whether x_T is pure noise: t_start says it is not (SDEdit, img2img)
            options["warmup"] = "full" if t_start is not None else "lower_order"
        if "generator" in accepts:
            options["generator"] = generator
        first = next(iter(self.model.parameters()), next(iter(self.model.buffers()), None))
        dtype = first.dtype if first is not None and first.is_floating_point() else torch.get_default_dtype()
        if x_T is not None and tuple(x_T.shape) != shape:
            raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
        dtype, device = (x_T.dtype, x_T.device) if x_T is not None else (dtype, self.device)
        if timesteps is not None:
            if steps is not None or nfe is not None or t_start is not None or t_end is not None:
                raise ValueError("timesteps replaces steps, nfe, t_start and t_end: give one or the other")
            check_timesteps(self.schedule, timesteps)
            ts = timesteps.to(dtype=dtype, device=device)
        else:
            if steps is not None and nfe is not None:
                raise ValueError(f"give steps or nfe, not both (got steps={steps}, nfe={nfe})")
            if nfe is not None:
                steps = steps_for_nfe(sampler, nfe, self.schedule, grid, t_start, t_end, rho=rho, **options)
            ts = time_grid(self.schedule, 20 if steps is None else steps, grid, t_start, t_end, dtype=dtype,
                           device=device, rho=rho)
        if x_T is None:
            # VP noise has unit variance at T; VE and EDM noise has the variance σ² of the start
            scale = 1.0 if isinstance(self.schedule, VPSchedule) else float(self.schedule.sigma(ts[0].double()))
            x_T = scale * torch.randn(shape, generator=generator, dtype=dtype, device=device)
        if guidance_scale != 1.0 and cond is not None and uncond is None:
            uncond = self.null_like(cond)
        model = self.denoiser(cond=cond, uncond=uncond, guidance_scale=guidance_scale,
                              dynamic_threshold=dynamic_threshold, max_value=max_value)
        was_training = self.training
        self.eval()
        try:
            out = fn(model, x_T, ts, **options)
        finally:
            self.train(was_training)
        self.last_nfe = model.nfe
        return out
