"""Krylov solvers (sciml.datasets.krylov): tolerance reached on SPD, non-symmetric and
indefinite systems with scipy's solution as reference, GMRES iteration counts against
scipy's, GCRO-DR(k=0) = GMRES(m), recycling across Darcy systems, batched solves, honest
non-convergence, and errors at the door."""
import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from sciml.datasets import LINEAR_SOLVERS, get_linear_solver
from sciml.datasets.krylov import (RecycleSpace, block_diagonal, cg, cg_batched, gcro_dr,
                                   gmres, gmres_batched, gmres_dr, jacobi, multigrid)
from sciml.datasets.pdes import Darcy

pytestmark = pytest.mark.usefixtures("one_thread")


def _laplacian(m):
    """5-point −Δ on the m × m interior nodes of the unit square, scaled by h²."""
    t = scipy.sparse.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = scipy.sparse.identity(m)
    return (scipy.sparse.kron(eye, t) + scipy.sparse.kron(t, eye)).tocsr()


def _systems():
    """(name, scipy matrix, rhs): SPD, non-symmetric (convection–diffusion), indefinite
    (Helmholtz with k h = 0.6: six negative eigenvalues)."""
    m = 16
    lap = _laplacian(m)
    d = scipy.sparse.diags([-1.0, 0.0, 1.0], [-1, 0, 1], shape=(m, m))
    convection = scipy.sparse.kron(scipy.sparse.identity(m), d) * 0.8   # Péclet h·c/2 = 0.4
    rng = np.random.default_rng(0)
    b = rng.standard_normal(m * m)
    return {"spd": (lap, b), "nonsymmetric": ((lap + convection).tocsr(), b),
            "indefinite": ((lap - 0.36 * scipy.sparse.identity(m * m)).tocsr(), b)}


def _torch(matrix, dtype=torch.float64):
    matrix = scipy.sparse.csr_matrix(matrix)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr),
                                       torch.from_numpy(matrix.indices),
                                       torch.from_numpy(matrix.data).to(dtype), matrix.shape,
                                       check_invariants=False)


SYSTEMS = _systems()


def test_indefinite_system_is_indefinite():
    eigenvalues = np.linalg.eigvalsh(SYSTEMS["indefinite"][0].toarray())
    assert (eigenvalues < 0).sum() == 6 and (eigenvalues > 0).sum() == 250


@pytest.mark.parametrize("solver, kind", [(solver, kind) for solver in (gmres, gmres_dr, gcro_dr)
                                           for kind in ("spd", "nonsymmetric", "indefinite")]
                         + [(cg, "spd")])
def test_solvers_reach_tolerance_and_agree_with_scipy(solver, kind):
    matrix, rhs = SYSTEMS[kind]
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    options = {"restart": 40} if solver is gmres else {"m": 20, "k": 8} if solver is not cg else {}
    result = solver(_torch(matrix), torch.from_numpy(rhs), rtol=1e-10, **options)
    x = result.x.numpy()
    true_residual = np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs)
    assert result.converged
    assert true_residual <= 1e-10
    assert result.residual == pytest.approx(true_residual, rel=1e-6)
    assert np.linalg.norm(x - reference) / np.linalg.norm(reference) < 1e-7


def test_gmres_iterations_match_scipy():
    matrix, rhs = SYSTEMS["indefinite"]
    calls = []
    scipy.sparse.linalg.gmres(matrix, rhs, rtol=1e-8, restart=20, maxiter=1000,
                              callback=calls.append, callback_type="pr_norm")
    ours = gmres(_torch(matrix), torch.from_numpy(rhs), rtol=1e-8, restart=20)
    assert ours.converged and len(calls) > 40          # several restarts
    assert abs(ours.iterations - len(calls)) <= 1


def test_gcrodr_with_k0_takes_gmres_iterations():
    matrix, rhs = SYSTEMS["indefinite"]
    A, b = _torch(matrix), torch.from_numpy(rhs)
    for m in (10, 25):
        plain = gmres(A, b, rtol=1e-9, restart=m)
        recycled = gcro_dr(A, b, rtol=1e-9, m=m, k=0)
        assert plain.iterations > m                    # restarted at least once
        assert recycled.iterations == plain.iterations
        assert torch.allclose(recycled.x, plain.x, rtol=0, atol=1e-9 * float(plain.x.norm()))


