"""3-D PDE families: second-order convergence, matrix claims, the generator and its file."""
import math
import warnings

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg
import torch

from sciml.datasets import generate
from sciml.datasets.fdm3d import nodes3d
from sciml.datasets.grf3d import grf3d
from sciml.datasets.krylov._shared import to_scipy
from sciml.datasets.pdes import ConvectionDiffusion3D, Darcy3D, Helmholtz3D, get_pde

pi = math.pi


def _solve(A, b):
    # COLAMD: SuperLU's fast ordering on seven-point matrices (test-only, a reference).
    return torch.from_numpy(scipy.sparse.linalg.spsolve(to_scipy(A).tocsc(), b.numpy()))


def _order(sizes, errors):
    return np.polyfit(np.log([1 / (n - 1) for n in sizes]), np.log(errors), 1)[0]


def _interior(u):
    return u[1:-1, 1:-1, 1:-1].reshape(-1)


def _manufactured():
    """u = x sin πx sin πy sin πz and its derivatives at the nodes of n³."""
    def at(n):
        X, Y, Z = nodes3d(n)
        sx, sy, sz = torch.sin(pi * X), torch.sin(pi * Y), torch.sin(pi * Z)
        cx, cy, cz = torch.cos(pi * X), torch.cos(pi * Y), torch.cos(pi * Z)
        u = X * sx * sy * sz
        grad = ((sx + pi * X * cx) * sy * sz, pi * X * sx * cy * sz, pi * X * sx * sy * cz)
        laplacian = (2 * pi * cx - pi ** 2 * X * sx) * sy * sz - 2 * pi ** 2 * u
        return X, Y, Z, u, grad, laplacian
    return at


