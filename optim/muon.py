"""Muon: momentum orthogonalized by Newton–Schulz.

Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein, "Muon: An optimizer for hidden layers in
neural networks" (2024), https://kellerjordan.github.io/posts/muon/ ; the RMS-matching scale from
Liu et al., "Muon is Scalable for LLM Training" (2025), arXiv:2502.16982, Sec. 2.2. The update,
numbered as the lines of the blog's algorithm box:

    M_t = μ M_{t−1} + (1 − μ) g_t                       (1)
    M̃_t = μ M_t + (1 − μ) g_t           (Nesterov)      (2)
    O_t = NewtonSchulz5(M̃_t)                            (3)
    θ_t = (1 − ηλ) θ_{t−1} − η s(m, n) O_t              (4)

Equal to ``torch.optim.Muon`` (same EMA momentum, same ``adjust_lr_fn`` scales, weight decay by
the unadjusted η) on 2-D parameters, with the Newton–Schulz products in float32 on CPU where
torch uses bfloat16; beyond it: conv kernels and other N-d real tensors (as ``out × rest``
matrices), complex spectral weights (per Fourier mode or flattened), batched Newton–Schulz over
same-shaped layers, and AdamW groups for everything else.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .newton_schulz import newton_schulz_many
from .orthogonalized import OrthogonalizedOptimizer

__all__ = ["Muon"]


class Muon(OrthogonalizedOptimizer):
    """Muon (see the module docstring; parameters in :class:`~sciml.optim.orthogonalized.OrthogonalizedOptimizer`).

    Parameters
    ----------
    params : parameters or groups; 2-D and higher, except in groups with ``adamw=True``.
    lr : learning rate η (default 0.02, Jordan et al.; use ~1e-3 with ``adjust_lr_fn="match_rms_adamw"``).
    weight_decay : decoupled weight decay λ.
    momentum : μ (default 0.95).
    nesterov : Nesterov look-ahead (2) (default True).
    ns_steps, ns_coefficients, eps, ns_dtype : the Newton–Schulz iteration (3).
    adjust_lr_fn : ``"original"`` (default, as torch) or ``"match_rms_adamw"``.
    complex_mode : ``"per_mode"`` (default) or ``"flatten"``.
    adamw_betas, adamw_eps : for ``adamw=True`` groups.

    Examples
    --------
    >>> opt = Muon([{"params": hidden}, {"params": rest, "adamw": True, "lr": 3e-4}], lr=0.02)  # doctest: +SKIP
    """

    def __init__(self, params, lr: float = 0.02, weight_decay: float = 0.0, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, ns_coefficients=(3.4445, -4.7750, 2.0315),
                 eps: float = 1e-7, ns_dtype: torch.dtype | None = None, adjust_lr_fn: str = "original",
                 complex_mode: str = "per_mode", adamw_betas=(0.9, 0.999), adamw_eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_steps=ns_steps, ns_coefficients=tuple(ns_coefficients), eps=eps,
                                      ns_dtype=ns_dtype, adjust_lr_fn=adjust_lr_fn, complex_mode=complex_mode,
                                      adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps))

    def _directions(self, group: dict, params: list[Tensor], mats: list[Tensor]) -> list[Tensor]:
        return newton_schulz_many(mats, group["ns_steps"], self._ns_coefficients(group), group["eps"],
                                  group["ns_dtype"])  # (3)
