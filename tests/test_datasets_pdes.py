"""Darcy discretization, GRF sampler and direct solver: checked against numbers."""
import math

import numpy as np
import pytest
import torch

from sciml.datasets import Darcy, get_linear_solver, get_pde, grf, solve_direct


def _manufactured(n):
    """a = 1 + ½ sin(2πx) cos(πy), u = x sin(πx) sin(πy) and f = −∇·(a∇u) on the nodes."""
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    pi = math.pi
    sx, cx, sy, cy = torch.sin(pi * X), torch.cos(pi * X), torch.sin(pi * Y), torch.cos(pi * Y)
    a = 1 + 0.5 * torch.sin(2 * pi * X) * cy
    a_x = pi * torch.cos(2 * pi * X) * cy
    a_y = -0.5 * pi * torch.sin(2 * pi * X) * sy
    u = X * sx * sy
    u_x = (sx + pi * X * cx) * sy
    u_xx = (2 * pi * cx - pi ** 2 * X * sx) * sy
    u_y = pi * X * sx * cy
    u_yy = -pi ** 2 * X * sx * sy
    f = -(a_x * u_x + a * u_xx + a_y * u_y + a * u_yy)
    return a, f, u


def test_darcy_converges_at_second_order():
    darcy = Darcy()
    sizes = [17, 33, 65, 129]
    errors = []
    for n in sizes:
        a, f, u = _manufactured(n)
        A, b = darcy.assemble(a, f)
        result = solve_direct(A, b, rtol=1e-10)
        assert result.converged and result.residual < 1e-10
        errors.append(float((darcy.solution_field(result.x, n) - u).abs().max()))
    h = [1 / (n - 1) for n in sizes]
    order = np.polyfit(np.log(h), np.log(errors), 1)[0]
    assert abs(order - 2) < 0.15, (order, errors)
    assert errors[-1] < 1e-4


def _reference_matrix(a):
    """Loop-by-loop five-point flux-form matrix, eq. (2)–(3) of darcy.py, written naively."""
    n = a.shape[0]
    m = n - 2
    h2 = 1 / (n - 1) ** 2
    A = np.zeros((m * m, m * m))
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            p = (i - 1) * m + (j - 1)
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                face = 0.5 * (a[i, j] + a[i + di, j + dj])
                A[p, p] += face / h2
                ii, jj = i + di, j + dj
                if 1 <= ii <= n - 2 and 1 <= jj <= n - 2:
                    A[p, (ii - 1) * m + (jj - 1)] -= face / h2
    return A


