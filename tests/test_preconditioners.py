"""Preconditioners (sciml.datasets.krylov): Jacobi against the dense diagonal, Chebyshev and
the geometric multigrid V-cycle as symmetric positive definite operators, multigrid-CG
iterations nearly independent of the resolution on variable-coefficient Darcy, interpolation
exact on bilinear functions, pyamg and ILU on the CPU, and the builder registry."""
import os

import numpy as np
import pytest
import torch

from sciml.datasets.krylov import (PRECONDITIONERS, block_diagonal, cg, cg_batched, chebyshev,
                                   gmres, jacobi, multigrid)
from sciml.datasets.fdm import five_point_matrices, flux_form_couplings
from sciml.datasets.krylov.multigrid import _galerkin, interpolation
from sciml.datasets.pdes import Darcy

pytestmark = pytest.mark.usefixtures("one_thread")


def _darcy(nodes, kind="binary", seed=0):
    darcy = Darcy(coefficient=kind)
    a = darcy.sample_coefficients(1, nodes, generator=torch.Generator().manual_seed(seed))
    return darcy.assemble(a[0])


def _as_dense_operator(apply, n):
    """The matrix of a linear map, column by column (rows of the identity in one block)."""
    return apply(torch.eye(n, dtype=torch.float64)).T


def test_jacobi_is_the_inverse_diagonal():
    A, b = _darcy(12)
    M = jacobi(A, omega=0.5)
    dense = A.to_dense()
    assert torch.allclose(M(b), 0.5 * b / dense.diagonal())
    block = torch.stack([b, 2 * b])
    assert torch.allclose(M(block), 0.5 * block / dense.diagonal())


@pytest.mark.parametrize("build", [chebyshev, lambda A: multigrid(A, grid_shape=(13, 13))])
def test_polynomial_and_multigrid_are_spd_operators(build):
    A, b = _darcy(15, kind="lognormal")
    n = A.shape[0]
    apply = build(A)
    block = torch.stack([b, -2 * b])                   # a block of right-hand sides, row-wise
    assert torch.allclose(apply(block), torch.stack([apply(b), apply(-2 * b)]))
    M = _as_dense_operator(apply, n)
    assert torch.allclose(M, M.T, atol=1e-10 * float(M.abs().max()))
    assert float(torch.linalg.eigvalsh(0.5 * (M + M.T)).min()) > 0
    # A good preconditioner clusters the spectrum of M A away from 0.
    eigenvalues = torch.linalg.eigvals(M @ A.to_dense()).real
    plain = torch.linalg.eigvalsh(A.to_dense())
    assert float(eigenvalues.max() / eigenvalues.min()) < 0.1 * float(plain.max() / plain.min())


def test_chebyshev_degree_cuts_cg_iterations():
    A, b = _darcy(33)
    plain = cg(A, b, rtol=1e-8).iterations
    low = cg(A, b, rtol=1e-8, M=chebyshev(A, degree=2))
    high = cg(A, b, rtol=1e-8, M=chebyshev(A, degree=8))
    assert low.converged and high.converged
    assert high.iterations < low.iterations < plain / 2


def test_bilinear_interpolation_is_exact_on_bilinear_functions():
    ny, nx = 15, 9
    P, R, (my, mx) = interpolation((ny, nx), "cpu", torch.float64)
    assert (my, mx) == (7, 4)
    assert torch.equal(R.to_dense(), P.to_dense().T)
    fine_y = torch.arange(1, ny + 1, dtype=torch.float64)[:, None]      # node positions / h
    fine_x = torch.arange(1, nx + 1, dtype=torch.float64)[None, :]
    coarse_y = 2.0 * torch.arange(1, my + 1, dtype=torch.float64)[:, None]
    coarse_x = 2.0 * torch.arange(1, mx + 1, dtype=torch.float64)[None, :]
    f = lambda y, x: 1.0 + 2.0 * y - x + 0.5 * x * y                    # noqa: E731
    interpolated = (P @ f(coarse_y, coarse_x).reshape(-1)).view(ny, nx)
    # Exact between coarse nodes; next to the boundary the other neighbour is u = 0.
    inner = (slice(1, 2 * my), slice(1, 2 * mx))
    assert torch.allclose(interpolated[inner], f(fine_y, fine_x)[inner])
    assert torch.allclose(interpolated[0, 1:2 * mx], 0.5 * f(fine_y, fine_x)[1, 1:2 * mx])