def test_variable_coefficient_poisson_3d_converges_at_second_order():
    # −∇·(a∇u) = f with a = 1 + ½ sin πx cos πy z: Darcy3D's operator on a smooth coefficient.
    sizes, errors = [9, 17, 25], []
    for n in sizes:
        X, Y, Z, u, (ux, uy, uz), lap = _manufactured()(n)
        a = 1 + 0.5 * torch.sin(pi * X) * torch.cos(pi * Y) * Z
        ax = 0.5 * pi * torch.cos(pi * X) * torch.cos(pi * Y) * Z
        ay = -0.5 * pi * torch.sin(pi * X) * torch.sin(pi * Y) * Z
        az = 0.5 * torch.sin(pi * X) * torch.cos(pi * Y)
        A, b = Darcy3D().assemble(a, -(a * lap + ax * ux + ay * uy + az * uz))
        errors.append(float((_solve(A, b) - _interior(u)).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.1, errors


def test_convection_diffusion_3d_converges_at_second_order_when_resolved():
    # v = ∇×(sin πx sin πy sin πz (1, 0, 1)) / π is divergence-free; ε = 0.1 keeps the cell
    # Péclet number ≤ 1, so the scheme is central (second order) everywhere.
    sizes, errors, epsilon = [9, 17, 25], [], 0.1
    family = ConvectionDiffusion3D(epsilon=epsilon)
    for n in sizes:
        X, Y, Z, u, grad, lap = _manufactured()(n)
        # Exact derivatives of ψ = sin πx sin πy sin πz / π.
        px = torch.cos(pi * X) * torch.sin(pi * Y) * torch.sin(pi * Z)
        py = torch.sin(pi * X) * torch.cos(pi * Y) * torch.sin(pi * Z)
        pz = torch.sin(pi * X) * torch.sin(pi * Y) * torch.cos(pi * Z)
        v = torch.stack([py, pz - px, -py])                  # eq. (2) with ψ₁ = ψ₂ = ψ
        assert float(v.abs().max()) / (n - 1) <= 2 * epsilon
        f = -epsilon * lap + sum(vi * gi for vi, gi in zip(v, grad))
        A, b = family.assemble(v, f)
        errors.append(float((_solve(A, b) - _interior(u)).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.1, errors


def test_helmholtz_3d_converges_at_second_order_with_variable_wavenumber():
    # k = 7 + sin πx cos πy z (k² ≈ 49 > 3π²: indefinite), u = x sin πx sin πy sin πz.
    sizes, errors = [9, 17, 25], []
    for n in sizes:
        X, Y, Z, u, _, lap = _manufactured()(n)
        k = 7 + torch.sin(pi * X) * torch.cos(pi * Y) * Z
        A, b = Helmholtz3D().assemble(k, -lap - k ** 2 * u)
        errors.append(float((_solve(A, b) - _interior(u)).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.2, errors


def test_convection_diffusion_3d_is_an_m_matrix_where_convection_dominates():
    family = ConvectionDiffusion3D(epsilon=0.002, velocity=5.0)
    params = family.sample_params(1, 7, generator=torch.Generator().manual_seed(0))
    v = family.flow(params)[0]
    assert float(v.abs().max()) * (1 / 6) / (2 * 0.002) > 10       # cell Péclet far above 1
    dense = family.assemble(v)[0].to_dense().numpy()
    off = dense - np.diag(np.diag(dense))
    assert np.abs(dense - dense.T).max() > 1.0                        # non-symmetric
    assert off.max() <= 0 and (dense.sum(1) >= -1e-9).all()           # Z-matrix, dominant rows
    assert np.linalg.inv(dense).min() >= -1e-12                       # monotone: A⁻¹ ≥ 0


def test_3d_flow_is_discretely_divergence_free():
    # Central differences commute, so ∇·∇×(ψ₂, 0, ψ₁) vanishes to rounding away from the
    # one-sided boundary stencils.
    family = ConvectionDiffusion3D()
    params = family.sample_params(2, 13, generator=torch.Generator().manual_seed(1))
    v = family.flow(params)
    h = 1 / 12
    div = sum(torch.gradient(v[:, a], spacing=h, dim=a + 1)[0] for a in range(3))
    assert float(div[:, 2:-2, 2:-2, 2:-2].abs().max()) < 1e-10 * float(v.abs().max()) / h


@pytest.mark.parametrize("name", ["darcy3d", "convection_diffusion3d", "helmholtz3d"])
def test_3d_protocol_and_matrix_claims(name):
    family = get_pde(name)
    assert type(family)(**family.to_dict()).to_dict() == family.to_dict()
    n, res = 2, 8
    params = family.sample_params(n, res, generator=torch.Generator().manual_seed(3))
    again = family.sample_params(n, res, generator=torch.Generator().manual_seed(3))
    for key, value in params.items():
        assert value.shape == (n, res, res, res) and value.dtype == torch.float64
        assert torch.equal(value, again[key])
    assert family.inputs(params).shape == (n, family.in_channels, res, res, res)
    assert family.sort_features(params).shape[0] == n
    assert family.grid_shape(res) == (res - 2,) * 3
    seen = []

    def record(As, B, X0=None):
        assert len(As) == n and B.shape == (n, (res - 2) ** 3)
        X = torch.stack([_solve(A, b) for A, b in zip(As, B)])
        seen.extend(As)
        return X

    u = family.solve(params, record)
    assert u.shape == (n, 1, res, res, res)
    assert float(u[:, :, 0].abs().max()) == 0 and float(u[:, :, :, :, -1].abs().max()) == 0
    D = seen[0].to_dense().numpy()
    symmetric = np.abs(D - D.T).max() <= 1e-12 * np.abs(D).max()
    assert symmetric == (family.spd or name == "helmholtz3d")
    if symmetric:   # SPD, or indefinite for Helmholtz (k₀ = 10: k² past the first eigenvalues)
        eigenvalues = np.linalg.eigvalsh(D)
        assert (eigenvalues.min() > 0) == family.spd and eigenvalues.max() > 0
    assert not torch.equal(seen[0].values(), seen[1].values())      # a matrix per sample


def test_binary_darcy3d_takes_two_values_and_grf3d_has_the_covariance_scale():
    fields = grf3d(64, 9, generator=torch.Generator().manual_seed(0))
    assert abs(float(fields.mean())) < 0.05                            # mean-zero field
    a = Darcy3D(coefficient="binary").coefficient(fields)
    assert set(torch.unique(a).tolist()) == {3.0, 12.0}
    assert 0.25 < float((a == 12.0).double().mean()) < 0.75           # comparable regions


def test_3d_bad_input_is_rejected():
    with pytest.raises(ValueError, match="coefficient"):
        Darcy3D(coefficient="uniform")
    with pytest.raises(ValueError, match=r"\(R, R, R\)"):
        Darcy3D().assemble(torch.ones(5, 5))
    with pytest.raises(ValueError, match="> 0"):
        Darcy3D().assemble(-torch.ones(5, 5, 5))
    with pytest.raises(ValueError, match=r"\(3, R, R, R\)"):
        ConvectionDiffusion3D().assemble(torch.ones(2, 5, 5, 5))
    with pytest.raises(ValueError, match="velocity"):
        ConvectionDiffusion3D(velocity=-1)
    with pytest.raises(ValueError, match=r"\(n, R, R, R\)"):
        Darcy3D().inputs({"grf": torch.ones(2, 5, 5)})


def _true_residuals(path, family, rtol):
    """Each stored sample's relative residual, recomputed from the file's float64 arrays."""
    with h5py.File(path, "r") as f:
        params = {key: torch.from_numpy(f[f"params/{key}"][()]) for key in f["params"]}
        outputs = torch.from_numpy(f["outputs"][()])
    residuals = []

    def check(As, B, X0=None):
        X = outputs[:, 0, 1:-1, 1:-1, 1:-1].reshape(B.shape)
        residuals.extend(float(torch.linalg.norm(b - A @ x) / torch.linalg.norm(b))
                         for A, b, x in zip(As, B, X))
        return X

    family.solve(params, check)
    return np.array(residuals)


@pytest.mark.parametrize("name, method", [
    ("darcy3d", {}),
    ("helmholtz3d", {}),                      # the default there: recycled GCRO-DR, sorted
    ("convection_diffusion3d", {"solver": "gcrodr", "precond": "gsmg", "order": "greedy"})])
def test_3d_families_generate_a_file_whose_samples_meet_rtol(tmp_path, name, method):
    path = generate(name, n=4, n_test=1, resolution=9, out=tmp_path / "d.h5", chunk_size=4,
                    dtype="float64", progress=False, rtol=1e-9, **method)
    with h5py.File(path, "r") as f:
        assert f["inputs"].shape[0] == 4 and f["inputs"].shape[2:] == (9, 9, 9)
        assert f["outputs"].shape == (4, 1, 9, 9, 9)
        assert sorted(f["grid"]) == ["x", "y", "z"]
        assert f["solver/converged"][()].all() and int(f.attrs["n_unconverged"]) == 0
        stored = f["solver/residual"][()]
    residuals = _true_residuals(path, get_pde(name), 1e-9)
    assert (residuals <= 1e-9).all() and np.allclose(residuals, stored, rtol=1e-3, atol=1e-15)


def test_3d_solve_resolution_subsamples_every_axis(tmp_path):
    path = generate("darcy3d", n=2, n_test=1, resolution=5, solve_resolution=9,
                    out=tmp_path / "d.h5", progress=False, dtype="float64")
    family = Darcy3D()
    with h5py.File(path, "r") as f:
        psi = torch.from_numpy(f["params/grf"][()])
        assert psi.shape == (2, 5, 5, 5) and f["outputs"].shape == (2, 1, 5, 5, 5)
        torch.testing.assert_close(torch.from_numpy(f["inputs"][()]),
                                   family.coefficient(psi)[:, None])


def test_unconverged_recycled_solves_are_never_written_as_converged(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = generate("convection_diffusion3d", n=3, n_test=1, resolution=9,
                        out=tmp_path / "c.h5", solver="gcrodr", order="greedy", maxiter=3,
                        fallback=None, dtype="float64", progress=False, rtol=1e-10)
    assert any(issubclass(w.category, RuntimeWarning) and "did not reach" in str(w.message)
               for w in caught)
    with h5py.File(path, "r") as f:
        converged, stored = f["solver/converged"][()], f["solver/residual"][()]
        assert int(f.attrs["n_unconverged"]) == 3
    residuals = _true_residuals(path, ConvectionDiffusion3D(), 1e-10)
    assert not converged.any() and (residuals > 1e-10).all() and (stored > 1e-10).all()