def test_deflated_restarting_beats_gmres_and_equals_gcrodr_on_one_system():
    matrix, rhs = SYSTEMS["indefinite"]
    A, b = _torch(matrix), torch.from_numpy(rhs)
    plain = gmres(A, b, rtol=1e-9, restart=20)
    deflated = gmres_dr(A, b, rtol=1e-9, m=20, k=8)
    gcro = gcro_dr(A, b, rtol=1e-9, m=20, k=8)
    assert deflated.iterations < 0.7 * plain.iterations
    # GCRO-DR and GMRES-DR are algebraically equivalent on one system (Parks et al. 2006).
    assert abs(gcro.iterations - deflated.iterations) <= 2


def test_recycling_across_lognormal_darcy_needs_at_most_0_6_of_fresh_gmresdr():
    darcy = Darcy(coefficient="lognormal")
    a = darcy.sample_coefficients(5, 50, generator=torch.Generator().manual_seed(1))
    fresh, recycled, space = [], [], None
    for i in range(5):
        A, b = darcy.assemble(a[i])                    # 48² unknowns
        assert A.shape == (48 * 48, 48 * 48)
        alone = gmres_dr(A, b, rtol=1e-8, m=40, k=20)
        carried = gcro_dr(A, b, rtol=1e-8, m=40, k=20, recycle=space)
        assert alone.converged and carried.converged and carried.residual <= 1e-8
        assert isinstance(carried.recycle, RecycleSpace)
        assert carried.recycle.U.shape == (20, 48 * 48)
        space = carried.recycle
        fresh.append(alone.iterations)
        recycled.append(carried.iterations)
    # The first system has nothing to recycle; the others reuse the previous space.
    assert sum(recycled[1:]) <= 0.6 * sum(fresh[1:])


def test_recycled_space_is_refitted_to_the_new_matrix():
    # U spans e_0..e_4; for a new diagonal A, C = A U spans the same vectors, so a right-hand
    # side in that span is solved by the projection x = U Cᵀ b alone, with no iteration.
    n = 50
    A = torch.diag(torch.linspace(1.0, 5.0, n, dtype=torch.float64)).to_sparse_csr()
    U = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    U = torch.cat([U, torch.zeros(5, n - 5, dtype=torch.float64)], dim=1)
    x_true = torch.zeros(n, dtype=torch.float64)
    x_true[:5] = torch.tensor([3.0, -1.0, 0.5, 2.0, 1.0], dtype=torch.float64)
    result = gcro_dr(A, A @ x_true, rtol=1e-12, m=10, k=5, recycle=RecycleSpace(U))
    assert result.converged and result.iterations == 0
    assert result.matvecs == 5 + 1                    # the refit C = A U, then the check
    assert torch.allclose(result.x, x_true, atol=1e-12)


def test_recycling_with_a_right_preconditioner_reaches_the_true_tolerance():
    darcy = Darcy(coefficient="lognormal")
    a = darcy.sample_coefficients(3, 34, generator=torch.Generator().manual_seed(4))
    space, counts = None, []
    for i in range(3):
        A, b = darcy.assemble(a[i])
        result = gcro_dr(A, b, rtol=1e-9, m=30, k=10, M=jacobi(A), recycle=space)
        space = result.recycle
        reference = scipy.sparse.linalg.spsolve(
            scipy.sparse.csr_matrix(A.to_dense().numpy()).tocsc(), b.numpy())
        assert result.converged and result.residual <= 1e-9
        assert np.linalg.norm(result.x.numpy() - reference) < 1e-6 * np.linalg.norm(reference)
        counts.append(result.iterations)
    assert counts[1] < counts[0] and counts[2] < counts[0]


@pytest.mark.parametrize("solver", [gmres, gmres_dr, gcro_dr, cg])
def test_float32_solves_in_float32(solver):
    matrix, rhs = SYSTEMS["spd"]
    result = solver(_torch(matrix, torch.float32), torch.from_numpy(rhs).float(), rtol=1e-5)
    assert result.x.dtype == torch.float32 and result.converged
    x = result.x.double().numpy()
    assert np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs) < 2e-5


