"""Noise schedules (VP, VE, EDM) and the one time-grid helper of the samplers.

Every schedule gives ``x_t = α_t x_0 + σ_t ε``; a VP schedule has ``α_t² + σ_t² = 1`` (Ho et al.
2020, "Denoising Diffusion Probabilistic Models"; Song et al. 2021, "Score-Based Generative Modeling
through Stochastic Differential Equations", eq. 33). Every sampler works in the half-log-SNR
``λ_t = log(α_t / σ_t)`` (Lu et al. 2022, "DPM-Solver", §3.1), so a VP schedule is defined by
``log α_t`` and the inverse map ``λ → t``; ``α² = sigmoid(2λ)`` and ``σ² = sigmoid(−2λ)``.

- :class:`LinearVP`: continuous β(t) = β_min + t(β_max − β_min) on t ∈ [0, 1] (Song et al. 2021).
- :class:`CosineVP`: continuous ᾱ(t) = cos²((t + s)/(1 + s)·π/2) / cos²(s/(1 + s)·π/2)
  (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17), cut at T = 0.9946 where λ stays finite.
- :class:`DiscreteVP`: N training steps with t_n = n/N and log α piecewise linear in t
  between them (Lu et al. 2022, App. D.1); ``DiscreteVP.linear`` is DDPM's β_n = linspace(1e-4,
  0.02), ``DiscreteVP.cosine`` the discrete cosine schedule with β clipped at 0.999.

- :class:`VESchedule`: α = 1, σ(t) = σ_min (σ_max/σ_min)^t (Song et al. 2021, the VE SDE of SMLD).
- :class:`EDMSchedule`: α = 1, σ(t) = t (Karras, Aittala, Aila & Laine 2022, "Elucidating the
  Design Space of Diffusion-Based Generative Models", Table 1, "EDM").

Samplers see only α_t, σ_t, λ_t and the inverse t(λ), so every sampler runs on every schedule.
Times are floats in (0, T]; the model sees the same continuous t for every kind of schedule.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.validation import positive_int

__all__ = ["Schedule", "VPSchedule", "LinearVP", "CosineVP", "DiscreteVP", "VESchedule", "EDMSchedule",
           "get_schedule", "time_grid", "karras_sigmas", "check_timesteps", "SCHEDULES", "GRIDS"]


class Schedule:
    """Base of all schedules: subclasses define ``alpha(t)``, ``sigma(t)`` and ``t_of_lam(λ)``.

    Attributes ``T`` (largest time) and ``t_min`` (smallest time the sampler should reach).
    """

    T: float = 1.0
    t_min: float = 1e-3

    def alpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def t_of_lam(self, lam: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def lam(self, t: Tensor) -> Tensor:
        """Half-log-SNR λ_t = log α_t − log σ_t (DPM-Solver §3.1)."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def sbar(self, t: Tensor) -> Tensor:
        """σ̄_t = σ_t/α_t = e^{−λ_t}, the noise level of the scaled variable x̄ = x/α (EDM's σ)."""
        return self.sigma(t) / self.alpha(t)

    def t_of_sbar(self, sbar: Tensor) -> Tensor:
        """The time at which σ/α = ``sbar``: the inverse of :meth:`sbar`."""
        return self.t_of_lam(-torch.log(sbar))

    def train_times(self, n: int, like: Tensor) -> Tensor:
        """``n`` training times, uniform on [t_min, T] unless the schedule says otherwise."""
        return self.t_min + (self.T - self.t_min) * torch.rand(n, device=like.device, dtype=like.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(T={self.T}, t_min={self.t_min})"


class VPSchedule(Schedule):
    """Base of the VP schedules: subclasses define ``log_alpha(t)`` and ``t_of_lam(λ)``."""

    def log_alpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def t_of_lam(self, lam: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha(self, t: Tensor) -> Tensor:
        return self.log_alpha(t).exp()

    def sigma(self, t: Tensor) -> Tensor:
        # sqrt(1 − α²) through expm1 keeps precision where α → 1
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def lam(self, t: Tensor) -> Tensor:
        la = self.log_alpha(t)
        return la - 0.5 * torch.log(-torch.expm1(2.0 * la))  # λ = log α − ½ log(1 − α²)


def _t(t) -> Tensor:
    return t if isinstance(t, Tensor) else torch.as_tensor(t, dtype=torch.float64)


class LinearVP(VPSchedule):
    """Continuous linear VP: log α_t = −(β_max − β_min) t²/4 − β_min t/2 (Song et al. 2021, eq. 33)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        self.beta_min, self.beta_max, self.t_min, self.T = float(beta_min), float(beta_max), float(t_min), 1.0

    def log_alpha(self, t):
        t = _t(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def t_of_lam(self, lam):
        # solve (β1−β0) t²/2 + β0 t = log(1 + e^{−2λ}) for t ≥ 0, in the cancellation-free form
        lam = _t(lam)
        b0, db = self.beta_min, self.beta_max - self.beta_min
        tmp = 2.0 * db * torch.logaddexp(-2.0 * lam, torch.zeros_like(lam))
        return tmp / (torch.sqrt(b0**2 + tmp) + b0) / db


class CosineVP(VPSchedule):
    """Continuous cosine VP (Nichol & Dhariwal 2021, eq. 17), with T = 0.9946 as in DPM-Solver."""

    def __init__(self, s: float = 0.008, T: float = 0.9946, t_min: float = 1e-3):
        if not s > 0:
            raise ValueError(f"s must be positive, got {s}")
        if not 0 < t_min < T < 1 + 1e-12:
            raise ValueError(f"need 0 < t_min < T <= 1, got t_min={t_min}, T={T}")
        self.s, self.T, self.t_min = float(s), float(T), float(t_min)
        self._log_a0 = math.log(math.cos(self.s / (1.0 + self.s) * math.pi / 2.0))

    def log_alpha(self, t):
        t = _t(t)
        return torch.log(torch.cos((t + self.s) / (1.0 + self.s) * math.pi / 2.0)) - self._log_a0

    def t_of_lam(self, lam):
        lam = _t(lam)
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)
        return 2.0 * (1.0 + self.s) / math.pi * torch.arccos(torch.exp(log_alpha + self._log_a0)) - self.s


class DiscreteVP(VPSchedule):
    """A schedule given by N betas: ᾱ_n = Π_{i≤n}(1 − β_i) at t_n = n/N, log α piecewise linear.

    Parameters
    ----------
    betas : 1-D tensor of the N per-step variances, each in (0, 1).
    """

    def __init__(self, betas: Tensor, t_min: float | None = None):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 2:
            raise ValueError(f"betas must be a 1-D tensor of at least 2 values, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must lie in (0, 1)")
        n = betas.numel()
        self.n = n
        self.betas = betas
        self._t = torch.linspace(1.0 / n, 1.0, n, dtype=torch.float64)
        self._log_alpha = 0.5 * torch.log1p(-betas).cumsum(0)
        self.T, self.t_min = 1.0, float(t_min) if t_min is not None else 1.0 / n

    @classmethod
    def linear(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DiscreteVP":
        """DDPM's linear betas (Ho et al. 2020, §4)."""
        if not (isinstance(n, int) and n >= 2):
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        return cls(torch.linspace(beta_start, beta_end, n, dtype=torch.float64))

    @classmethod
    def cosine(cls, n: int = 1000, s: float = 0.008) -> "DiscreteVP":
        """Improved-DDPM cosine betas, β_n = 1 − ᾱ_n/ᾱ_{n−1} clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17)."""
        if not (isinstance(n, int) and n >= 2):
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        steps = torch.arange(n + 1, dtype=torch.float64) / n
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return cls((1 - abar[1:] / abar[:-1]).clamp(max=0.999))

    def log_alpha(self, t):
        t = _t(t)
        return _interp(t, self._t.to(t), self._log_alpha.to(t))

    def train_times(self, n: int, like: Tensor) -> Tensor:
        """The N training times t_n = n/N, drawn uniformly."""
        return torch.randint(1, self.n + 1, (n,), device=like.device).to(like.dtype) / self.n

    def t_of_lam(self, lam):
        lam = _t(lam)
        # log α is piecewise linear in t, so t is piecewise linear in log α: exact inverse
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)
        return _interp(log_alpha, self._log_alpha.flip(0).to(lam), self._t.flip(0).to(lam))


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation with linear extrapolation at both ends (xp increasing)."""
    idx = torch.searchsorted(xp, x.detach().contiguous()).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


class VESchedule(Schedule):
    """Variance exploding: α = 1, σ(t) = σ_min (σ_max/σ_min)^t on t ∈ (0, 1] (Song et al. 2021, VE SDE)."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, t_min: float = 1e-5):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        if not 0 < t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        self.sigma_min, self.sigma_max, self.t_min, self.T = float(sigma_min), float(sigma_max), float(t_min), 1.0
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t):
        return torch.ones_like(_t(t))

    def sigma(self, t):
        return self.sigma_min * torch.exp(_t(t) * self._log_ratio)

    def lam(self, t):
        return -(math.log(self.sigma_min) + _t(t) * self._log_ratio)

    def t_of_lam(self, lam):
        return (-_t(lam) - math.log(self.sigma_min)) / self._log_ratio


