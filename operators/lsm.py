"""Latent Spectral Model (LSM) for 2-D fields.

Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent Spectral Models", ICML 2023
(arXiv:2301.12664); public code github.com/thuml/Latent-Spectral-Models (``models/LSM_2D.py``).

A U-shaped multiscale encoder–decoder (the paper's Sec. 3). At every scale the feature map is
cut into patches; in each patch a few latent tokens gather the patch's pixels by
cross-attention (the *latent encoder*), the *neural spectral block* maps the tokens through a
learned combination of sin/cos basis operators, and the pixels read the transformed tokens back
by attention (the *latent decoder*). The processed features are the skip connections of the
decoder. The comments below name these steps; the paper's equation numbers could not be
checked offline, so they are not quoted.

Grids of any size are accepted: the lifted field is zero-padded at the far edges to a multiple
of ``patch_size · 2**n_levels`` (so that every scale is divided into whole patches) and the
padding is cropped before the projection. On the FNO Darcy grid (85², patch 6, 4 levels) this
is the reference configuration's padding of 11 (85 → 96). The padding can cost: with patch 6
and 4 levels, 141² is padded to 192² (1.85× the points), where patch 3 needs only 144². The
reference's ``exp_darcy.py`` (as read at commit 4af9567) hard-codes patch 3 with the same
padding of 11; its ``scripts/darcy_lsm.sh`` passes 6 (:data:`PAPER_CONFIGS` follows the script).

One difference from the public code: the 1×1 convolution of the latent encoder yields the keys
and the values as its first and second halves of channels (``chunk``), where the reference
interleaves them (channel ``2c`` a key, ``2c + 1`` a value). The parameter count is the same,
but the reference's checkpoints do not load as they are (their ``encoder_attn`` rows must be
de-interleaved first).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciml.validation import positive_int

from .layers import check_input_2d, grid_coordinates

__all__ = ["LSM", "NeuralSpectralBlock2d", "PAPER_CONFIGS"]

# the public code's 2-D configurations per problem (scripts/*_lsm.sh); all use 12 bases, 4 tokens
PAPER_CONFIGS = {
    "darcy": dict(width=64, patch_size=(6, 6)),  # 85² → 96²: about 19.2 M parameters
    "navier_stokes": dict(width=64, patch_size=(4, 4)),
    "pipe": dict(width=48, patch_size=(9, 9)),
    "elasticity": dict(width=32, patch_size=(3, 3)),
    "airfoil": dict(width=32, patch_size=(14, 4)),
}


def _patch_pair(patch_size) -> tuple[int, int]:
    """``patch_size`` as ``(p_h, p_w)``: a positive int or a pair of them."""
    patch = (patch_size, patch_size) if isinstance(patch_size, int) and not isinstance(patch_size, bool) \
        else tuple(patch_size) if isinstance(patch_size, Sequence) else ()
    if len(patch) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in patch):
        raise ValueError(f"patch_size must be a positive int or a pair of them, got {patch_size!r}")
    return patch


class _DoubleConv(nn.Sequential):
    """(3×3 conv → BatchNorm → ReLU) × 2: the convolutions of each scale of the U-Net."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        mid = mid_channels or out_channels
        super().__init__(
            nn.Conv2d(in_channels, mid, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, out_channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
        )


class NeuralSpectralBlock2d(nn.Module):
    """Patchify, project to latent tokens, apply the neural spectral block, project back.

    Parameters
    ----------
    width : channels ``C`` of the feature map (divisible by ``n_heads``).
    num_basis : number of frequencies ``k = 0, 1/K, …, (K−1)/K`` of the sin/cos basis.
    num_token : latent tokens per patch and head.
    patch_size : an int or ``(p_h, p_w)``; the grid must be divisible by it.
    n_heads : attention heads (8 in the paper).

    Maps ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(self, width: int, num_basis: int, num_token: int, patch_size: int | Sequence[int],
                 n_heads: int = 8):
        super().__init__()
        for name, value in (("width", width), ("num_basis", num_basis), ("num_token", num_token),
                            ("n_heads", n_heads)):
            positive_int(name, value)
        if width % n_heads:
            raise ValueError(f"width must be divisible by n_heads={n_heads}, got width={width}")
        self.width, self.num_basis, self.num_token, self.n_heads = width, num_basis, num_token, n_heads
        self.patch_size = _patch_pair(patch_size)
        # frequencies of the basis, ω_k = k / K; a buffer so it follows the module's device
        self.register_buffer("modes", torch.arange(num_basis, dtype=torch.float32) / num_basis, persistent=False)
        # per-channel weights of the 2K basis operators, and the learned latent queries
        self.weights = nn.Parameter(torch.rand(width, 2 * num_basis) / width)
        self.latent = nn.Parameter(torch.rand(n_heads, num_token, width // n_heads) / width)
        self.encoder_attn = nn.Conv2d(width, 2 * width, kernel_size=1)  # keys and values of the pixels
        self.decoder_attn = nn.Conv2d(width, width, kernel_size=1)  # queries of the pixels

    def _heads(self, x: Tensor) -> Tensor:
        """(N, C, h, w) → (N, heads, h·w, C/heads)."""
        n, c = x.shape[:2]
        return x.reshape(n, self.n_heads, c // self.n_heads, -1).transpose(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        ph, pw = self.patch_size
        if h % ph or w % pw:
            raise ValueError(f"the grid must be divisible by patch_size={self.patch_size}, got {h}×{w}")
        # patchify: every patch becomes its own sequence of ph·pw pixels
        x = x.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, ph, pw)
        # (1) latent encoder: tokens T ← T + softmax(T Kᵀ) V over the patch's pixels
        k, v = self.encoder_attn(x).chunk(2, dim=1)
        queries = self.latent.expand(x.shape[0], -1, -1, -1)
        tokens = queries + F.scaled_dot_product_attention(queries, self._heads(k), self._heads(v), scale=1.0)
        tokens = tokens.transpose(2, 3).reshape(x.shape[0], c, self.num_token)  # (N, C, tokens)
        # (2) neural spectral block: T ← T + Σ_k w_k sin(ω_k π T) + w'_k cos(ω_k π T)
        phase = math.pi * tokens[..., None] * self.modes
        basis = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)  # (N, C, tokens, 2K)
        tokens = tokens + torch.einsum("nctm,cm->nct", basis, self.weights)
        # (3) latent decoder: pixels ← pixels + softmax(Q Tᵀ) T
        tokens = tokens.reshape(x.shape[0], self.n_heads, c // self.n_heads, self.num_token).transpose(2, 3)
        out = F.scaled_dot_product_attention(self._heads(self.decoder_attn(x)), tokens, tokens, scale=1.0)
        x = x + out.transpose(2, 3).reshape(x.shape)
        # de-patchify
        return x.reshape(b, h // ph, w // pw, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class LSM(nn.Module):
    """Latent Spectral Model, ``(B, in_channels, H, W) → (B, out_channels, H, W)``.

    Parameters
    ----------
    in_channels, out_channels : channels of the input and output fields.
    width : channels at the finest scale (``d_model``; 64 in the paper's Darcy configuration,
        which then has about 19.2 M parameters); channels double at every coarser scale.
    num_basis : basis frequencies of the neural spectral block (paper: 12).
    num_token : latent tokens per patch and head (paper: 4).
    patch_size : patch size at every scale, an int or ``(p_h, p_w)``; the paper chooses it per
        problem (Darcy 6, Navier–Stokes 4, elasticity 3: see :data:`PAPER_CONFIGS`, e.g.
        ``LSM(1, 1, **PAPER_CONFIGS["darcy"])``).
    n_levels : number of 2× downsamplings of the U-Net (paper: 4, five scales).
    n_heads : attention heads (paper: 8); ``width`` must be divisible by it.
    projection_channels : hidden width of the pointwise output MLP (paper: 128).

    The input is concatenated with the (x, y) coordinates on ``[0, 1]²`` before the lifting,
    as in the reference code.
    """

    n_dims = 2  # spatial axes: lets OperatorSolver.sample accept one unbatched field

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, num_basis: int = 12,
                 num_token: int = 4, patch_size: int | Sequence[int] = 6, n_levels: int = 4, n_heads: int = 8,
                 projection_channels: int = 128):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width),
                            ("num_basis", num_basis), ("num_token", num_token), ("n_levels", n_levels),
                            ("n_heads", n_heads), ("projection_channels", projection_channels)):
            positive_int(name, value)
        patch = _patch_pair(patch_size)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.patch_size, self.n_levels = patch, n_levels

        # channels per scale: width·2^s, the coarsest kept at width·2^(L−1) (the bilinear U-Net)
        chans = [width * 2 ** s for s in range(n_levels)] + [width * 2 ** (n_levels - 1)]
        self.lift = nn.Conv2d(in_channels + 2, width, kernel_size=1)
        self.inc = _DoubleConv(width, width)
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), _DoubleConv(chans[s], chans[s + 1]))
                                  for s in range(n_levels))
        # decoder at scale s: upsampled coarser features ++ processed skip (c_s each) → c_{s−1}
        self.up = nn.ModuleList(_DoubleConv(2 * chans[s], chans[max(s - 1, 0)], chans[s]) for s in range(n_levels))
        self.outc = nn.Conv2d(width, width, kernel_size=1)
        self.process = nn.ModuleList(NeuralSpectralBlock2d(c, num_basis, num_token, patch, n_heads) for c in chans)
        self.project = nn.Sequential(nn.Conv2d(width, projection_channels, kernel_size=1), nn.GELU(),
                                     nn.Conv2d(projection_channels, out_channels, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        check_input_2d(self, x, self.in_channels)
        h, w = x.shape[-2:]
        z = self.lift(torch.cat([x, grid_coordinates(x)], dim=1))
        # pad so that every scale splits into whole patches; cropped again below
        mh, mw = (p * 2 ** self.n_levels for p in self.patch_size)
        z = F.pad(z, [0, -w % mw, 0, -h % mh])
        skips = [self.inc(z)]
        for down in self.down:
            skips.append(down(skips[-1]))
        z = self.process[-1](skips[-1])
        for s in reversed(range(self.n_levels)):
            z = F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=True)
            z = self.up[s](torch.cat([self.process[s](skips[s]), z], dim=1))
        z = self.outc(z)[..., :h, :w]
        return self.project(z)
