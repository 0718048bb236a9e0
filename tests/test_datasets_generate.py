"""Dataset generation: determinism, crash-safe resumption, validation, and the reader."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from sciml.datasets import H5Dataset, generate

SMALL = dict(n=12, resolution=17, chunk_size=4, progress=False)
TIMINGS = ("solver/seconds", "solver/stage_seconds")  # the only run-dependent fields


def _read_all(path):
    arrays, attrs = {}, {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        attrs = {key: f.attrs[key] for key in f.attrs}
    return arrays, attrs


def _assert_same_file(a, b):
    arrays_a, attrs_a = _read_all(a)
    arrays_b, attrs_b = _read_all(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        if name not in TIMINGS:
            np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert attrs_a == attrs_b


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: 12 samples at 17², 3 chunks."""
    return generate("darcy", out=tmp_path_factory.mktemp("ref") / "ref.h5", seed=3, **SMALL)


def test_file_layout_and_solutions(reference):
    arrays, attrs = _read_all(reference)
    assert arrays["inputs"].shape == (12, 1, 17, 17) and arrays["inputs"].dtype == np.float32
    assert arrays["outputs"].shape == (12, 1, 17, 17)
    assert arrays["params/grf"].shape == (12, 17, 17)
    np.testing.assert_array_equal(arrays["grid/x"], np.linspace(0, 1, 17))
    assert arrays["solver/converged"].all() and (arrays["solver/residual"] < 1e-8).all()
    for name in ("iterations", "matvecs", "seconds"):
        assert arrays[f"solver/{name}"].shape == (12,)
    # The stored coefficient is the thresholded GRF, and u > 0 inside, 0 on the boundary.
    np.testing.assert_array_equal(arrays["inputs"][:, 0],
                                  np.where(arrays["params/grf"] >= 0, 12.0, 3.0))
    u = arrays["outputs"][:, 0]
    assert (u[:, 1:-1, 1:-1] > 0).all() and not u[:, 0].any() and not u[:, :, -1].any()
    assert (attrs["pde"], attrs["seed"], attrs["n_train"], attrs["n_test"]) == ("darcy", 3, 11, 1)
    assert attrs["format_version"] == 1 and attrs["sciml_version"] == "0.1.0"
    with h5py.File(reference, "r") as f:
        assert f["inputs"].chunks == (1, 1, 17, 17) and f["inputs"].compression == "gzip"
    assert not os.path.exists(f"{reference}.parts")


def test_same_seed_same_file_and_different_seed_differs(reference, tmp_path):
    again = generate("darcy", out=tmp_path / "again.h5", seed=3, **SMALL)
    _assert_same_file(reference, again)
    other = generate("darcy", out=tmp_path / "other.h5", seed=4, **SMALL)
    with h5py.File(reference, "r") as f, h5py.File(other, "r") as g:
        assert not np.array_equal(f["params/grf"][()], g["params/grf"][()])
        assert not np.array_equal(f["outputs"][()], g["outputs"][()])


