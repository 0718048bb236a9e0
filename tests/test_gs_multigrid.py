"""Preconditioners for non-symmetric and indefinite systems: the Gauss–Seidel multigrid, the
shifted-Laplacian multigrid, mixed precision, recycling with them, the GPU direct baseline."""
import pytest
import torch

from sciml.datasets.generate import choose_method
from sciml.datasets.krylov import PRECONDITIONERS, gcro_dr, gmres_dr, gpu_direct, \
    gpu_direct_available, gs_multigrid, shifted_laplacian
from sciml.datasets.krylov.gs_multigrid import colour_rows, interpolation_nd
from sciml.datasets.krylov.multigrid import _galerkin
from sciml.datasets.krylov.shifted_laplacian import helmholtz_shift
from sciml.datasets.pdes import ConvectionDiffusion, ConvectionDiffusion3D, Darcy3D, \
    Helmholtz, get_pde


def _systems(family, n, resolution, seed=0):
    params = family.sample_params(n, resolution, generator=torch.Generator().manual_seed(seed))
    captured = []
    family.solve(params, lambda As, B, X0=None: captured.extend(zip(As, B)) or B)
    return captured, family.sort_features(params)


@pytest.mark.parametrize("family, resolution, factor", [
    (ConvectionDiffusion3D(), 18, 5),                         # 16³, cell Péclet below 1
    (ConvectionDiffusion3D(epsilon=0.005), 18, 5),            # upwinded, convection-dominated
    (ConvectionDiffusion(epsilon=0.005), 66, 10)])
def test_gauss_seidel_multigrid_cuts_gmres_dr_iterations_and_reaches_rtol(family, resolution,
                                                                         factor):
    (A, b), = _systems(family, 1, resolution)[0]
    plain = gmres_dr(A, b, rtol=1e-8)
    M = gs_multigrid(A, grid_shape=family.grid_shape(resolution))
    pre = gmres_dr(A, b, rtol=1e-8, M=M, m=30, k=5)
    assert plain.converged and pre.converged
    assert float(torch.linalg.norm(b - A @ pre.x) / torch.linalg.norm(b)) <= 1e-8
    assert pre.iterations * factor <= plain.iterations, (pre.iterations, plain.iterations)


def test_colours_are_uncoupled_on_the_fine_and_galerkin_levels():
    (A, _), = _systems(ConvectionDiffusion3D(), 1, 14)[0]
    shape = (12, 12, 12)
    for _ in range(2):
        dense = A.to_dense()
        for rows in colour_rows(shape, A.device):
            block = dense[rows][:, rows]
            assert torch.equal(block, torch.diag(block.diagonal()))   # Gauss–Seidel (1) exact
        P, R, shape = interpolation_nd(shape, A.device, A.dtype)
        A = _galerkin(R, A, P)
    assert shape == (3, 3, 3)


def test_v_cycle_is_symmetric_for_symmetric_matrices_so_cg_applies():
    (A, b), = _systems(Darcy3D(), 1, 14)[0]
    M = gs_multigrid(A, grid_shape=(12, 12, 12), coarsest_size=8)
    g = torch.Generator().manual_seed(0)
    u, v = (torch.randn(12 ** 3, generator=g, dtype=torch.float64) for _ in range(2))
    assert abs(float(u @ M(v) - M(u) @ v)) < 1e-12 * float(u.norm() * M(v).norm())
    assert float(v @ M(v)) > 0


def test_mixed_precision_hierarchy_still_meets_a_float64_tolerance():
    (A, b), = _systems(ConvectionDiffusion3D(), 1, 18)[0]
    M32 = PRECONDITIONERS["gsmg32"](A, grid_shape=(16, 16, 16))
    assert M32(b).dtype == torch.float64
    result = gcro_dr(A, b, rtol=1e-10, M=M32, m=30, k=5)
    assert result.converged
    assert float(torch.linalg.norm(b - A @ result.x) / torch.linalg.norm(b)) <= 1e-10


