"""Newton–Schulz orthogonalization and ROOT's shape-fitted coefficients, checked on singular values."""
import pytest
import torch

from sciml.optim.newton_schulz import MUON_BAND, MUON_COEFFICIENTS, newton_schulz, singular_value_map
from sciml.optim.root import PUBLISHED_COEFFICIENTS, fit_coefficients, root_coefficients


def conditioned(*shape, cond=20.0, seed=0, dtype=torch.float64):
    """Random matrices U diag(s) Vᴴ with singular values log-spaced in [1/cond, 1]."""
    g = torch.Generator().manual_seed(seed)
    *batch, m, n = shape
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=dtype))
    V, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=dtype))
    s = torch.logspace(-torch.log10(torch.tensor(cond)).item(), 0, k, dtype=U.real.dtype)
    return (U * s.to(U.dtype)) @ V.mH


@pytest.mark.parametrize("shape", [(64, 64), (96, 24), (24, 96), (5, 32, 48)])
def test_singular_values_land_in_the_documented_band(shape):
    G = conditioned(*shape).float()
    s = torch.linalg.svdvals(newton_schulz(G))
    assert s.min() >= MUON_BAND[0] and s.max() <= MUON_BAND[1], (s.min(), s.max())


def test_gaussian_tall_and_wide_matrices_land_in_the_band():
    g = torch.Generator().manual_seed(1)
    for shape in [(128, 32), (32, 128), (3, 40, 10)]:
        s = torch.linalg.svdvals(newton_schulz(torch.randn(*shape, generator=g)))
        assert s.min() >= MUON_BAND[0] and s.max() <= MUON_BAND[1], (shape, s.min(), s.max())


def test_complex_matrices_keep_their_singular_vectors_and_land_in_the_band():
    G = conditioned(4, 16, 24, dtype=torch.complex128)
    X = newton_schulz(G.to(torch.complex64))
    assert X.dtype == torch.complex64
    s = torch.linalg.svdvals(X)
    assert s.min() >= MUON_BAND[0] and s.max() <= MUON_BAND[1]
    # the result is U p⁵(Σ) Vᴴ: the exact map applied to the exact SVD
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    S_out = singular_value_map(S / torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True))
    expected = (U * S_out.to(U.dtype).unsqueeze(-2)) @ Vh
    assert (X.to(torch.complex128) - expected).abs().max() < 1e-5


def test_float32_matches_float64_to_2e_6():
    G = conditioned(3, 48, 32)
    X64 = newton_schulz(G, dtype=torch.float64)
    X32 = newton_schulz(G.float())
    assert ((X32.double() - X64).norm() / X64.norm()) < 2e-6


def test_the_band_is_where_five_steps_send_every_sigma_above_1p6e_3():
    x = torch.logspace(torch.log10(torch.tensor(1.6e-3)).item(), 0, 100_000, dtype=torch.float64)
    y = singular_value_map(x)
    assert MUON_BAND[0] <= y.min() < MUON_BAND[0] + 0.01 and MUON_BAND[1] - 0.01 < y.max() <= MUON_BAND[1]
    assert newton_schulz(torch.zeros(4, 5)).abs().max() == 0  # exact zeros stay zero


def test_bf16_products_stay_within_the_band_widened_by_bf16_rounding():
    G = conditioned(64, 32).float()
    s = torch.linalg.svdvals(newton_schulz(G, dtype=torch.bfloat16).float())
    assert s.min() >= MUON_BAND[0] - 0.05 and s.max() <= MUON_BAND[1] + 0.05
    # complex weights (FNO spectral modes) too: the default dtype on CUDA
    Z = torch.complex(conditioned(32, 16).float(), conditioned(32, 16).float().flip(0))
    out = newton_schulz(Z, dtype=torch.bfloat16)
    s = torch.linalg.svdvals(out)
    assert out.dtype == torch.complex64 and s.min() >= MUON_BAND[0] - 0.05 and s.max() <= MUON_BAND[1] + 0.05


@pytest.mark.parametrize("shape", [(16, 16), (16, 64), (64, 256), (24, 1000)])
def test_fitted_coefficients_orthogonalize_gaussian_matrices_better_than_muons(shape):
    g = torch.Generator().manual_seed(2)
    G = torch.randn(8, *shape, generator=g, dtype=torch.float64)
    sigma = torch.linalg.svdvals(G) / torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True)
    error_muon = (singular_value_map(sigma, 5, MUON_COEFFICIENTS) - 1).abs().mean()
    error_fit = (singular_value_map(sigma, 5, fit_coefficients(*shape)) - 1).abs().mean()
    assert error_fit < 0.95 * error_muon, (error_fit, error_muon)
    # and the fitted map keeps every singular value from 1e-3 up inside [0.45, 1.4]
    y = singular_value_map(torch.logspace(-3, 0, 1000, dtype=torch.float64), 5, fit_coefficients(*shape))
    assert 0.45 < y.min() and y.max() < 1.4


def test_published_shapes_use_the_papers_coefficients_and_the_fit_lands_near_them():
    assert root_coefficients(8192, 2048) == PUBLISHED_COEFFICIENTS[(2048, 8192)]
    fitted = torch.tensor(fit_coefficients(2048, 2048))
    assert (fitted - torch.tensor(PUBLISHED_COEFFICIENTS[(2048, 2048)])).abs().max() < 0.1
    assert fit_coefficients(32, 16) == fit_coefficients(16, 32)  # one class per (min, max)
