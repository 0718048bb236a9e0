"""The generator's solver choices: SKR order and recycling, fallback, batching, families, ranks."""
import json
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg
import torch

from sciml.datasets import LINEAR_SOLVERS, H5Dataset, SolveResult, generate, get_pde
from sciml.datasets.generate import choose_method
from sciml.datasets.sorting import greedy_order

sys.path.insert(0, str(Path(__file__).parent))
from _torchrun import failure, run_two_ranks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(n=8, resolution=17, chunk_size=4, progress=False, dtype="float64")


def _read(path):
    with h5py.File(path, "r") as f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        return arrays, dict(f.attrs)


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    return generate("darcy", out=tmp_path_factory.mktemp("d") / "direct.h5", seed=1,
                    coefficient="lognormal", solver="direct", **SMALL)


def test_auto_picks_batched_multigrid_cg_for_darcy_and_says_so(direct, tmp_path):
    auto = generate("darcy", out=tmp_path / "auto.h5", seed=1, coefficient="lognormal", **SMALL)
    arrays, attrs = _read(auto)
    config = json.loads(attrs["config"])
    assert (config["solver"], config["precond"], config["batch"]) == ("cg", "mg", 4)
    assert "multigrid" in attrs["method"]
    assert arrays["solver/converged"].all() and (arrays["solver/residual"] <= 1e-8).all()
    reference = _read(direct)[0]["outputs"]
    assert np.abs(arrays["outputs"] - reference).max() <= 1e-6 * np.abs(reference).max()


def test_skr_solves_in_greedy_order_to_tolerance_and_agrees_with_direct(direct, tmp_path):
    skr = generate("darcy", out=tmp_path / "skr.h5", seed=1, coefficient="lognormal",
                   solver="skr", **SMALL)
    arrays, attrs = _read(skr)
    config = json.loads(attrs["config"])
    assert (config["solver"], config["order"]) == ("gcrodr", "greedy")
    assert arrays["solver/converged"].all() and (arrays["solver/residual"] <= 1e-8).all()
    assert not arrays["solver/fallback"].any() and (arrays["solver/iterations"] > 0).all()
    reference = _read(direct)[0]["outputs"]
    assert np.abs(arrays["outputs"] - reference).max() <= 1e-6 * np.abs(reference).max()
    # The stored positions re-derive each chunk's greedy order on the coefficient.
    a = arrays["inputs"][:, 0].reshape(8, -1)
    for k in range(2):
        rows = slice(4 * k, 4 * k + 4)
        order = greedy_order(torch.from_numpy(a[rows])).numpy()
        np.testing.assert_array_equal(np.argsort(arrays["solver/position"][rows]), order)
        assert sorted(arrays["solver/position"][rows]) == list(range(4 * k, 4 * k + 4))


def test_recycling_lowers_iterations_within_a_chunk(tmp_path):
    common = dict(n=6, resolution=33, chunk_size=6, progress=False, coefficient="lognormal",
                  seed=2, order="greedy")
    fresh = _read(generate("darcy", out=tmp_path / "dr.h5", solver="gmresdr", **common))[0]
    skr = _read(generate("darcy", out=tmp_path / "skr.h5", solver="gcrodr", **common))[0]
    first = np.argsort(skr["solver/position"])
    # The first system has nothing to recycle; the later ones reuse the carried space.
    later = first[1:]
    assert skr["solver/iterations"][later].sum() < 0.8 * fresh["solver/iterations"][later].sum()


def test_missed_tolerance_falls_back_or_is_flagged(tmp_path):
    common = dict(n=4, resolution=17, chunk_size=2, progress=False, seed=0, solver="gmres",
                  maxiter=1, coefficient="lognormal")
    rescued = _read(generate("darcy", out=tmp_path / "f.h5", **common))[0]
    assert rescued["solver/fallback"].all() and rescued["solver/converged"].all()
    assert (rescued["solver/iterations"] >= 1).all()  # the failed attempt's work is counted
    assert (rescued["solver/residual"] <= 1e-8).all()
    with pytest.warns(RuntimeWarning, match="did not reach rtol"):
        out = generate("darcy", out=tmp_path / "nf.h5", fallback=None, **common)
    flagged, attrs = _read(out)
    assert not flagged["solver/converged"].any() and attrs["n_unconverged"] == 4
    assert (flagged["solver/residual"] > 1e-8).all()


@pytest.mark.parametrize("pde", ["poisson", "helmholtz", "convection_diffusion", "heat"])
def test_every_family_generates_solutions_that_solve_its_systems(pde, tmp_path):
    out = generate(pde, out=tmp_path / f"{pde}.h5", n=4, resolution=17, chunk_size=4,
                   progress=False, dtype="float64", seed=0)
    arrays, _ = _read(out)
    family = get_pde(pde)
    assert arrays["solver/converged"].all() and (arrays["solver/residual"] <= 1e-8).all()
    assert arrays["inputs"].shape == (4, family.in_channels, 17, 17)
    time_axis = () if family.time_steps is None else (family.time_steps,)
    assert arrays["outputs"].shape == (4, family.out_channels, *time_axis, 17, 17)
    # Regenerate sample 0's systems from its stored parameters and check the stored solution.
    params = {key[len("params/"):]: torch.from_numpy(value[:1])
              for key, value in arrays.items() if key.startswith("params/")}

    def scipy_solve(As, B, X0=None):
        return torch.stack([torch.from_numpy(scipy.sparse.linalg.spsolve(
            _scipy(A), b.numpy())) for A, b in zip(As, B)])

    expected = family.solve(params, scipy_solve)[0].numpy()
    np.testing.assert_allclose(arrays["outputs"][0], expected, rtol=0,
                               atol=1e-7 * np.abs(expected).max())
    data = H5Dataset(out, split="all")
    assert data[0]["y"].shape == (family.out_channels * int(np.prod(time_axis)), 17, 17)