@pytest.mark.parametrize("solver", [gmres, gmres_dr, gcro_dr, cg])
def test_tolerance_below_float32_accuracy_stops_early_unconverged(solver):
    # 48² Darcy in float32: even the exact solution, rounded, has a float32 residual of about
    # 2e-5, so rtol = 1e-6 is out of reach; the solve must say so long before maxiter = 10 n.
    darcy = Darcy(coefficient="lognormal")
    A, b = darcy.assemble(darcy.sample_coefficients(1, 50, generator=torch.Generator()
                                                    .manual_seed(1))[0])
    result = solver(A.float(), b.float(), rtol=1e-6)
    assert not result.converged
    assert result.iterations < 0.1 * 10 * b.shape[0]
    assert 1e-6 < result.residual < 1e-4
    x = result.x.double()
    assert float((b - A @ x).norm() / b.norm()) < 1e-4
    if solver in (cg, gmres):                          # the batched forms stop as early
        batched = (cg_batched if solver is cg else gmres_batched)(
            [A.float()] * 2, torch.stack([b, 2 * b]).float(), rtol=1e-6)
        assert all(not r.converged and r.iterations < 2 * result.iterations for r in batched)


@pytest.mark.parametrize("solver", [gmres, gmres_dr, gcro_dr, cg])
def test_matvecs_and_iterations_are_counted_honestly(solver):
    matrix, rhs = SYSTEMS["spd"]
    A = _torch(matrix)
    products, estimates = [], []

    def counted(v):
        products.append(1)
        return A @ v

    result = solver(counted, torch.from_numpy(rhs), x0=torch.ones(len(rhs), dtype=torch.float64),
                    rtol=1e-9, callback=estimates.append)
    assert result.converged
    assert result.matvecs == len(products)
    assert result.iterations == len(estimates) > 0
    assert estimates[-1] <= 1e-9 * 1.0001
    assert result.seconds > 0


@pytest.mark.parametrize("solver", [gmres, gmres_dr, gcro_dr, cg])
def test_non_convergence_is_flagged_not_raised(solver):
    matrix, rhs = SYSTEMS["indefinite" if solver is not cg else "spd"]
    result = solver(_torch(matrix), torch.from_numpy(rhs), rtol=1e-12, maxiter=7)
    assert not result.converged
    assert result.iterations == 7
    assert result.residual > 1e-12
    x = result.x.numpy()
    assert result.residual == pytest.approx(np.linalg.norm(rhs - matrix @ x) / np.linalg.norm(rhs),
                                            rel=1e-8)


def test_registry_names_the_solvers():
    for name in ("gmres", "gmresdr", "gcrodr", "cg", "amg", "direct"):
        assert name in LINEAR_SOLVERS
    assert get_linear_solver("gcrodr") is gcro_dr
    matrix, rhs = SYSTEMS["spd"]
    result = get_linear_solver("amg")(_torch(matrix), torch.from_numpy(rhs), rtol=1e-10)
    assert result.converged and result.iterations < 15


def test_bad_inputs_raise_clear_errors():
    matrix, rhs = SYSTEMS["spd"]
    A, b = _torch(matrix), torch.from_numpy(rhs)
    with pytest.raises(TypeError, match="b must be"):
        gmres(A, b.long())
    with pytest.raises(ValueError, match=r"A must have shape \(255, 255\) to match b"):
        gmres(A, b[:-1])
    with pytest.raises(ValueError, match="x0 must have shape"):
        cg(A, b, x0=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="rtol must be"):
        gmres(A, b, rtol=-1.0)
    with pytest.raises(ValueError, match="maxiter must be"):
        cg(A, b, maxiter=0)
    with pytest.raises(TypeError, match="M must be"):
        gmres(A, b, M="jacobi")
    with pytest.raises(ValueError, match="k must satisfy"):
        gcro_dr(A, b, m=10, k=9)
    with pytest.raises(ValueError, match="recycle.U must have shape"):
        gcro_dr(A, b, m=10, k=4, recycle=RecycleSpace(torch.zeros(4, 5, dtype=torch.float64)))
    with pytest.raises(TypeError, match="recycle must be"):
        gcro_dr(A, b, recycle=torch.zeros(4, 256))
    with pytest.raises(TypeError, match="A must be"):
        gmres("matrix", b)


def test_block_diagonal_matches_dense():
    blocks = [_torch(SYSTEMS[k][0]) for k in ("spd", "nonsymmetric")] + [_torch(_laplacian(3))]
    stacked = block_diagonal(blocks)
    assert stacked.layout == torch.sparse_csr
    assert torch.equal(stacked.to_dense(), torch.block_diag(*[blk.to_dense() for blk in blocks]))