def test_multigrid_cg_iterations_are_nearly_independent_of_resolution():
    counts = []
    for nodes in (33, 65, 129):
        A, b = _darcy(nodes, kind="binary", seed=nodes)
        M = multigrid(A, grid_shape=(nodes - 2, nodes - 2))
        result = cg(A, b, rtol=1e-8, M=M)
        assert result.converged and result.residual <= 1e-8
        counts.append(result.iterations)
    plain = cg(A, b, rtol=1e-8).iterations                              # 129², unpreconditioned
    assert max(counts) <= 12 and max(counts) - min(counts) <= 2
    assert plain > 30 * max(counts)


def test_stacked_multigrid_equals_one_multigrid_per_system_and_preconditions_cg_batched():
    darcy = Darcy(coefficient="lognormal")
    a = darcy.sample_coefficients(3, 35, generator=torch.Generator().manual_seed(7))
    matrices, rhs = zip(*(darcy.assemble(a[i]) for i in range(3)))
    B = torch.stack(rhs)
    stacked = multigrid(block_diagonal(list(matrices)), grid_shape=(3, 33, 33))
    alone = torch.stack([multigrid(A, grid_shape=(33, 33))(b) for A, b in zip(matrices, B)])
    assert torch.allclose(stacked(B), alone, rtol=1e-10, atol=0)
    results = cg_batched(list(matrices), B, rtol=1e-8, M=stacked)
    for A, b, result in zip(matrices, B, results):
        assert result.converged and result.iterations <= 12
        alone = cg(A, b, rtol=1e-8, M=multigrid(A, grid_shape=(33, 33)))
        assert result.iterations == alone.iterations


def test_multigrid_preconditions_gmres_on_a_nonsymmetric_grid():
    A, b = _darcy(40, kind="lognormal")
    rng = np.random.default_rng(0)
    A = (A.to_dense() + torch.from_numpy(rng.uniform(0, 5, A.shape[0])).diag_embed(1)[:-1, :-1]
         ).to_sparse_csr()                                             # a one-sided coupling
    result = gmres(A, b, rtol=1e-8, M=multigrid(A, grid_shape=(38, 38)))
    assert result.converged and result.iterations < 25


@pytest.mark.parametrize("name", ["amg", "ilu", "lu"])
def test_cpu_preconditioners_accelerate_gmres(name):
    A, b = _darcy(33, kind="lognormal")
    plain = gmres(A, b, rtol=1e-8)
    M = PRECONDITIONERS[name](A)
    result = gmres(A, b, rtol=1e-8, M=M)
    assert result.converged and result.residual <= 1e-8
    assert result.iterations < plain.iterations / 10
    assert M(b.float()).dtype == torch.float32
    if name == "lu":                                   # M = A⁻¹: one iteration per sample
        assert result.iterations == 1


def test_registry_and_errors():
    assert set(PRECONDITIONERS) == {"none", "jacobi", "chebyshev", "mg", "amg", "ilu", "lu",
                                    "gsmg", "gsmg32", "slmg", "slmg32"}
    A, b = _darcy(10)
    assert PRECONDITIONERS["none"](A) is None
    with pytest.raises(ValueError, match="grid_shape must be given"):
        multigrid(A)
    with pytest.raises(ValueError, match="product equal to n = 64"):
        multigrid(A, grid_shape=(8, 9))
    with pytest.raises(TypeError, match="to build a preconditioner"):
        jacobi(lambda v: v)
    with pytest.raises(ValueError, match="positive diagonal"):
        chebyshev(-A.to_dense())
    with pytest.raises(ValueError, match="method must be"):
        PRECONDITIONERS["amg"](A, method="gmg")