def _scipy(A):
    import scipy.sparse
    return scipy.sparse.csr_matrix((A.values().numpy(), A.col_indices().numpy(),
                                    A.crow_indices().numpy()), shape=tuple(A.shape))


@pytest.mark.parametrize("precond", ["jacobi", "mg"])
def test_batched_cg_block_equals_direct(direct, tmp_path, precond):
    out = generate("darcy", out=tmp_path / "b.h5", seed=1, coefficient="lognormal",
                   solver="cg", batch=4, precond=precond, **SMALL)
    arrays, _ = _read(out)
    assert arrays["solver/converged"].all() and not arrays["solver/fallback"].any()
    if precond == "mg":  # the stacked V-cycle keeps CG's iterations low for the whole block
        assert arrays["solver/iterations"].max() <= 15
    reference = _read(direct)[0]["outputs"]
    assert np.abs(arrays["outputs"] - reference).max() <= 1e-6 * np.abs(reference).max()


@pytest.mark.parametrize("options, words", [
    (dict(solver="cg", pde="helmholtz"), "symmetric positive definite"),
    (dict(solver="gmresdr", batch=4), "batch > 1 needs a batched solver"),
    (dict(precond="magic"), "unknown preconditioner 'magic'"),
    (dict(order="random"), "unknown order 'random'"),
    (dict(fallback="magic"), "unknown linear solver 'magic'"),
    (dict(maxiter=0), "maxiter must be >= 1"),
])
def test_bad_solver_choices_fail_before_touching_the_disk(tmp_path, options, words):
    kwargs = {"pde": "darcy", **SMALL, **options}
    with pytest.raises(ValueError, match=words):
        generate(out=tmp_path / "bad.h5", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_two_ranks_under_torchrun_write_the_single_process_file(direct, tmp_path):
    def write_script(attempt):
        script = tmp_path / f"gen{attempt}.py"
        script.write_text(textwrap.dedent(f"""
            from sciml.datasets import generate
            generate("darcy", out={str(tmp_path / f"ranks{attempt}.h5")!r}, seed=1, coefficient="lognormal",
                     solver="direct", n=8, resolution=17, chunk_size=4, progress=False, dtype="float64")
        """))
        return script

    proc = run_two_ranks(write_script)
    assert proc.returncode == 0, failure(proc)
    out = sorted(tmp_path.glob("ranks*.h5"))[-1]
    ours, reference = _read(out)[0], _read(direct)[0]
    for name in reference:
        if name not in ("solver/seconds", "solver/stage_seconds"):  # timings
            np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)


def test_a_nan_solve_is_stored_as_nan_not_as_a_small_residual(tmp_path, monkeypatch):
    def broken(A, b, **options):
        return SolveResult(x=torch.full_like(b, float("nan")), iterations=3, matvecs=4,
                           residual=float("nan"), converged=False, seconds=0.0)

    monkeypatch.setitem(LINEAR_SOLVERS, "broken", broken)
    with pytest.warns(RuntimeWarning, match="did not reach rtol"):
        out = generate("darcy", out=tmp_path / "nan.h5", solver="broken", fallback=None, **SMALL)
    arrays, _ = _read(out)
    assert np.isnan(arrays["solver/residual"]).all() and not arrays["solver/converged"].any()


def test_gpu_defaults_and_refusals_are_decided_before_any_work():
    cuda = torch.device("cuda")
    darcy, helmholtz = get_pde("darcy"), get_pde("helmholtz")
    cpu = torch.device("cpu")
    method = choose_method(darcy, cuda, chunk_size=128)
    assert (method["solver"], method["precond"], method["batch"]) == ("cg", "mg", 128)
    # not SPD on a GPU: solved on the device by recycling, not sent to SuperLU on the CPU
    on_gpu = choose_method(helmholtz, cuda)
    assert (on_gpu["solver"], on_gpu["precond"], on_gpu["order"]) == ("gcrodr", "slmg", "greedy")
    assert choose_method(helmholtz, cpu)["solver"] == "direct"
    assert choose_method(darcy, cpu, chunk_size=16)["batch"] == 16
    assert choose_method(darcy, cpu, chunk_size=256)["batch"] == 32  # larger blocks run slower
    assert choose_method(darcy, cuda, chunk_size=1024)["batch"] == 1024
    # one factorization serving many solves: the shared Poisson matrix, the heat equation's steps
    assert choose_method(get_pde("poisson"), cpu)["solver"] == "direct"
    assert choose_method(get_pde("heat"), cpu)["solver"] == "direct"
    with pytest.raises(ValueError, match="CPU only"):
        choose_method(darcy, cuda, solver="cg", precond="ilu")
    with pytest.raises(ValueError, match="not symmetric"):
        choose_method(darcy, torch.device("cpu"), solver="cg", precond="ilu")
    with pytest.raises(ValueError, match="batch must be <= chunk_size=32"):
        choose_method(darcy, cuda, batch=64, chunk_size=32)
    with pytest.raises(ValueError, match="CPU only"):
        choose_method(darcy, cuda, solver="amg")
    assert choose_method(darcy, torch.device("cpu"), solver="amg")["precond"] == "none"
