"""UniPC: Zhao, Bai, Rao, Zhou & Lu 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
Sampling of Diffusion Models" (NeurIPS), data-prediction form.

With λ the half-log-SNR, h = λ_t − λ_s, m₀ = x̂₀(x_s) and earlier data predictions m_i at
r_i = (λ_{s_i} − λ_s)/h, D_i = (m_i − m₀)/r_i:

- UniP-p (predictor): x̃_t = (σ_t/σ_s) x_s − α_t φ₁ m₀ − α_t B(h) Σ_{i<p} a_i D_i,
  φ₁ = e^{−h} − 1, with a = R_{p−1}⁻¹ g: R_{p−1}[k, i] = r_i^k and g_k = k!·φ_{k+1}(h)/B(h)
  (φ_{k+1} the recursively defined exponential-integrator functions, φ_{k+1} = φ_k/(−h) − 1/k!);
  for p = 2 the paper fixes a = 1/2.
- UniC-p (corrector): once x̂₀(x̃_t) = m_t is evaluated, the same step is redone
  with D_p = m_t − m₀ at r = 1 added and weights c = R_p⁻¹ g (c = 1/2 for p = 1), which raises the
  order by one at no extra evaluation: m_t is the next step's m₀.
- B(h) = −h (``variant="bh1"``) or e^{−h} − 1 (``"bh2"``).

UniPC of ``order`` p thus converges with order p + 1 (the paper's claim; measured here). The
coefficients follow diffusers' ``UniPCMultistepScheduler`` (which cites the same paper) and match
it step for step (tests/test_diffusion_diffusers.py); equation, algorithm and theorem numbers are
not cited because they could not be checked against the paper's text. The last step is not corrected (that would cost one more evaluation).
A ``callback`` sees the predictor's x̃ (as diffusers' ``prev_sample``); a tensor it returns
replaces x̃ and that step is left uncorrected, since the corrector rebuilds x from the step's
start. The first steps use orders 1, 2, … as there, or, with ``warmup="full"`` (:mod:`.options`), the
first p − 1 steps are Runge–Kutta steps of order min(p + 1, 4) in σ̄ (:func:`.pndm.runge_kutta`),
which keeps order p + 1 (p ≤ 3) from a start below T.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import Denoiser, check_inputs
from .options import check_order, finish, notify, resolve_warmup, step_order
from .pndm import runge_kutta

__all__ = ["unipc"]

VARIANTS = ("bh1", "bh2")


def _weights(rks: list[Tensor], h: Tensor, variant: str) -> tuple[Tensor, Tensor, Tensor]:
    """R (k, i) = r_i^k, g_k = k!·φ_{k+1}/B(h), and B(h), for the nodes ``rks`` (the last is 1)."""
    hh = -h
    h_phi_k = torch.expm1(hh) / hh - 1  # the first term of the φ_k recursion
    fact = 1
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    r = torch.stack(rks)
    rows, g = [], []
    for k in range(1, len(rks) + 1):
        rows.append(r ** (k - 1))
        g.append(h_phi_k * fact / b_h)
        fact *= k + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    return torch.stack(rows), torch.stack(g), b_h


def _update(x, m0, ds, coeffs, s_s, a_t, s_t, h, b_h):
    out = (s_t / s_s) * x - a_t * torch.expm1(-h) * m0
    if ds:
        out = out - a_t * b_h * sum(c * d for c, d in zip(coeffs, ds))
    return out


@torch.no_grad()
def unipc(model: Denoiser, x: Tensor, ts: Tensor, *, order: int = 2, variant: str = "bh2", warmup: str = "auto",
          lower_order_final: bool = False, denoise_to_zero: bool = False,
          callback: Callable[[dict], Tensor | None] | None = None) -> Tensor:
    """UniPC (UniP-p with UniC) of ``order`` p = 1–3 (convergence order p + 1), 1 NFE per step."""
    check_inputs(model, x, ts)
    check_order(order, (1, 2, 3))
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    full = resolve_warmup(warmup, model, ts)
    sch = model.schedule
    ts = ts.to(x.dtype)
    lam, alpha, sigma = sch.lam(ts), sch.alpha(ts), sch.sigma(ts)
    steps = len(ts) - 1
    hist: list = []  # (λ_i, x̂₀_i), oldest first
    prev = None  # (x_s, p used) of the last predictor step, for the corrector
    for i in range(steps):
        m_new = model.x0(x, ts[i])
        if prev is not None:  # UniC: redo the last step with m_new at r = 1
            x_s, p = prev
            l0, m0 = hist[-1]
            h = lam[i] - l0
            rks = [(hist[-1 - j][0] - l0) / h for j in range(1, p)] + [torch.ones_like(h)]
            ds = [(hist[-1 - j][1] - m0) / rks[j - 1] for j in range(1, p)] + [m_new - m0]
            big_r, g, b_h = _weights(rks, h, variant)
            c = torch.tensor([0.5], dtype=x.dtype) if p == 1 else torch.linalg.solve(big_r, g)
            x = _update(x_s, m0, ds, c, sigma[i - 1], alpha[i], sigma[i], h, b_h)
        hist = (hist + [(lam[i], m_new)])[-order:]
        if full and i < order - 1:  # full-order start: no predictor, hence no corrector next
            eps = (x - alpha[i] * m_new) / sigma[i]
            x, prev = runge_kutta(model, x, ts[i], ts[i + 1], min(order + 1, 4), eps), None
            x = notify(callback, {"i": i, "t": ts[i + 1], "x": x, "denoised": m_new}, model)
            continue
        p = step_order(i, steps + denoise_to_zero, order, lower_order_final)
        l0, m0 = hist[-1]
        h = lam[i + 1] - l0
        rks = [(hist[-1 - j][0] - l0) / h for j in range(1, p)] + [torch.ones_like(h)]
        ds = [(hist[-1 - j][1] - m0) / rks[j - 1] for j in range(1, p)]
        big_r, g, b_h = _weights(rks, h, variant)
        if not ds:
            a = []
        else:  # the paper fixes a = 1/2 for p = 2
            a = torch.tensor([0.5], dtype=x.dtype) if p == 2 else torch.linalg.solve(big_r[:-1, :-1], g[:-1])
        prev_x, x_pred = x, _update(x, m0, ds, a, sigma[i], alpha[i + 1], sigma[i + 1], h, b_h)  # UniP
        x = notify(callback, {"i": i, "t": ts[i + 1], "x": x_pred, "denoised": m_new}, model)
        # the corrector would rebuild x from x_s: a corrected x from the callback stands uncorrected
        prev = (prev_x, p) if x is x_pred else None
    return finish(model, x, ts[-1], denoise_to_zero)
