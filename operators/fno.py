"""FNO and TFNO from the neuraloperator package, with sciml's conventions.

Li et al., "Fourier Neural Operator for Parametric Partial Differential Equations", ICLR 2021;
Kossaifi et al., "Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs",
TMLR 2024 (the Tucker-factorized TFNO). The models are neuraloperator's own classes, not a
rewrite; sciml adds validation at the door and a spectral convolution that keeps its FFTs in
float32 under bf16 autocast (the FFT of a bf16 tensor is not supported on CUDA, so the plain
model fails under ``torch.autocast(dtype=torch.bfloat16)``).

``n_modes`` — the one parameter people get wrong: it is the number of Fourier modes kept *per
dimension counting both signs* of the frequency, and on the last dimension (the real FFT's
half-spectrum) only ``n_modes[-1] // 2 + 1`` are stored. ``n_modes=(16, 16)`` keeps
frequencies −8…7 along x and 0…8 along y. The FNO paper's ``modes=12`` (12 per sign along x,
12 non-negative along y) is about ``n_modes=(24, 22)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from neuralop.layers.spectral_convolution import SpectralConv
from neuralop.models import FNO as _NeuralopFNO

__all__ = ["FNO", "TFNO", "Float32SpectralConv"]


class Float32SpectralConv(SpectralConv):
    """neuraloperator's SpectralConv with its FFTs and mode mixing in float32 under autocast."""

    def forward(self, x: torch.Tensor, output_shape=None) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x, output_shape=output_shape)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float(), output_shape=output_shape)


def _check(n_modes: Sequence[int], in_channels: int, out_channels: int, hidden_channels: int) -> tuple[int, ...]:
    if isinstance(n_modes, int) or not all(isinstance(m, int) and m >= 1 for m in n_modes) or len(n_modes) == 0:
        raise ValueError(f"n_modes must be a sequence of positive integers, one per spatial dimension, got {n_modes!r}")
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return tuple(n_modes)


class FNO(_NeuralopFNO, name="sciml_fno"):
    """Fourier Neural Operator (neuraloperator's ``FNO``), ``(B, in_channels, *grid) → (B, out_channels, *grid)``.

    Parameters
    ----------
    n_modes : modes kept per spatial dimension, counting both signs (see the module docstring).
    in_channels, out_channels : channels of the input and output fields.
    hidden_channels : width of the Fourier layers.
    n_layers : number of Fourier layers (default 4).
    **kwargs : any other argument of ``neuralop.models.FNO`` (``factorization``, ``rank``,
        ``domain_padding``, ``positional_embedding``...).
    """

    def __init__(self, n_modes: Sequence[int], in_channels: int, out_channels: int, hidden_channels: int,
                 n_layers: int = 4, **kwargs):
        n_modes = _check(n_modes, in_channels, out_channels, hidden_channels)
        kwargs.setdefault("conv_module", Float32SpectralConv)
        super().__init__(n_modes=n_modes, in_channels=in_channels, out_channels=out_channels,
                         hidden_channels=hidden_channels, n_layers=n_layers, **kwargs)

    def _apply(self, fn, recurse=True):
        """Casts and moves (``.to``, ``.double()``, ``.cuda()``...) that keep the model whole.

        Two things of neuraloperator's do not follow torch's own casts: the complex spectral
        weights (``.double()`` leaves them complex64, ``.to(torch.float64)`` drops their
        imaginary part) and the coordinate grid its positional embedding caches on the first
        call (it keeps the old device and dtype). Complex tensors follow the real dtype the
        cast asks for, and the cached grids are dropped, to be rebuilt on the next call.
        """
        def cast(t):
            if not t.is_complex():
                return fn(t)
            target = fn(torch.zeros((), dtype=torch.float32, device=t.device))
            dtype = torch.complex128 if target.dtype == torch.float64 else torch.complex64
            return t.to(device=target.device, dtype=dtype)

        result = super()._apply(cast, recurse)
        for module in self.modules():
            if hasattr(module, "_grid"):  # neuralop's GridEmbedding2D / GridEmbeddingND caches
                module._grid, module._res = None, None
        return result

    # neuraloperator's BaseModel.state_dict writes a '_metadata' entry at the top of the
    # destination dict, whatever the prefix, which breaks the state_dict of any module that
    # contains the model; keep torch's behaviour
    def state_dict(self, *args, **kwargs):
        return nn.Module.state_dict(self, *args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        expected = 2 + len(self.n_modes)
        if x.dim() != expected or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects input of shape (batch, {self.in_channels}, *grid) "
                             f"with {len(self.n_modes)} grid axes, got {tuple(x.shape)}")
        return super().forward(x, **kwargs)


class TFNO(FNO, name="sciml_tfno"):
    """Tucker-factorized FNO (neuraloperator's ``TFNO``): the spectral weights as a Tucker tensor.

    Same parameters as :class:`FNO`; ``factorization`` defaults to ``"tucker"`` and ``rank`` to
    0.1 (about a tenth of the dense FNO's spectral parameters).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("factorization", "tucker")
        kwargs.setdefault("rank", 0.1)
        super().__init__(*args, **kwargs)