def test_shifted_laplacian_reads_k_squared_and_cuts_iterations():
    family = Helmholtz()
    params = family.sample_params(1, 34, generator=torch.Generator().manual_seed(0))
    (A, b), = _systems(family, 1, 34)[0]
    k = family.wavenumber(params)[0, 1:-1, 1:-1].reshape(-1)
    torch.testing.assert_close(helmholtz_shift(A, 2), k ** 2, rtol=1e-12, atol=1e-9)
    plain = gmres_dr(A, b, rtol=1e-8)
    pre = gmres_dr(A, b, rtol=1e-8, M=shifted_laplacian(A, grid_shape=(32, 32)))
    assert plain.converged and pre.converged
    assert pre.iterations * 3 <= plain.iterations, (pre.iterations, plain.iterations)


def test_recycling_with_the_shifted_laplacian_meets_rtol_on_every_sample():
    family = Helmholtz()
    systems, features = _systems(family, 4, 34)
    recycle, fresh, recycled = None, 0, 0
    for A, b in systems:
        M = shifted_laplacian(A, grid_shape=(32, 32))
        result = gcro_dr(A, b, rtol=1e-8, M=M, recycle=recycle)
        recycle = result.recycle
        assert result.converged
        assert float(torch.linalg.norm(b - A @ result.x) / torch.linalg.norm(b)) <= 1e-8
        recycled += result.iterations
        fresh += gmres_dr(A, b, rtol=1e-8, M=M).iterations
    assert recycled < fresh, (recycled, fresh)       # the carried space pays on this family


def test_bad_arguments_are_named():
    (A, _), = _systems(Darcy3D(), 1, 6)[0]
    with pytest.raises(TypeError, match="grid_shape"):
        gs_multigrid(A, grid_shape=(2, 4, 4, 4))
    with pytest.raises(ValueError, match="grid_shape"):
        gs_multigrid(A, grid_shape=(4, 4, 5))
    with pytest.raises(ValueError, match="dtype"):
        gs_multigrid(A, grid_shape=(4, 4, 4), dtype=torch.float16)
    with pytest.raises(ValueError, match="beta"):
        shifted_laplacian(A, grid_shape=(4, 4, 4), beta=-1)