def test_sigkill_midway_resumes_to_the_uninterrupted_file(reference, tmp_path):
    out = tmp_path / "killed.h5"
    # The child slows each solve so the kill lands inside chunk 2 (of 0, 1, 2).
    script = textwrap.dedent(f"""
        import sys, time
        from sciml.datasets import Darcy, generate
        solve = Darcy.solve
        def slow(self, params, linear_solve):
            time.sleep(0.1 * len(params["grf"]))
            return solve(self, params, linear_solve)
        Darcy.solve = slow
        generate("darcy", out={str(out)!r}, seed=3, n=12, resolution=17, chunk_size=4,
                 progress=False, callback=lambda k, done: print(k, done, flush=True))
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        lines = [child.stdout.readline().split() for _ in range(2)]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert lines == [["0", "4"], ["1", "8"]]
    assert not out.exists()
    parts = sorted(p.name for p in (tmp_path / "killed.h5.parts").iterdir())
    assert "chunk_000000.h5" in parts and "chunk_000001.h5" in parts
    assert "chunk_000002.h5" not in parts

    resumed = []
    generate("darcy", out=out, seed=3, callback=lambda k, done: resumed.append((k, done)),
             **SMALL)
    assert resumed == [(2, 12)]  # only the missing chunk was computed
    _assert_same_file(reference, out)
    assert not (tmp_path / "killed.h5.parts").exists()


def test_complete_file_is_returned_without_work(reference):
    calls = []
    mtime = os.stat(reference).st_mtime_ns
    assert generate("darcy", out=reference, seed=3, callback=lambda *a: calls.append(a),
                    **SMALL) == reference
    assert calls == [] and os.stat(reference).st_mtime_ns == mtime


def test_other_configuration_is_refused_and_file_untouched(reference, tmp_path):
    before = reference.read_bytes()
    with pytest.raises(ValueError) as info:
        generate("darcy", out=reference, seed=4, **SMALL, a_high=10.0)
    message = str(info.value)
    assert str(reference) in message and "seed" in message and "pde_options.a_high" in message
    assert reference.read_bytes() == before
    assert not os.path.exists(f"{reference}.parts") and not os.path.exists(f"{reference}.tmp")

    # An unfinished run of another configuration is refused too, then discarded on request.
    out = tmp_path / "mixed.h5"
    parts = tmp_path / "mixed.h5.parts"
    parts.mkdir()
    (parts / "config.json").write_text('{"seed": 99}')
    with pytest.raises(ValueError, match="unfinished run"):
        generate("darcy", out=out, seed=3, **SMALL)
    assert (parts / "config.json").read_text() == '{"seed": 99}'
    generate("darcy", out=out, seed=3, overwrite=True, **SMALL)
    _assert_same_file(reference, out)


def test_overwrite_replaces_a_different_file(tmp_path):
    out = tmp_path / "data.h5"
    out.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a sciml dataset file"):
        generate("darcy", out=out, **SMALL)
    assert out.read_bytes() == b"not hdf5"
    generate("darcy", out=out, overwrite=True, **SMALL)
    assert len(H5Dataset(out, split="all")) == 12


@pytest.mark.parametrize("options, error, words", [
    (dict(pde="navier"), ValueError, "unknown PDE 'navier'"),
    (dict(n=1), ValueError, "n must be >= 2, got 1"),
    (dict(n_test=12), ValueError, "n_test must be < n=12"),
    (dict(resolution=2), ValueError, "resolution must be >= 3"),
    (dict(chunk_size=0), ValueError, "chunk_size must be >= 1"),
    (dict(dtype="float16"), ValueError, "'float16'"),
    (dict(device="gpu7"), ValueError, "'gpu7'"),
    (dict(solver="magic"), ValueError, "unknown linear solver 'magic'"),
    (dict(solve_resolution=40), ValueError, "multiple of resolution - 1 = 16"),
    (dict(coefficient="wavy"), ValueError, "'wavy'"),
    (dict(viscosity=2.0), ValueError, "viscosity"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(rtol=0.0), ValueError, "rtol"),
])
def test_bad_arguments_fail_before_touching_the_disk(tmp_path, options, error, words):
    kwargs = {**SMALL, "pde": "darcy", **options}
    with pytest.raises(error) as info:
        generate(out=tmp_path / "bad.h5", **kwargs)
    assert words in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unconverged_samples_are_flagged_and_warned(tmp_path):
    with pytest.warns(RuntimeWarning, match="did not reach rtol"):
        out = generate("darcy", out=tmp_path / "strict.h5", rtol=1e-30, n=4, resolution=9,
                       chunk_size=2, progress=False)
    with h5py.File(out, "r") as f:
        assert not f["solver/converged"][()].any()
        assert (f["solver/residual"][()] > 1e-30).all()
        assert f.attrs["n_unconverged"] == 4


def test_solving_finer_and_subsampling_is_more_accurate(tmp_path):
    common = dict(n=2, n_test=1, seed=0, chunk_size=2, progress=False, dtype="float64",
                  coefficient="lognormal")
    coarse = generate("darcy", out=tmp_path / "c.h5", resolution=17, **common)
    fine = generate("darcy", out=tmp_path / "f.h5", resolution=17, solve_resolution=65,
                    **common)
    truth = generate("darcy", out=tmp_path / "t.h5", resolution=17, solve_resolution=129,
                     **common)
    u = {name: _read_all(path)[0]["outputs"] for name, path in
         (("coarse", coarse), ("fine", fine), ("truth", truth))}
    # One seed gives the same low GRF modes at every resolution (grf draws shell by shell),
    # so all three solve the same field up to its smallest modes.
    error_fine = np.abs(u["fine"] - u["truth"]).max()
    error_coarse = np.abs(u["coarse"] - u["truth"]).max()
    assert error_fine < 0.5 * error_coarse, (error_fine, error_coarse)


def test_h5dataset_splits_loader_and_pickling(reference):
    train, test = H5Dataset(reference), H5Dataset(reference, split="test")
    everything = H5Dataset(reference, split="all", dtype=torch.float64)
    assert (len(train), len(test), len(everything)) == (11, 1, 12)
    assert (train.in_channels, train.out_channels, train.grid_shape) == (1, 1, (17, 17))
    assert train.attrs["config"]["seed"] == 3 and train.attrs["n_train"] == 11
    item = train[0]
    assert item["x"].shape == (1, 17, 17) and item["x"].dtype == torch.float32
    assert everything[0]["y"].dtype == torch.float64
    # Splits are the disjoint ranges [0, 11) and [11, 12) of the file.
    with h5py.File(reference, "r") as f:
        outputs = f["outputs"][()]
    np.testing.assert_array_equal(test[0]["y"].numpy(), outputs[11])
    np.testing.assert_array_equal(train[-1]["y"].numpy(), outputs[10])
    train_rows = {train[i]["y"].numpy().tobytes() for i in range(len(train))}
    assert len(train_rows) == 11 and test[0]["y"].numpy().tobytes() not in train_rows
    with pytest.raises(IndexError):
        train[11]

    # The parent's open handle must not be shared with the forked workers.
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2)
    stacked = torch.cat([batch["y"] for batch in loader]).numpy()
    np.testing.assert_array_equal(stacked, outputs[:11])

    clone = pickle.loads(pickle.dumps(train))
    assert clone._file is None
    np.testing.assert_array_equal(clone[3]["x"].numpy(), train[3]["x"].numpy())
    train.close()
    np.testing.assert_array_equal(train[3]["x"].numpy(), clone[3]["x"].numpy())


def test_h5dataset_rejects_truncated_and_foreign_files(reference, tmp_path):
    data = reference.read_bytes()
    truncated = tmp_path / "half.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        H5Dataset(truncated)
    assert str(truncated) in str(info.value) and "truncated" in str(info.value)

    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        H5Dataset(text)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["inputs"] = np.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match="not a sciml dataset file"):
        H5Dataset(foreign)
    with pytest.raises(ValueError, match="split"):
        H5Dataset(reference, split="val")
    with pytest.raises(FileNotFoundError):
        H5Dataset(tmp_path / "missing.h5")