def _darcy_block(s, nodes, seed):
    darcy = Darcy(coefficient="lognormal")
    a = darcy.sample_coefficients(s, nodes, generator=torch.Generator().manual_seed(seed))
    matrices, rhs = zip(*(darcy.assemble(a[i]) for i in range(s)))
    return list(matrices), torch.stack(rhs)


def test_cg_batched_takes_each_systems_own_iterations():
    matrices, B = _darcy_block(5, 26, seed=2)
    results = cg_batched(matrices, B, rtol=1e-8)
    for A, b, result in zip(matrices, B, results):
        alone = cg(A, b, rtol=1e-8)
        assert result.converged and result.residual <= 1e-8
        assert abs(result.iterations - alone.iterations) <= 1
        assert torch.allclose(result.x, alone.x, rtol=1e-6, atol=0)
        assert float(torch.linalg.vector_norm(b - A @ result.x) / b.norm()) == \
            pytest.approx(result.residual, rel=1e-6)


def test_gmres_batched_on_nonsymmetric_block_with_masking():
    matrix, rhs = SYSTEMS["nonsymmetric"]
    A = _torch(matrix)
    rng = np.random.default_rng(3)
    B = torch.from_numpy(rng.standard_normal((3, len(rhs))))
    X0 = torch.zeros_like(B)
    X0[1] = torch.from_numpy(scipy.sparse.linalg.spsolve(matrix.tocsc(), B[1].numpy()))
    results = gmres_batched([A, A, A], B, X0=X0, rtol=1e-9, restart=15)
    for i, result in enumerate(results):
        alone = gmres(A, B[i], x0=X0[i], rtol=1e-9, restart=15)
        assert result.converged and result.residual <= 1e-9
        assert abs(result.iterations - alone.iterations) <= 1
    assert results[1].iterations == 0                  # already solved: masked from the start
    preconditioned = gmres_batched([A, A, A], B, rtol=1e-9, restart=15,
                                   M=jacobi(block_diagonal([A, A, A])))
    for i, result in enumerate(preconditioned):
        x = result.x.numpy()
        assert result.converged
        assert np.linalg.norm(B[i].numpy() - matrix @ x) <= 1e-9 * float(B[i].norm())
    shared = gmres_batched(A, B, X0=X0, rtol=1e-9, restart=15)   # one matrix for the block
    assert [r.iterations for r in shared] == pytest.approx([r.iterations for r in results], abs=1)


def test_batched_solves_in_float32():
    matrices, B = _darcy_block(4, 26, seed=5)
    matrices = [A.to(torch.float32) for A in matrices]
    for solver in (cg_batched, gmres_batched):
        # rtol well above float32's attainable accuracy on these systems (about 5e-6).
        results = solver(matrices, B.float(), rtol=1e-4)
        for A, b, result in zip(matrices, B, results):
            assert result.converged and result.x.dtype == torch.float32
            x = result.x.double()
            assert float((b - A.double() @ x).norm() / b.norm()) < 2e-4


def test_batched_non_convergence_is_flagged():
    matrix, rhs = SYSTEMS["indefinite"]
    B = torch.from_numpy(np.stack([rhs, 2 * rhs]))
    for solver in (cg_batched, gmres_batched):
        results = solver(_torch(matrix), B, rtol=1e-12, maxiter=5)
        assert all(not r.converged and r.iterations == 5 for r in results)
    with pytest.raises(ValueError, match="B must have shape"):
        cg_batched(_torch(matrix), B[0])
    with pytest.raises(ValueError, match="one matrix per system"):
        gmres_batched([_torch(matrix)], B)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_solvers_agree_with_cpu(dtype):
    matrix, rhs = SYSTEMS["nonsymmetric"]
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    A, b = _torch(matrix, dtype), torch.from_numpy(rhs).to(dtype)
    for solver in (gmres, gmres_dr, gcro_dr):
        cpu = solver(A, b, rtol=rtol)
        gpu = solver(A.cuda(), b.cuda(), rtol=rtol)
        assert gpu.converged and gpu.x.is_cuda and gpu.x.dtype == dtype
        assert abs(gpu.iterations - cpu.iterations) <= 2
        assert torch.allclose(gpu.x.cpu(), cpu.x, rtol=0, atol=20 * rtol * float(cpu.x.norm()))
    spd, _ = SYSTEMS["spd"]
    B = torch.from_numpy(np.stack([rhs, -rhs, 0.5 * rhs])).to(dtype)
    results = cg_batched([_torch(spd, dtype).cuda()] * 3, B.cuda(), rtol=rtol)
    assert all(r.converged and r.x.is_cuda for r in results)
    results = gmres_batched(A.cuda(), B.cuda(), rtol=rtol)
    assert all(r.converged for r in results)
    with pytest.raises(ValueError, match="device of b"):
        gmres(A, b.cuda())


