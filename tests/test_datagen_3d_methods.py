"""generate() with batched GCRO-DR and the GPU direct solve, on 2-D and 3-D families.

Every check reads the file back: the stored solution is put into the systems re-assembled from
the stored parameters and its relative residual recomputed, so a sample is only trusted as far
as the file shows it.
"""
import json

import h5py
import numpy as np
import pytest
import torch

from sciml.datasets import generate, get_pde
from sciml.datasets.generate import choose_method
from sciml.datasets.krylov import gpu_direct_available

pytestmark = pytest.mark.usefixtures("one_thread")

RTOL = 1e-8
SMALL = dict(n=8, chunk_size=8, progress=False, dtype="float64", seed=0)


def _read(path):
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["config"])
        params = {key: torch.from_numpy(value[()]) for key, value in f["params"].items()}
        solver = {key: value[()] for key, value in f["solver"].items()}
        return config, params, torch.from_numpy(f["outputs"][()]), solver, dict(f.attrs)


def _file_residuals(path):
    """``‖b − A u‖ / ‖b‖`` of each stored sample, its systems re-assembled from the file."""
    config, params, outputs, _, _ = _read(path)
    family = get_pde(config["pde"], **config["pde_options"])
    interior = (slice(None), 0) + (slice(1, -1),) * getattr(family, "dim", 2)
    X = outputs[interior].reshape(outputs.shape[0], -1)
    systems = {}

    def stored(As, B, X0=None):
        systems.update(As=As, B=B)
        return X

    # The stored u goes through the family's own embedding back into the stored field: the
    # interior flattening matches the unknowns' numbering.
    np.testing.assert_array_equal(family.solve(params, stored).numpy(), outputs.numpy())
    return np.array([float(torch.linalg.vector_norm(b - A @ x) / torch.linalg.vector_norm(b))
                     for A, b, x in zip(systems["As"], systems["B"], X)])


@pytest.mark.parametrize("pde, resolution, precond", [
    ("helmholtz", 17, "slmg"),               # 2-D, indefinite, shifted-Laplacian per system
    ("helmholtz3d", 9, "none"),              # 3-D, indefinite, the CPU's recycling regime
    ("convection_diffusion3d", 11, "gsmg"),  # 3-D, non-symmetric
])
def test_batched_gcrodr_writes_samples_that_meet_rtol_in_the_file(tmp_path, pde, resolution,
                                                                  precond):
    out = generate(pde, resolution=resolution, out=tmp_path / "b.h5", solver="skr", batch=4,
                   precond=precond, rtol=RTOL, fallback=None, **SMALL)
    config, _, _, solver, attrs = _read(out)
    assert (config["solver"], config["order"], config["batch"]) == ("gcrodr", "greedy", 4)
    assert "batched GCRO-DR" in attrs["method"]
    residuals = _file_residuals(out)
    assert (residuals <= RTOL).all(), residuals
    # The stored diagnostics are each sample's own true residual, not the block's.
    np.testing.assert_allclose(solver["residual"], residuals, rtol=1e-4)
    assert solver["converged"].all() and not solver["fallback"].any()
    assert (solver["iterations"] > 0).all() and attrs["n_unconverged"] == 0


def test_batched_gcrodr_carries_the_space_across_blocks_on_3d_helmholtz(tmp_path):
    # Indefinite 3-D Helmholtz: every system after the first starts from the carried space
    # (within its block and from block to block), so it needs fewer iterations than fresh
    # GMRES-DR(40, 20) on the same system.
    common = dict(resolution=11, order="greedy", precond="none", rtol=RTOL, fallback=None,
                  **SMALL)
    fresh = _read(generate("helmholtz3d", out=tmp_path / "dr.h5", solver="gmresdr",
                           **common))[3]
    blocks = _read(generate("helmholtz3d", out=tmp_path / "b.h5", solver="gcrodr", batch=4,
                            **common))[3]
    solve_order = np.argsort(blocks["position"])
    later, second_leader = solve_order[1:], solve_order[4]
    assert blocks["iterations"][later].sum() < 0.8 * fresh["iterations"][later].sum(), (
        blocks["iterations"], fresh["iterations"])
    # The second block's first system has only the space the first block handed on.
    assert blocks["iterations"][second_leader] < 0.8 * fresh["iterations"][second_leader]