class EDMSchedule(Schedule):
    """EDM: α = 1 and σ(t) = t on [σ_min, σ_max] (Karras et al. 2022, Table 1).

    Training draws ln σ ~ N(P_mean, P_std²) (Table 1, "noise distribution"), clipped to
    [σ_min, σ_max]; sample with :func:`time_grid` ``kind="karras"`` for the paper's eq. 5 grid.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, p_mean: float = -1.2, p_std: float = 1.2):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        if not p_std > 0:
            raise ValueError(f"p_std must be positive, got {p_std}")
        self.t_min, self.T = float(sigma_min), float(sigma_max)
        self.p_mean, self.p_std = float(p_mean), float(p_std)

    def alpha(self, t):
        return torch.ones_like(_t(t))

    def sigma(self, t):
        return _t(t)

    def lam(self, t):
        return -torch.log(_t(t))

    def t_of_lam(self, lam):
        return torch.exp(-_t(lam))

    def train_times(self, n: int, like: Tensor) -> Tensor:
        z = torch.randn(n, device=like.device, dtype=like.dtype)
        return torch.exp(self.p_mean + self.p_std * z).clamp(self.t_min, self.T)


SCHEDULES = {
    "linear": LinearVP,
    "cosine": CosineVP,
    "discrete_linear": DiscreteVP.linear,
    "discrete_cosine": DiscreteVP.cosine,
    "ve": VESchedule,
    "edm": EDMSchedule,
}


def get_schedule(schedule: str | Schedule) -> Schedule:
    """A schedule by name (see :data:`SCHEDULES`) or as given."""
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str) and schedule in SCHEDULES:
        return SCHEDULES[schedule]()
    raise ValueError(f"schedule must be a Schedule or one of {sorted(SCHEDULES)}, got {schedule!r}")


GRIDS = ("logSNR", "time_uniform", "time_quadratic", "karras")


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """The ``steps + 1`` noise levels of Karras et al. 2022, eq. 5, from σ_max down to σ_min (float64):
    σ_i = (σ_max^{1/ρ} + i/N (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ."""
    positive_int("steps", steps)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho  # eq. 5


def time_grid(schedule: Schedule, steps: int, kind: str = "logSNR", t_start: float | None = None,
              t_end: float | None = None, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None, rho: float | None = None) -> Tensor:
    """The ``steps + 1`` decreasing times a sampler visits, from ``t_start`` (default T) to ``t_end``.

    ``kind``: ``"logSNR"`` (uniform in λ, DPM-Solver's choice for few steps), ``"time_uniform"``,
    ``"time_quadratic"`` (uniform in √t, DDIM's choice for CIFAR-10) — Lu et al. 2022, App. D.1 —
    or ``"karras"``: the σ̄ = σ/α = e^{−λ} levels of Karras et al. 2022, eq. 5, with exponent
    ``rho`` (default 7; given with another kind it is an error, not ignored; on
    :class:`EDMSchedule`, where σ̄ = σ = t, this is EDM's own time grid).
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    positive_int("steps", steps)
    if kind not in GRIDS:
        raise ValueError(f"kind must be one of {GRIDS}, got {kind!r}")
    if rho is not None and kind != "karras":
        raise ValueError(f"rho applies only to kind='karras', got rho={rho} with kind={kind!r}")
    t0 = schedule.T if t_start is None else float(t_start)
    t1 = schedule.t_min if t_end is None else float(t_end)
    if not 0 < t1 < t0 <= schedule.T + 1e-12:
        raise ValueError(f"need 0 < t_end < t_start <= T={schedule.T}, got t_start={t0}, t_end={t1}")
    ends = schedule.lam(torch.tensor([t0, t1], dtype=torch.float64))
    if kind == "logSNR":
        ts = schedule.t_of_lam(torch.linspace(float(ends[0]), float(ends[1]), steps + 1, dtype=torch.float64))
    elif kind == "karras":
        sbar = karras_sigmas(steps, math.exp(-float(ends[1])), math.exp(-float(ends[0])), 7.0 if rho is None else rho)
        ts = schedule.t_of_sbar(sbar)
    elif kind == "time_uniform":
        ts = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    else:
        ts = torch.linspace(math.sqrt(t0), math.sqrt(t1), steps + 1, dtype=torch.float64) ** 2
    ts[0], ts[-1] = t0, t1  # the inverse map is exact only to rounding
    return ts.to(dtype=dtype, device=device)


def check_timesteps(schedule: Schedule, ts: object) -> None:
    """A custom grid: a 1-D tensor of at least 2 strictly decreasing times in (0, T]."""
    hint = ("; times are continuous, so diffusers' integer timesteps k of N training steps are "
            "t = (k + 1)/N" if isinstance(schedule, DiscreteVP) else "")
    if not isinstance(ts, Tensor) or ts.dim() != 1 or ts.numel() < 2 or not ts.is_floating_point():
        raise ValueError(f"timesteps must be a 1-D floating-point tensor of at least 2 times, got "
                         f"{tuple(ts.shape) if isinstance(ts, Tensor) else type(ts).__name__}"
                         f"{'' if not isinstance(ts, Tensor) else f' of dtype {ts.dtype}'}{hint}")
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError("timesteps must be strictly decreasing (from noise at t≈T to data at t≈0)")
    # T compared in the grid's own dtype: a float32 grid starts at T rounded to float32, which may exceed T
    if float(ts[-1]) <= 0 or bool(ts[0] > torch.tensor(schedule.T, dtype=ts.dtype)):
        raise ValueError(f"timesteps must lie in (0, T={schedule.T}], got [{float(ts[-1])}, {float(ts[0])}]{hint}")