def test_a_built_preconditioner_is_reused_for_many_right_hand_sides():
    A, _ = _darcy(33)
    M = multigrid(A, grid_shape=(31, 31))
    rng = np.random.default_rng(1)
    for _ in range(3):
        b = torch.from_numpy(rng.standard_normal(A.shape[0]))
        result = cg(A, b, rtol=1e-8, M=M)
        assert result.converged and result.iterations <= 12
    block = torch.from_numpy(rng.standard_normal((2, A.shape[0])))
    assert torch.allclose(M(block), torch.stack([M(block[0]), M(block[1])]))


@pytest.mark.cuda
def test_gpu_preconditioners_agree_with_cpu_and_cpu_ones_refuse_cuda():
    A, b = _darcy(33, kind="lognormal")
    for name in ("jacobi", "chebyshev", "mg"):
        cpu = PRECONDITIONERS[name](A, grid_shape=(31, 31))
        gpu = PRECONDITIONERS[name](A.cuda(), grid_shape=(31, 31))
        assert torch.allclose(gpu(b.cuda()).cpu(), cpu(b), rtol=1e-9, atol=0)
        result = cg(A.cuda(), b.cuda(), rtol=1e-8, M=gpu)
        assert result.converged and result.x.is_cuda
    matrices = [A.cuda(), _darcy(33, kind="lognormal", seed=1)[0].cuda()]
    B = torch.stack([b, 2 * b]).cuda()
    stacked = multigrid(block_diagonal(matrices), grid_shape=(2, 31, 31))
    results = cg_batched(matrices, B, rtol=1e-8, M=stacked)
    assert all(r.converged and r.iterations <= 12 and r.x.is_cuda for r in results)
    for name in ("amg", "ilu", "lu"):
        with pytest.raises(ValueError, match="runs on the CPU"):
            PRECONDITIONERS[name](A.cuda())


def test_jacobi_refuses_a_non_positive_damping():
    A, _ = _darcy(10)
    for omega in (0.0, -0.5):
        with pytest.raises(ValueError, match="omega must be > 0"):
            jacobi(A, omega=omega)


def test_lu_is_the_direct_factorization_applied_to_blocks():
    from sciml.datasets.linsolve import DirectFactorization

    A, b = _darcy(20, kind="lognormal")
    M = PRECONDITIONERS["lu"](A)
    B = torch.stack([b, torch.linspace(-1.0, 1.0, b.shape[0], dtype=torch.float64)])
    X = torch.linalg.solve(A.to_dense(), B.T).T
    torch.testing.assert_close(M(B), X, rtol=1e-10, atol=0)
    torch.testing.assert_close(M(B[1]), X[1], rtol=1e-10, atol=0)
    # The same SuperLU setup as the direct solver: identical back-substitutions.
    direct = DirectFactorization(A).solve(B)
    for i, result in enumerate(direct):
        torch.testing.assert_close(M(B[i]), result.x, rtol=1e-14, atol=0)


def test_galerkin_product_is_rap_and_frees_its_memory():
    # torch 2.13's CPU CSR @ CSR kept ~10 MB per call at this size; 30 calls would grow RSS
    # by ~300 MB. The COO route must give R A P and leave the resident memory flat.
    a = Darcy().sample_coefficients(8, 130, generator=torch.Generator().manual_seed(0))
    A = block_diagonal(five_point_matrices(*flux_form_couplings(a)))
    P, R, _ = interpolation((128, 128), A.device, A.dtype, 8)
    v = torch.randn(P.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    coarse = _galerkin(R, A, P)
    assert coarse.layout == torch.sparse_csr
    reference = R @ (A @ (P @ v))
    torch.testing.assert_close(coarse @ v, reference, rtol=0, atol=1e-12 * reference.abs().max())

    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for _ in range(3):
        _galerkin(R, A, P)
    before = resident()
    for _ in range(30):
        _galerkin(R, A, P)
    assert resident() - before < 100 * 2 ** 20