def test_batched_gcrodr_never_stores_a_missed_tolerance_as_converged(tmp_path):
    common = dict(resolution=9, solver="gcrodr", batch=4, maxiter=3, rtol=RTOL, **SMALL)
    with pytest.warns(RuntimeWarning, match="did not reach rtol"):
        out = generate("helmholtz3d", out=tmp_path / "nf.h5", fallback=None, **common)
    _, _, _, solver, attrs = _read(out)
    residuals = _file_residuals(out)
    assert not solver["converged"].any() and attrs["n_unconverged"] == 8
    assert (residuals > RTOL).all()
    np.testing.assert_allclose(solver["residual"], residuals, rtol=1e-6)
    # With the direct fallback every sample is rescued and says so.
    rescued = _read(generate("helmholtz3d", out=tmp_path / "f.h5", **common))[3]
    assert rescued["fallback"].all() and rescued["converged"].all()
    assert (rescued["residual"] <= RTOL).all() and (rescued["iterations"] >= 3).all()


def test_single_grid_multigrid_is_refused_for_a_stack_but_not_per_system():
    cpu = torch.device("cpu")
    family = get_pde("convection_diffusion3d")
    method = choose_method(family, cpu, solver="gcrodr", precond="gsmg", batch=4)
    assert (method["solver"], method["precond"], method["batch"]) == ("gcrodr", "gsmg", 4)
    with pytest.raises(ValueError, match="precond='gsmg' preconditions one grid.*"
                                         "solver='gcrodr'"):
        choose_method(family, cpu, solver="gmres", precond="gsmg", batch=4)


@pytest.mark.skipif(gpu_direct_available("cpu")[0], reason="this torch solves sparse on the CPU")
@pytest.mark.parametrize("option", ["solver", "fallback"])
def test_gpu_direct_is_refused_on_the_cpu_with_the_reason(tmp_path, option):
    with pytest.raises(ValueError, match=rf"^{option}='gpu_direct' needs torch.sparse.spsolve "
                                         rf"\(a CUDA build with cuDSS\), unavailable here: "
                                         rf".*spsolve.*; use 'direct'") as caught:
        generate("darcy3d", resolution=5, out=tmp_path / "g.h5", **{option: "gpu_direct"},
                 **SMALL)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # refused before touching the disk


@pytest.mark.cuda
@pytest.mark.parametrize("pde, resolution", [("helmholtz", 17), ("convection_diffusion3d", 9)])
def test_gpu_direct_solves_on_the_device_to_rtol(tmp_path, pde, resolution):
    available, why = gpu_direct_available("cuda")
    if not available:
        pytest.skip(why)
    out = generate(pde, resolution=resolution, out=tmp_path / "g.h5", device="cuda",
                   solver="gpu_direct", rtol=RTOL, fallback=None, **SMALL)
    _, _, _, solver, _ = _read(out)
    residuals = _file_residuals(out)
    assert (residuals <= RTOL).all() and solver["converged"].all()
    assert (solver["iterations"] == 0).all()


@pytest.mark.cuda
def test_batched_gcrodr_with_multigrid_on_the_device_meets_rtol(tmp_path):
    out = generate("helmholtz3d", resolution=11, out=tmp_path / "b.h5", device="cuda",
                   solver="skr", batch=4, precond="slmg", rtol=RTOL, fallback=None, **SMALL)
    _, _, _, solver, _ = _read(out)
    residuals = _file_residuals(out)
    assert (residuals <= RTOL).all() and solver["converged"].all()
    np.testing.assert_allclose(solver["residual"], residuals, rtol=1e-4)
