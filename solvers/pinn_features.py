"""InputFeatures: what a PINN's network sees of its scaled coordinates.

Two maps, each on its own coordinates, concatenated:

- exact periodicity, Dong & Ni 2021, "A method for representing periodic functions and enforcing
  exactly periodic boundary conditions with deep neural networks" (J. Comput. Phys. 435, 110242):
  a coordinate z ∈ [−1, 1] whose interval is one period enters as (cos πz, sin πz). Every
  function of these features is periodic with all its derivatives, so the periodic boundary
  condition holds exactly and its loss term drops out;
- random Fourier features, Tancik et al. 2020, "Fourier features let networks learn high frequency
  functions in low dimensional domains" (NeurIPS), with Gaussian B; for PINNs Wang, Wang &
  Perdikaris 2021, "On the eigenvector bias of Fourier feature networks: from regression to
  solving multi-scale PDEs with physics-informed neural networks" (CMAME 384, 113938), whose form
  (no 2π: σ here is 2π times Tancik et al.'s) is used: γ(z) = [cos zB, sin zB] for the row z of k
  coordinates and B ∈ R^{k×m} drawn once from N(0, σ²). A tanh MLP of z fits
  frequencies much above 1 only slowly (spectral bias: the neural tangent kernel's eigenvalues
  decay fast with frequency); one of γ(z) starts with frequencies around σ.

The coordinates that are neither periodic nor given Fourier features pass through unchanged.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from sciml.validation import positive_int

__all__ = ["InputFeatures"]


class InputFeatures(nn.Module):
    """``(n, dim)`` scaled coordinates in [−1, 1] → ``(n, out_features)`` network inputs.

    Parameters
    ----------
    dim : number of coordinates.
    periodic : indices of the coordinates whose interval is one period (→ cos πz, sin πz).
    fourier_scale : σ of the Gaussian frequencies B for the other coordinates, or None to pass
        them through.
    fourier_count : m, the number of frequencies (2m features).
    seed : seed of B (B is a buffer: saved with the model, so a resumed run sees the same B).
    """

    def __init__(self, dim: int, periodic: Sequence[int] = (), fourier_scale: float | None = None,
                 fourier_count: int = 32, seed: int | None = 0):
        super().__init__()
        self.dim = positive_int("dim", dim)
        m = positive_int("fourier_count", fourier_count)
        periodic = tuple(periodic)
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < dim for i in periodic) \
                or len(set(periodic)) != len(periodic):
            raise ValueError(f"periodic must be distinct coordinate indices in [0, {dim}), got {periodic!r}")
        self.periodic = periodic
        self.rest = tuple(i for i in range(dim) if i not in periodic)
        # how forward reads the columns: a run of consecutive indices as a slice (a view, no copy)
        self._periodic_cols = _columns(periodic)
        self._rest_cols = _columns(self.rest)
        if fourier_scale is not None:
            if isinstance(fourier_scale, bool) or not isinstance(fourier_scale, (int, float)) \
                    or not (fourier_scale > 0 and math.isfinite(fourier_scale)):
                raise ValueError(f"fourier_scale must be a positive finite number or None, got {fourier_scale!r}")
            if not self.rest:
                raise ValueError("fourier_scale needs a coordinate that is not periodic; all of them are")
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            B = torch.randn(len(self.rest), m, generator=gen, dtype=torch.float64)
            self.register_buffer("B", B * float(fourier_scale))
        else:
            self.B = None
        self.out_features = 2 * len(periodic) + (2 * self.B.shape[1] if self.B is not None else len(self.rest))

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must have shape (n, {self.dim}), got {tuple(z.shape)}")
        if not self.periodic and self.B is None:
            return z  # no feature asked for: the coordinates themselves, not a copy
        parts = []
        if self.periodic:
            # Dong & Ni 2021: one period of the interval is 2π
            angle = math.pi * z[:, self._periodic_cols]
            parts += [torch.cos(angle), torch.sin(angle)]
        if self.rest:
            if self.B is None:
                parts.append(z[:, self._rest_cols])  # a view: the cat below copies it once
            else:
                # all coordinates: z itself; else a contiguous copy, so the product runs as before
                rest = z if not self.periodic else z[:, list(self.rest)]
                proj = rest @ self.B.to(rest.device, rest.dtype)  # γ(z) = [cos zB, sin zB]
                parts += [torch.cos(proj), torch.sin(proj)]
        return torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        fourier = "none" if self.B is None else f"{self.B.shape[1]} frequencies"
        return f"dim={self.dim}, periodic={self.periodic}, fourier={fourier}"


def _columns(indices: tuple[int, ...]) -> slice | list[int]:
    """``z[:, _columns(indices)]`` is ``z[:, list(indices)]``; a view where the indices are consecutive."""
    if indices and indices == tuple(range(indices[0], indices[-1] + 1)):
        return slice(indices[0], indices[-1] + 1)
    return list(indices)