# --- GCRO-DR: the recycled space at the door, short cycles, and the true residual ---------

def _darcy_sequence(count, nodes, seed):
    darcy = Darcy(coefficient="lognormal")
    a = darcy.sample_coefficients(count, nodes, generator=torch.Generator().manual_seed(seed))
    return [darcy.assemble(a[i]) for i in range(count)]


def test_recycled_space_of_lower_rank_is_reduced_to_its_span():
    (A1, b1), (A2, b2) = _darcy_sequence(2, 34, seed=4)
    U = gcro_dr(A1, b1, rtol=1e-9, m=20, k=8).recycle.U
    reference = gcro_dr(A2, b2, rtol=1e-9, m=20, k=8, recycle=RecycleSpace(U))
    # Repeated vectors span the same space: the repeats are dropped, the solve is the same.
    repeated = gcro_dr(A2, b2, rtol=1e-9, m=20, k=8, recycle=RecycleSpace(torch.cat([U, U[:3]])))
    assert repeated.converged and repeated.residual <= 1e-9
    assert repeated.iterations == reference.iterations
    assert repeated.recycle.U.shape == reference.recycle.U.shape
    assert torch.allclose(repeated.x, reference.x, rtol=0, atol=1e-8 * float(reference.x.norm()))
    # A zero space spans nothing: the solve is the one without recycling (plus the refit's
    # products).
    fresh = gcro_dr(A2, b2, rtol=1e-9, m=20, k=8)
    zero = gcro_dr(A2, b2, rtol=1e-9, m=20, k=8, recycle=RecycleSpace(torch.zeros_like(U)))
    assert zero.converged and zero.iterations == fresh.iterations
    assert zero.matvecs == fresh.matvecs + U.shape[0]
    assert torch.equal(zero.x, fresh.x)


def test_a_solve_that_ends_non_finite_recycles_nothing():
    (A1, b1), (A2, b2) = _darcy_sequence(2, 18, seed=1)
    space = gcro_dr(A1, b1, rtol=1e-9, m=20, k=8).recycle
    products = []

    def breaks_down(v):                                # NaN from the 30th product on
        products.append(1)
        return A2 @ v if len(products) < 30 else torch.full_like(v, float("nan"))

    result = gcro_dr(breaks_down, b2, rtol=1e-9, m=20, k=8, recycle=space)
    assert not result.converged and result.recycle is None
    after = gcro_dr(A2, b2, rtol=1e-9, m=20, k=8, recycle=result.recycle)
    assert after.converged
    with pytest.raises(ValueError, match="recycle.U must be finite"):
        gcro_dr(A2, b2, m=20, k=8, recycle=RecycleSpace(torch.full_like(space.U, float("nan"))))


def test_a_strong_preconditioner_still_leaves_a_space_to_recycle():
    # Multigrid-preconditioned Darcy converges in fewer than k + 1 = 21 iterations; the
    # space kept is then min(k, cols − 1) harmonic Ritz vectors (one more for a complex pair).
    (A1, b1), (A2, b2) = _darcy_sequence(2, 34, seed=4)
    first = gcro_dr(A1, b1, rtol=1e-8, m=40, k=20, M=multigrid(A1, grid_shape=(32, 32)))
    assert first.converged and first.iterations <= 21
    assert first.recycle is not None
    assert first.recycle.U.shape[0] in (first.iterations - 1, first.iterations)
    M2 = multigrid(A2, grid_shape=(32, 32))
    second = gcro_dr(A2, b2, rtol=1e-8, m=40, k=20, M=M2, recycle=first.recycle)
    assert second.converged and second.residual <= 1e-8
    assert second.iterations <= gcro_dr(A2, b2, rtol=1e-8, m=40, k=20, M=M2).iterations