def test_gpu_direct_says_when_it_is_unavailable():
    A = torch.eye(3, dtype=torch.float64).to_sparse_csr()
    ok, why = gpu_direct_available("cpu")
    assert not ok and "spsolve" in why
    with pytest.raises(RuntimeError, match="not available"):
        gpu_direct(A, torch.ones(3, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_direct_matches_superlu_on_the_device():
    from sciml.datasets import solve_direct
    (A, b), = _systems(ConvectionDiffusion3D(), 1, 10)[0]
    if not gpu_direct_available("cuda")[0]:
        pytest.skip(gpu_direct_available("cuda")[1])
    result = gpu_direct(A.cuda(), b.cuda(), rtol=1e-10)
    assert result.converged and result.x.is_cuda
    torch.testing.assert_close(result.x.cpu(), solve_direct(A, b).x, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_non_symmetric_families_are_solved_on_the_device():
    for name in ("helmholtz", "convection_diffusion", "convection_diffusion3d"):
        method = choose_method(get_pde(name), torch.device("cuda"))
        assert method["solver"] in ("gcrodr", "gmresdr") and method["precond"] in ("slmg", "gsmg")
        (A, b), = _systems(get_pde(name), 1, 18)[0]
        A, b = A.cuda(), b.cuda()
        M = PRECONDITIONERS[method["precond"]](A, grid_shape=get_pde(name).grid_shape(18))
        result = gcro_dr(A, b, rtol=1e-8, M=M)
        assert result.converged and result.x.is_cuda


def test_choose_method_covers_the_3d_and_indefinite_families():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    darcy3d, conv3d, helmholtz = (get_pde(n) for n in ("darcy3d", "convection_diffusion3d",
                                                       "helmholtz"))
    assert (choose_method(darcy3d, cpu)["solver"], choose_method(darcy3d, cpu)["precond"]) == \
        ("cg", "gsmg")
    assert choose_method(conv3d, cpu)["precond"] == "gsmg"
    assert choose_method(conv3d, cpu)["solver"] in ("gmresdr", "gcrodr")
    assert choose_method(helmholtz, cpu)["solver"] == "direct"
    if torch.cuda.is_available():
        assert choose_method(helmholtz, cuda)["precond"] == "slmg"
    # 3-D Helmholtz on the CPU: recycling without preconditioner up to 32³, where it was
    # the fastest method measured; the shifted-Laplacian multigrid beyond.
    helmholtz3d = get_pde("helmholtz3d")
    small = choose_method(helmholtz3d, cpu, resolution=26)
    assert (small["solver"], small["precond"], small["order"]) == ("gcrodr", "none", "greedy")
    large = choose_method(helmholtz3d, cpu, resolution=42)
    assert (large["solver"], large["precond"]) == ("gmresdr", "slmg")
    assert choose_method(helmholtz3d, cpu)["precond"] == "slmg"       # size unknown
    with pytest.raises(ValueError, match="3-D"):
        choose_method(darcy3d, cpu, solver="cg", precond="mg")
    with pytest.raises(ValueError, match="batch"):
        choose_method(get_pde("convection_diffusion"), cpu, solver="gmres", precond="gsmg",
                      batch=4)


def test_gcro_dr_in_blocks_carries_its_space_and_meets_rtol_on_every_system():
    from sciml.datasets.krylov import gcro_dr_batched
    from sciml.datasets.sorting import greedy_order
    family = Helmholtz()
    systems, features = _systems(family, 6, 34)
    order = greedy_order(features).tolist()
    As = [systems[i][0] for i in order]
    B = torch.stack([systems[i][1] for i in order])
    M = [shifted_laplacian(A, grid_shape=(32, 32)) for A in As]
    first = gcro_dr_batched(As[:3], B[:3], rtol=1e-8, M=M[:3])
    second = gcro_dr_batched(As[3:], B[3:], rtol=1e-8, M=M[3:], recycle=first[0].recycle)
    fresh = [gmres_dr(A, b, rtol=1e-8, M=m).iterations for A, b, m in zip(As, B, M)]
    for A, b, result in zip(As, B, first + second):
        true = float(torch.linalg.norm(b - A @ result.x) / torch.linalg.norm(b))
        assert result.converged and true <= 1e-8 and abs(true - result.residual) < 1e-12
    # The space carried into a block and deflated by each system saves iterations over
    # fresh GMRES-DR(40, 20) on every system that starts from it.
    recycled = [r.iterations for r in first[1:] + second]
    assert all(r < f for r, f in zip(recycled, fresh[1:3] + fresh[3:])), (recycled, fresh)


def test_gcro_dr_in_blocks_never_reports_a_missed_tolerance_as_converged():
    from sciml.datasets.krylov import gcro_dr_batched
    systems, _ = _systems(ConvectionDiffusion(epsilon=0.005), 3, 34)
    As = [A for A, _ in systems]
    B = torch.stack([b for _, b in systems])
    results = gcro_dr_batched(As, B, rtol=1e-10, maxiter=5, m=10, k=3)
    for A, b, result in zip(As, B, results):
        true = float(torch.linalg.norm(b - A @ result.x) / torch.linalg.norm(b))
        assert not result.converged and true > 1e-10 and abs(true - result.residual) < 1e-9
    with pytest.raises(TypeError, match="M must be None or a list of 3"):
        gcro_dr_batched(As, B, M=lambda v: v)
    with pytest.raises(ValueError, match="one row per matrix"):
        gcro_dr_batched(As, B[:2])
