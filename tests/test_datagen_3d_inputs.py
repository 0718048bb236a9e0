"""A new user's first 3-D runs: `sciml generate` on a small cube, and the inputs it must refuse
(grids too small or too large, a method that does not fit the family) with one clear line,
before anything is written."""
import json
import sys
from pathlib import Path

import h5py
import pytest
import torch

from sciml.cli import main
from sciml.datasets import generate, get_pde
from sciml.datasets.generate import choose_method

sys.path.insert(0, str(Path(__file__).parent))
from test_datagen_3d_methods import _file_residuals  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(n=4, chunk_size=4, progress=False, dtype="float64", seed=0)
FAMILIES_3D = ["darcy3d", "convection_diffusion3d", "helmholtz3d"]


def test_cli_writes_a_small_3d_dataset_whose_samples_solve_their_systems(tmp_path, capsys):
    out = tmp_path / "d3.h5"
    assert main(["generate", "darcy3d", "--n", "4", "--resolution", "9", "--dtype", "float64",
                 "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    with h5py.File(out) as f:
        assert f["inputs"].shape == f["outputs"].shape == (4, 1, 9, 9, 9)
        assert sorted(f["grid"]) == ["x", "y", "z"]
        config = json.loads(f.attrs["config"])
        converged = f["solver/converged"][()]
    assert (config["solver"], config["precond"]) == ("cg", "gsmg")
    assert converged.all() and (_file_residuals(out) <= 1e-8).all()


@pytest.mark.parametrize("pde", FAMILIES_3D)
def test_the_smallest_cube_has_one_unknown_and_is_solved(tmp_path, pde):
    # resolution 3: one interior node; every default method handles a 1×1×1 system.
    out = generate(pde, resolution=3, out=tmp_path / "s.h5", **SMALL)
    residuals = _file_residuals(out)
    assert (residuals <= 1e-8).all(), residuals
    with pytest.raises(ValueError, match="resolution must be >= 3, got 2"):
        generate(pde, resolution=2, out=tmp_path / "t.h5", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_a_3d_grid_too_large_for_memory_is_refused_with_the_cube_and_an_estimate(tmp_path):
    with pytest.raises(ValueError) as info:
        generate("darcy3d", n=100, resolution=1000, out=tmp_path / "big.h5", progress=False)
    message = str(info.value)
    # 100 B per node and sample of the chunk (32), 1300 B fixed, 1500 B per system solved
    need = 1000 ** 3 * (100 * 32 + 1300 + 1500) / 2 ** 30
    assert "at 1000³ needs about" in message and f"{need:.1f} GiB" in message
    assert "coarser grid" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_the_3d_memory_hint_names_a_chunk_that_fits(monkeypatch):
    module = sys.modules["sciml.datasets.generate"]  # the module, not the function
    monkeypatch.setattr(module, "_available_memory", lambda device: 2 ** 30)
    cpu = torch.device("cpu")
    # 66³ nodes: 32 samples need 287 496 · (3200 + 2800) B = 1.6 GiB > 1 GiB; the hint is the
    # largest chunk whose estimate fits: (2³⁰ / 66³ − 2800) // 100 = 9.
    with pytest.raises(ValueError, match=r"at 66³ needs about 1\.6 GiB on cpu, 1\.0 GiB is free: "
                                         r"use chunk_size <= 9$"):
        module._check_memory(66, 32, 1, cpu, dim=3)
    module._check_memory(66, 9, 1, cpu, dim=3)  # the hinted chunk passes
    # A batched block of 4 cannot fit at any chunk size; one system at a time can.
    with pytest.raises(ValueError, match=r"use a smaller batch \(batch=1 fits chunk_size <= 9\)"):
        module._check_memory(66, 8, 4, cpu, dim=3)
    with pytest.raises(ValueError, match=r"coarser grid \(resolution or solve_resolution at most "
                                         r"about 71\)"):
        module._check_memory(80, 1, 1, cpu, dim=3)  # (2³⁰ / 2900)^(1/3) = 71.8


@pytest.mark.parametrize("pde, options, words", [
    ("helmholtz3d", dict(solver="amg"), "solver 'amg' (CG with pyamg) needs symmetric positive "
                                        "definite systems; PDE 'helmholtz3d' is not"),
    ("convection_diffusion3d", dict(solver="cg"), "solver 'cg' (CG) needs symmetric positive "
                                                  "definite systems; PDE 'convection_diffusion3d'"),
    ("darcy3d", dict(solver="gmresdr", precond="slmg"), "precond='slmg' is the shifted-Laplacian "
                                                        "multigrid for Helmholtz matrices"),
    ("convection_diffusion3d", dict(precond="slmg32"), "PDE 'convection_diffusion3d' is not one: "
                                                       "use precond='gsmg'"),
    ("darcy3d", dict(precond="mg"), "precond='mg' is the 2-D multigrid; use precond='gsmg'"),
    ("darcy3d", dict(solver="cg", precond="gsmg", batch=4), "preconditions one grid, not a "
                                                            "stacked block"),
    ("helmholtz3d", dict(solver="direct", precond="slmg"), "does not apply to solver 'direct'"),
])
def test_a_method_that_does_not_fit_the_family_is_refused_before_any_work(tmp_path, pde, options,
                                                                          words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        generate(pde, resolution=9, out=tmp_path / "bad.h5", **SMALL, **options)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_reports_a_method_that_does_not_fit_in_one_line(tmp_path, capsys):
    assert main(["generate", "helmholtz3d", "--solver", "amg", "--n", "4", "--resolution", "9",
                 "--out", str(tmp_path / "bad.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs symmetric positive definite" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_one_grid_multigrid_asked_for_by_name_runs_one_system_at_a_time(tmp_path):
    # Darcy's auto method solves blocks (batched CG on the stacked 2-D multigrid); asking for
    # the Gauss–Seidel multigrid, which preconditions one grid, gets CG one system at a time
    # instead of an error about a batch the user never set.
    assert choose_method(get_pde("darcy"), torch.device("cpu"), precond="gsmg")["batch"] == 1
    out = generate("darcy", resolution=33, out=tmp_path / "g.h5", precond="gsmg",
                   coefficient="lognormal", **SMALL)
    with h5py.File(out) as f:
        config = json.loads(f.attrs["config"])
        iterations, converged = f["solver/iterations"][()], f["solver/converged"][()]
    assert (config["solver"], config["precond"], config["batch"]) == ("cg", "gsmg", 1)
    assert converged.all() and iterations.max() <= 12
    assert (_file_residuals(out) <= 1e-8).all()