def test_assembly_matches_hand_built_reference_and_is_spd():
    a = Darcy().sample_coefficients(1, 6, torch.Generator().manual_seed(3))[0]  # 4×4 interior
    a = a * torch.linspace(1, 2, 6, dtype=torch.float64)[None, :]  # break any symmetry
    A, b = Darcy(forcing=2.5).assemble(a)
    assert A.layout == torch.sparse_csr and A.dtype == torch.float64 and A.shape == (16, 16)
    dense = A.to_dense().numpy()
    np.testing.assert_allclose(dense, _reference_matrix(a.numpy()), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(dense, dense.T)
    assert np.linalg.eigvalsh(dense).min() > 0
    np.testing.assert_array_equal(b.numpy(), np.full(16, 2.5))


def test_assembly_of_a_float32_field_and_a_tensor_forcing():
    darcy = Darcy()
    a = torch.rand(5, 5, generator=torch.Generator().manual_seed(0)) + 0.5
    f = torch.arange(25, dtype=torch.float32).view(5, 5)
    A32, b = darcy.assemble(a, f)
    A64, _ = darcy.assemble(a.double())
    np.testing.assert_array_equal(A32.to_dense().numpy(), A64.to_dense().numpy())
    np.testing.assert_array_equal(b.numpy(), f[1:-1, 1:-1].reshape(-1).double().numpy())


def _cosine_coefficients(u):
    """KL coefficients of fields (n, res, res): projection on the normalized Neumann cosines
    with the trapezoid weights, under which the node cosines are exactly orthogonal (DCT-I)."""
    res = u.shape[-1]
    x = torch.arange(res, dtype=torch.float64) / (res - 1)
    k = torch.arange(res, dtype=torch.float64)
    C = torch.cos(math.pi * x[:, None] * k[None, :]) * torch.where(k == 0, 1.0, math.sqrt(2))
    w = torch.full((res,), 1 / (res - 1), dtype=torch.float64)
    w[0] = w[-1] = 0.5 / (res - 1)
    gram = C.T @ (w[:, None] * C)
    np.testing.assert_allclose(gram.numpy(), np.diag(np.diag(gram.numpy())), atol=1e-12)
    proj = C.T @ (w[:, None] * u) @ (w[:, None] * C)
    return proj / (torch.diag(gram)[:, None] * torch.diag(gram)[None, :])


def test_grf_spectrum_matches_the_covariance():
    n, res, alpha, tau = 4000, 33, 2.0, 3.0
    u = grf(n, res, alpha=alpha, tau=tau, generator=torch.Generator().manual_seed(1))
    assert u.shape == (n, res, res) and u.dtype == torch.float64
    coef = _cosine_coefficients(u)
    k = torch.arange(res, dtype=torch.float64)
    variance = (coef ** 2).mean(0)
    sigma2 = tau ** (2 * alpha - 2)
    expected = sigma2 * (math.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau ** 2) ** -alpha
    assert float(coef[:, 0, 0].abs().max()) < 1e-12  # mean zero: no k = 0 mode
    low = [(i, j) for i in range(5) for j in range(5) if (i, j) != (0, 0)]
    deviation = np.array([float(variance[i, j] / expected[i, j]) - 1 for i, j in low])
    # The variance estimate has relative standard error sqrt(2 / n) ≈ 2.2%.
    assert np.abs(deviation).max() < 0.10, deviation
    assert abs(deviation.mean()) < 3 * math.sqrt(2 / n / len(low)) + 0.01
    # The default amplitude is the FNO recipe's: σ² = τ^(2α−2) = 9.
    np.testing.assert_allclose(expected[0, 1], 9 * (math.pi ** 2 + 9) ** -2)


def test_grf_refines_the_same_field_on_finer_grids():
    coarse = _cosine_coefficients(grf(3, 9, generator=torch.Generator().manual_seed(4)))
    fine = _cosine_coefficients(grf(3, 33, generator=torch.Generator().manual_seed(4)))
    torch.testing.assert_close(fine[:, :9, :9], coarse, rtol=0, atol=1e-12)
    assert float(fine[:, 9:, :].abs().max()) > 0


def test_grf_is_reproducible_and_dtype_follows():
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    u64 = grf(3, 9, generator=g())
    np.testing.assert_array_equal(u64.numpy(), grf(3, 9, generator=g()).numpy())
    u32 = grf(3, 9, generator=g(), dtype=torch.float32)
    assert u32.dtype == torch.float32
    np.testing.assert_array_equal(u32.numpy(), u64.float().numpy())
    assert not torch.equal(u64, grf(3, 9, generator=torch.Generator().manual_seed(6)))


def test_binary_and_lognormal_coefficients():
    g = torch.Generator().manual_seed(2)
    field = Darcy().sample_fields(4, 17, g)
    a = Darcy(a_high=12.0, a_low=3.0).coefficient(field)
    np.testing.assert_array_equal(a.numpy(), np.where(field.numpy() >= 0, 12.0, 3.0))
    assert 0.2 < float((a == 12).double().mean()) < 0.8
    np.testing.assert_allclose(Darcy(coefficient="lognormal").coefficient(field).numpy(),
                               np.exp(field.numpy()))


def test_solution_field_has_zero_boundary():
    x = torch.arange(1.0, 10.0)
    u = Darcy().solution_field(x, 5)
    assert u.shape == (5, 5)
    np.testing.assert_array_equal(u[1:-1, 1:-1].numpy(), x.view(3, 3).numpy())
    assert float(u[0].abs().sum() + u[-1].abs().sum() + u[:, 0].abs().sum()
                 + u[:, -1].abs().sum()) == 0


def test_direct_solver_reports_true_residual_and_failure():
    a = Darcy().sample_coefficients(1, 9, torch.Generator().manual_seed(0))[0]
    A, b = Darcy().assemble(a)
    good = get_linear_solver("direct")(A, b, rtol=1e-8, x0=None, maxiter=3, M=None)
    dense = A.to_dense()
    true = float(torch.linalg.norm(b - dense @ good.x) / torch.linalg.norm(b))
    assert good.converged and good.residual == pytest.approx(true, abs=1e-15)
    assert good.x.dtype == b.dtype and good.iterations == 0 and good.matvecs == 1
    assert good.seconds > 0
    # An unreachable tolerance must be reported, not hidden.
    assert not solve_direct(A, b, rtol=1e-30).converged
    assert solve_direct(dense, b).residual < 1e-12


@pytest.mark.parametrize("call, error, words", [
    (lambda: Darcy().assemble(torch.ones(4, 5)), ValueError, "shape (N, N)"),
    (lambda: Darcy().assemble(torch.ones(2, 4, 4)), ValueError, "got (2, 4, 4)"),
    (lambda: Darcy().assemble(torch.ones(2, 2)), ValueError, "resolution must be >= 3"),
    (lambda: Darcy().assemble(torch.full((5, 5), float("nan"))), ValueError, "finite"),
    (lambda: Darcy().assemble(-torch.ones(5, 5)), ValueError, "> 0"),
    (lambda: Darcy().assemble(torch.ones(5, 5), torch.ones(4, 4)), ValueError, "f must have"),
    (lambda: Darcy().assemble(np.ones((5, 5))), TypeError, "ndarray"),
    (lambda: Darcy(coefficient="uniform"), ValueError, "'uniform'"),
    (lambda: Darcy(a_low=0.0), ValueError, "a_low"),
    (lambda: get_pde("foo"), ValueError,
     "unknown PDE 'foo'; expected one of: convection_diffusion, convection_diffusion3d, "
     "darcy, darcy3d, heat, helmholtz, helmholtz3d, poisson"),
    (lambda: get_pde("darcy", viscosity=1.0), ValueError, "viscosity"),
    (lambda: get_linear_solver("not_a_solver"), ValueError, "'not_a_solver'"),
    (lambda: grf(0, 8), ValueError, "n_samples must be >= 1, got 0"),
    (lambda: grf(2, 8, tau=-1.0), ValueError, "tau"),
    (lambda: grf(2, 8.0), TypeError, "resolution"),
    (lambda: solve_direct(torch.eye(3).to_sparse_csr(), torch.ones(4)), ValueError, "(3,)"),
    (lambda: solve_direct(torch.eye(3), torch.ones(3), rtol=-1.0), ValueError, "rtol"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_assembly_and_grf_match_cpu():
    u_cpu = grf(4, 33, generator=torch.Generator().manual_seed(7))
    u_gpu = grf(4, 33, generator=torch.Generator().manual_seed(7), device="cuda")
    assert u_gpu.device.type == "cuda"
    torch.testing.assert_close(u_gpu.cpu(), u_cpu, rtol=0, atol=1e-12)
    a = Darcy(coefficient="lognormal").coefficient(u_cpu[0])
    A_cpu, b_cpu = Darcy().assemble(a)
    A_gpu, b_gpu = Darcy().assemble(a.cuda())
    assert A_gpu.device.type == "cuda" and A_gpu.layout == torch.sparse_csr
    torch.testing.assert_close(A_gpu.to_dense().cpu(), A_cpu.to_dense(), rtol=1e-15, atol=0)
    torch.testing.assert_close(b_gpu.cpu(), b_cpu)
    result = solve_direct(A_gpu, b_gpu)
    assert result.x.device.type == "cuda" and result.converged
