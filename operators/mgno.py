"""MgNO: neural operator layers whose linear operators are multigrid V-cycles.

He, Liu, Xu, "MgNO: Efficient Parameterization of Linear Operators via Multigrid", ICLR 2024
(arXiv:2310.19809).

A layer is the paper's nonlinear operator layer

    u ← σ( W u + B u + b ),

where the bounded linear operator ``W`` between the input and output channels is one V-cycle of
a multi-channel multigrid method (the paper's ``W_Mg``). On level ℓ = 1, …, L (a grid 2^(ℓ−1)
times coarser than the input):

    u^ℓ ← u^ℓ + S^ℓ (f^ℓ − A^ℓ u^ℓ)      smoothing, ν_ℓ times (on level 1 starting from u = S f)
    u^{ℓ+1} = Π u^ℓ,  f^{ℓ+1} = R f^ℓ     restriction by stride-2 3×3 convolutions

and on the way back up ``u^{ℓ} ← u^{ℓ} + P u^{ℓ+1}`` with ``P`` a transposed convolution,
optionally followed by post-smoothing. ``A``, ``S`` are 3×3 convolutions, ``B`` a 1×1 convolution
and ``b`` a bias. There is no lifting or projection: the first layer maps the input channels
directly, and a 1×1 convolution without bias reads the output channels off the last layer.

Boundary conditions enter through the padding of every convolution: ``"dirichlet"`` pads with
zeros, ``"periodic"`` wraps around. Grids of any size work: restriction rounds odd sizes up and
prolongation is cropped back to the finer grid, so no size is refused.

Where this differs from the public code (github.com/xlliu2017/MgNO, ``models.py``):

- periodic prolongation wraps around too, whereas the public code's ``ConvTranspose2d`` pads
  with zeros in its periodic models as well; the whole layer then commutes with circular shifts
  by the coarsest spacing, exactly when ``H`` and ``W`` are divisible by ``2**(levels − 1)``
  (otherwise a coarse grid rounds up and the wrap no longer matches the fine grid's);
- the right-hand side is restricted as it is, ``f ← R f`` (the public code's default
  ``use_res=False``); its residual form ``f ← R (f − A u)`` is not offered.

The default configuration is the public code's Darcy model (``MgNO_DC``: 4 layers of 24
channels, 6 levels, one smoothing step per level and two on the coarsest): about 0.57 M
parameters, the count the paper reports.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from sciml.validation import positive_int

from .layers import check_input_2d

__all__ = ["MgNO", "VCycle"]

_PADDING = {"dirichlet": "zeros", "periodic": "circular"}


class _Prolong(nn.Module):
    """Prolongation P: a 4×4 stride-2 transposed convolution, cropped to the finer grid.

    With zero (Dirichlet) padding it is ``ConvTranspose2d(kernel 4, stride 2, padding 1)``;
    with periodic padding the coarse field is first wrapped by one cell so that the transposed
    convolution also sees its periodic neighbours, and the same window is cut out.
    """

    def __init__(self, channels: int, periodic: bool):
        super().__init__()
        self.periodic = periodic
        self.conv = nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=0 if periodic else 1,
                                       bias=False)

    def forward(self, coarse: Tensor, shape: Sequence[int]) -> Tensor:
        h, w = shape
        if self.periodic:
            # output index o of the padding-1 convolution is index o + 3 after wrapping by one cell
            return self.conv(F.pad(coarse, [1, 1, 1, 1], mode="circular"))[..., 3:3 + h, 3:3 + w]
        return self.conv(coarse)[..., :h, :w]


class VCycle(nn.Module):
    """One multi-channel V-cycle, the linear operator ``W`` of an MgNO layer.

    Parameters
    ----------
    in_channels : channels of the right-hand side ``f``.
    out_channels : channels of the solution ``u``.
    pre_smoothing : smoothing steps per level on the way down, finest first; its length is
        the number of levels.
    post_smoothing : smoothing steps on the way up, one per level except the coarsest (default
        none).
    boundary : ``"dirichlet"`` (zero padding) or ``"periodic"`` (circular padding).

    Maps ``(B, in_channels, H, W) → (B, out_channels, H, W)``; linear in its input.
    """

    def __init__(self, in_channels: int, out_channels: int, pre_smoothing: Sequence[int],
                 post_smoothing: Sequence[int] | None = None, boundary: str = "dirichlet"):
        super().__init__()
        positive_int("in_channels", in_channels)
        positive_int("out_channels", out_channels)
        pre_smoothing = _steps("pre_smoothing", pre_smoothing, first_positive=True)
        levels = len(pre_smoothing)
        post_smoothing = [0] * (levels - 1) if post_smoothing is None else _steps("post_smoothing", post_smoothing)
        if len(post_smoothing) != levels - 1:
            raise ValueError(f"post_smoothing must have one entry per level but the coarsest ({levels - 1}), "
                             f"got {post_smoothing!r}")
        if boundary not in _PADDING:
            raise ValueError(f"boundary must be one of {tuple(_PADDING)}, got {boundary!r}")
        mode = _PADDING[boundary]

        def conv(cin, cout, stride=1):
            return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False, padding_mode=mode)

        def smoothers(n):  # n steps u ← u + S (f − A u): pairs (A, S)
            return nn.ModuleList(nn.ModuleList([conv(out_channels, in_channels), conv(in_channels, out_channels)])
                                 for _ in range(n))

        self.init = conv(in_channels, out_channels)  # u¹ = S f: the first step from u = 0
        self.pre = nn.ModuleList(smoothers(n - (ell == 0)) for ell, n in enumerate(pre_smoothing))
        self.post = nn.ModuleList(smoothers(n) for n in post_smoothing)
        self.restrict_u = nn.ModuleList(conv(out_channels, out_channels, 2) for _ in range(levels - 1))  # Π
        self.restrict_f = nn.ModuleList(conv(in_channels, in_channels, 2) for _ in range(levels - 1))  # R
        self.prolong = nn.ModuleList(_Prolong(out_channels, boundary == "periodic") for _ in range(levels - 1))

    @staticmethod
    def _smooth(u: Tensor, f: Tensor, steps: nn.ModuleList) -> Tensor:
        for a, s in steps:
            u = u + s(f - a(u))  # smoothing: u ← u + S(f − A u)
        return u

    def forward(self, f: Tensor) -> Tensor:
        u = self._smooth(self.init(f), f, self.pre[0])
        states = [(u, f)]
        for ell in range(1, len(self.pre)):
            u, f = self.restrict_u[ell - 1](u), self.restrict_f[ell - 1](f)  # restriction: u ← Π u, f ← R f
            u = self._smooth(u, f, self.pre[ell])
            states.append((u, f))
        for ell in reversed(range(len(self.pre) - 1)):
            fine, f = states[ell]
            u = fine + self.prolong[ell](u, fine.shape[-2:])  # coarse-grid correction: u ← u + P u_coarse
            u = self._smooth(u, f, self.post[ell])
        return u


class MgNO(nn.Module):
    """Multigrid neural operator, ``(B, in_channels, H, W) → (B, out_channels, H, W)``.

    Parameters
    ----------
    in_channels, out_channels : channels of the input and output fields.
    hidden_channels : channels of every layer (paper's Darcy: 24).
    n_layers : number of layers σ(V-cycle(u) + 1×1 conv(u) + bias) (paper's Darcy: 4).
    pre_smoothing : smoothing steps per level of each V-cycle, finest first; its length is the
        number of levels (paper's Darcy: ``(1, 1, 1, 1, 1, 2)``, six levels).
    post_smoothing : smoothing steps on the way up, one per level except the coarsest
        (paper's Darcy: none).
    boundary : ``"dirichlet"`` (zero padding) or ``"periodic"`` (circular padding).
    activation : ``"gelu"`` (paper), ``"relu"``, ``"tanh"`` or ``"silu"``.
    """

    n_dims = 2  # spatial axes: lets OperatorSolver.sample accept one unbatched field

    ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 24, n_layers: int = 4,
                 pre_smoothing: Sequence[int] = (1, 1, 1, 1, 1, 2), post_smoothing: Sequence[int] | None = None,
                 boundary: str = "dirichlet", activation: str = "gelu"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("hidden_channels", hidden_channels), ("n_layers", n_layers)):
            positive_int(name, value)
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(self.ACTIVATIONS)}, got {activation!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        widths = [in_channels] + [hidden_channels] * n_layers  # each V-cycle checks the smoothing and boundary
        self.vcycles = nn.ModuleList(VCycle(widths[i], widths[i + 1], pre_smoothing, post_smoothing, boundary)
                                     for i in range(n_layers))
        self.local = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], kernel_size=1) for i in range(n_layers))
        self.act = self.ACTIVATIONS[activation]()
        self.readout = nn.Conv2d(hidden_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        check_input_2d(self, x, self.in_channels)
        for vcycle, local in zip(self.vcycles, self.local):
            x = self.act(vcycle(x) + local(x))  # σ(W u + B u + b), b the 1×1 conv's bias
        return self.readout(x)


def _steps(name: str, value, first_positive: bool = False) -> list[int]:
    """Smoothing counts: a sequence of non-negative ints (the pre-smoothing one non-empty, starting ≥ 1)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"{name} must be a sequence of non-negative ints, one per level, got {value!r}")
    if first_positive and (len(value) == 0 or value[0] < 1):
        raise ValueError(f"{name} must be non-empty with {name}[0] >= 1 (the first step starts the V-cycle), "
                         f"got {value!r}")
    return list(value)