def test_gcrodr_checks_the_true_residual_before_trusting_the_recycled_space():
    # A right-hand side in range(A U) is solved by the projection alone, according to the
    # projected residual; here the operator drifts after the refit (as an inexact product
    # would), so the true residual misses and GCRO-DR must iterate on, not give up.
    (A1, b1), (A2, _) = _darcy_sequence(2, 18, seed=2)
    U = gcro_dr(A1, b1, rtol=1e-9, m=20, k=8).recycle.U
    y = torch.randn(U.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    b = A2 @ (y @ U)
    products = []

    def drifting(v):                                   # the refit makes one product per vector
        products.append(1)
        return A2 @ v + (1e-3 * v if len(products) > U.shape[0] else 0)

    result = gcro_dr(drifting, b, rtol=1e-9, m=20, k=8, recycle=RecycleSpace(U))
    assert result.converged and result.residual <= 1e-9 and result.iterations > 0
    residual = float(torch.linalg.vector_norm(b - (A2 @ result.x + 1e-3 * result.x)) / b.norm())
    assert residual == pytest.approx(result.residual, rel=1e-6)


def test_recycle_is_type_checked_even_without_deflation():
    matrix, rhs = SYSTEMS["spd"]
    with pytest.raises(TypeError, match="recycle must be"):
        gcro_dr(_torch(matrix), torch.from_numpy(rhs), m=10, k=0, recycle=torch.zeros(3, 256))
    with pytest.raises(ValueError, match=r"1 <= k' <= m - 1 = 9"):
        gcro_dr(_torch(matrix), torch.from_numpy(rhs), m=10, k=4,
                recycle=RecycleSpace(torch.zeros(10, 256, dtype=torch.float64)))


# --- Convergence read on the host every check_every iterations ------------------------------

class _HostReads:
    """Counts conversions of a tensor to a Python bool or float (each a device sync on CUDA)."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in ("__bool__", "__float__"):
            original = getattr(torch.Tensor, name)

            def counted(tensor, original=original):
                self.count += 1
                return original(tensor)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("solver", [cg_batched, gmres_batched, cg])
def test_check_every_reads_the_host_less_and_changes_nothing(solver, monkeypatch):
    matrices, B = _darcy_block(3, 26, seed=7)
    B[1] *= torch.linspace(0.2, 3.0, B.shape[1], dtype=torch.float64)   # unequal iteration counts
    if solver is cg:
        def run(**options):
            return [cg(matrices[0], B[0], rtol=1e-8, **options)]
    else:
        def run(**options):
            return solver(matrices, B, rtol=1e-8, **options)
    reads = _HostReads(monkeypatch)
    every = run()
    reads_every, reads.count = reads.count, 0
    sparse = run(check_every=10)
    reads_sparse = reads.count
    monkeypatch.undo()
    for one, other in zip(every, sparse):
        assert one.converged and other.converged
        assert other.iterations == one.iterations       # counts stop where each converged
        assert torch.equal(other.x, one.x)              # masked iterations change nothing
    assert len({r.iterations for r in every}) == len(every)
    assert max(r.iterations for r in every) > 50
    assert reads_sparse < 0.25 * reads_every


def test_package_names_are_the_functions_and_modules_stay_importable():
    import importlib

    import sciml.datasets.krylov as krylov
    from sciml.datasets.krylov.gmres_dr import check_m_k

    assert krylov.gmres_dr is gmres_dr and callable(krylov.gcro_dr)
    assert check_m_k(50, 10, 30) == (30, 10)
    assert importlib.import_module("sciml.datasets.krylov.gcro_dr").gcro_dr is gcro_dr


@pytest.mark.cuda
def test_cuda_check_every_keeps_iterations_and_solutions():
    matrices, B = _darcy_block(3, 26, seed=7)
    matrices, B = [A.cuda() for A in matrices], B.cuda()
    for solver in (cg_batched, gmres_batched):
        every = solver(matrices, B, rtol=1e-8)
        sparse = solver(matrices, B, rtol=1e-8, check_every=16)
        assert [r.iterations for r in sparse] == [r.iterations for r in every]
        for r, e in zip(sparse, every):
            assert r.converged
            torch.testing.assert_close(r.x, e.x, rtol=1e-12, atol=0)
    one, sixteen = cg(matrices[0], B[0], rtol=1e-8), cg(matrices[0], B[0], rtol=1e-8,
                                                          check_every=16)
    assert sixteen.iterations == one.iterations
    torch.testing.assert_close(sixteen.x, one.x, rtol=1e-12, atol=0)
