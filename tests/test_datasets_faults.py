"""Faults around data generation and reading: a full disk, unusable outputs, runs that cannot
fit in memory, two writers at once, and data the reader must not pass on silently."""
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from sciml.cli import main
from sciml.datasets import H5Dataset, generate
from sciml.datasets.writer import OutputLockedError

SMALL = dict(n=12, resolution=17, chunk_size=4, progress=False, seed=3)


def _mount_tmpfs(path, options):
    path.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=1m"):
        pytest.skip("cannot mount a tmpfs here (not root); the injected ENOSPC of "
                    "test_datasets_writer covers the writer's side")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


def test_a_full_disk_ends_in_one_line_keeps_finished_chunks_and_resumes(small_disk, tmp_path,
                                                                         capsys):
    out = small_disk / "d.h5"
    args = ["generate", "darcy", "--n", "40", "--resolution", "65", "--chunk-size", "8",
            "--out", str(out), "--quiet"]
    assert main(args) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "no space left" in message and "resumed" in message
    # No partial file a later run could take for finished work, no temporary left behind.
    assert not out.exists() and not any(p.suffix == ".tmp" for p in small_disk.rglob("*"))
    kept = sorted(p.name for p in (small_disk / "d.h5.parts").glob("chunk_*.h5"))
    assert kept and kept[0] == "chunk_000000.h5"

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True, timeout=30)
    assert main(args) == 0
    reference = generate("darcy", out=tmp_path / "ref.h5", n=40, resolution=65, chunk_size=8,
                         progress=False)
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
        for name in ("inputs", "outputs", "params/grf", "solver/iterations"):
            np.testing.assert_array_equal(f[name][()], g[name][()])


def test_unusable_outputs_are_refused_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    cases = [(a_file / "d.h5", "which is a file, not a folder"),
             (tmp_path, "is a folder")]
    read_only = tmp_path / "ro"
    if _mount_tmpfs(read_only, "ro,size=1m"):
        cases.append((read_only / "d.h5", "not writable"))
    try:
        for out, words in cases:
            assert main(["generate", "darcy", "--n", "4", "--resolution", "9", "--out", str(out),
                         "--quiet"]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and words in err, err
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=False, timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "ro"]


@pytest.mark.parametrize("resolution", [20_000, 100_000])
def test_a_chunk_that_cannot_fit_in_memory_is_refused_with_an_estimate(tmp_path, resolution):
    with pytest.raises(ValueError) as info:
        generate("darcy", n=100, resolution=resolution, out=tmp_path / "big.h5", progress=False)
    message = str(info.value)
    assert f"{resolution}²" in message and "GiB" in message and "coarser grid" in message
    # 300 + 400 bytes per node and sample (measured), 32 samples: the estimate in the message
    need = resolution ** 2 * 700 * 32 / 2 ** 30
    assert f"{need:.1f} GiB" in message
    assert list(tmp_path.iterdir()) == []


def test_two_runs_started_together_leave_one_valid_file(tmp_path):
    reference = generate("darcy", out=tmp_path / "ref.h5", **SMALL)
    script = textwrap.dedent("""
        import sys
        from sciml.cli import main
        sys.exit(main(["generate", "darcy", "--n", "12", "--resolution", "17", "--chunk-size",
                       "4", "--seed", "3", "--out", sys.argv[1], "--quiet"]))
    """)
    for trial in range(2):
        out = tmp_path / f"race{trial}.h5"
        runs = [subprocess.Popen([sys.executable, "-c", script, str(out)], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
        results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
        codes = sorted(code for code, _ in results)
        # Either both succeed (the second found the finished file) or the second was refused
        # at once, naming the first one's PID; never a corrupt file reported as written.
        assert codes in ([0, 0], [0, 2]), results
        for code, err in results:
            if code == 2:
                assert "being written by another run (PID" in err
        with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
            for name in ("inputs", "outputs", "grid/x", "params/grf"):
                np.testing.assert_array_equal(f[name][()], g[name][()])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate("darcy", out=tmp_path_factory.mktemp("data") / "d.h5", **SMALL)


def _copy_with(data, path, edit):
    path.write_bytes(data.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def test_unconverged_samples_are_left_out_with_a_count(data, tmp_path):
    def flag(f):
        converged = f["solver/converged"][()]
        converged[[2, 5, 11]] = False  # two in the training split, one in the test split
        f["solver/converged"][...] = converged

    path = _copy_with(data, tmp_path / "flagged.h5", flag)
    with pytest.warns(RuntimeWarning, match="2 of 11 samples of split 'train' did not converge"):
        train = H5Dataset(path)
    assert len(train) == 9
    rows = [0, 1, 3, 4, 6, 7, 8, 9, 10]
    with h5py.File(path, "r") as f:
        outputs = f["outputs"][()]
    np.testing.assert_array_equal(np.stack([train[i]["y"].numpy() for i in range(9)]),
                                  outputs[rows])
    with pytest.warns(RuntimeWarning, match="1 of 1 samples of split 'test'"):
        assert len(H5Dataset(path, split="test")) == 0
    assert len(H5Dataset(path, include_unconverged=True)) == 11


def test_complex_data_is_refused_unless_asked_for(data, tmp_path):
    def complexify(f):
        inputs = f["inputs"][()]
        del f["inputs"]
        f["inputs"] = inputs + 1j * inputs

    path = _copy_with(data, tmp_path / "complex.h5", complexify)
    with pytest.raises(ValueError, match="complex 'inputs'.*imaginary part.*complex64"):
        H5Dataset(path)
    item = H5Dataset(path, dtype=torch.complex64)[0]
    assert item["x"].dtype == torch.complex64
    np.testing.assert_array_equal(item["x"].imag.numpy(), item["x"].real.numpy())


def test_a_non_finite_sample_is_named_when_read(data, tmp_path):
    def poison(f):
        outputs = f["outputs"][()]
        outputs[4, 0, 3, 3] = np.nan
        f["outputs"][...] = outputs

    path = _copy_with(data, tmp_path / "nan.h5", poison)
    train = H5Dataset(path)
    assert train[3]["y"].isfinite().all()
    with pytest.raises(ValueError) as info:
        train[4]
    message = str(info.value)
    assert "nan.h5" in message and "'train'" in message and "sample 4" in message
    assert "'outputs'" in message


def test_data_stored_outside_the_file_is_refused(data, tmp_path):
    raw = tmp_path / "outside.bin"
    raw.write_bytes(np.zeros((12, 1, 17, 17), np.float32).tobytes())

    def external(f):
        del f["outputs"]
        f.create_dataset("outputs", shape=(12, 1, 17, 17), dtype=np.float32,
                         external=[(str(raw), 0, h5py.h5f.UNLIMITED)])

    path = _copy_with(data, tmp_path / "external.h5", external)
    with pytest.raises(ValueError, match="stored outside the file"):
        H5Dataset(path)


def test_a_failed_setup_releases_the_lock(tmp_path):
    out = tmp_path / "y.h5"
    (tmp_path / "y.h5.parts").write_text("a file where the parts folder goes")
    for _ in range(2):  # the same error twice: the first call left no lock behind
        with pytest.raises(OSError) as info:
            generate("darcy", out=out, **SMALL)
        assert not isinstance(info.value, OutputLockedError)
    (tmp_path / "y.h5.parts").unlink()
    generate("darcy", out=out, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.h5"]


def test_a_finished_file_is_returned_from_a_read_only_folder(tmp_path):
    folder = tmp_path / "shared"
    if not _mount_tmpfs(folder, "size=4m"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        out = generate("darcy", out=folder / "d.h5", **SMALL)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, timeout=30)
        calls = []
        assert generate("darcy", out=out, callback=lambda *a: calls.append(a), **SMALL) == out
        assert calls == []
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, timeout=30)


def test_leftovers_of_a_run_killed_after_its_rename_are_removed(tmp_path):
    out = generate("darcy", out=tmp_path / "d.h5", **SMALL)
    parts = tmp_path / "d.h5.parts"
    parts.mkdir()
    (parts / "chunk_000000.h5").write_bytes(b"a copy nobody needs any more")
    calls = []
    generate("darcy", out=out, callback=lambda *a: calls.append(a), **SMALL)
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_a_file_of_the_previous_format_is_still_taken_as_finished(tmp_path):
    out = generate("darcy", out=tmp_path / "d.h5", **SMALL)
    with h5py.File(out, "r+") as f:  # what the previous version wrote: no such keys
        config = json.loads(f.attrs["config"])
        del config["compression"], config["rng_device"]
        f.attrs["config"] = json.dumps(config, sort_keys=True)
    calls = []
    generate("darcy", out=out, callback=lambda *a: calls.append(a), **SMALL)
    assert calls == []
    with pytest.raises(ValueError, match="compression"):  # a choice other than the old one
        generate("darcy", out=out, compression="none", **SMALL)


def test_a_chunk_larger_than_n_is_estimated_at_n(tmp_path):
    out = generate("darcy", out=tmp_path / "d.h5", n=4, resolution=17, chunk_size=10 ** 9,
                   progress=False)
    assert len(H5Dataset(out, split="all")) == 4


def test_odd_arguments_end_in_one_line(tmp_path, capsys):
    cases = [(["--seed", str(2 ** 64)], "seed must be <= "),
             (["--pde-option", "tau=abc"], "tau"),
             (["--compression", "gzip-\u00b2"], "compression must be")]
    for extra, words in cases:
        assert main(["generate", "darcy", "--n", "4", "--resolution", "9", "--quiet",
                     "--out", str(tmp_path / "d.h5"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
    assert list(tmp_path.iterdir()) == []


def test_orphans_of_dead_or_impossible_processes_go_and_a_users_tmp_stays(tmp_path):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while not os.path.exists(f"/proc/{zombie.pid}") or \
            open(f"/proc/{zombie.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        pass  # exited, not yet reaped: its pid still answers os.kill(pid, 0)
    for name in (f"d.h5.{zombie.pid}.tmp", "d.h5.99999999999999999999.tmp", "d.h5.tmp"):
        (tmp_path / name).write_bytes(b"x")
    generate("darcy", out=tmp_path / "d.h5", **SMALL)
    zombie.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "d.h5.tmp"]


def test_external_links_are_refused(data, tmp_path):
    def link(f):
        del f["outputs"]
        f["outputs"] = h5py.ExternalLink(str(data), "outputs")

    path = _copy_with(data, tmp_path / "linked.h5", link)
    with pytest.raises(ValueError, match="link to another place"):
        H5Dataset(path)


def test_unconverged_samples_can_be_kept_from_the_command_line(data, tmp_path, capsys):
    def flag_test_split(f):
        converged = f["solver/converged"][()]
        converged[11:] = False
        f["solver/converged"][...] = converged

    path = _copy_with(data, tmp_path / "flagged.h5", flag_test_split)
    train = ["train", "--data", str(path), "--trainer.epochs", "1", "--model_options.hidden_channels", "4",
             "--model_options.n_modes", "[2, 2]", "--model_options.n_layers", "1", "--quiet"]
    with pytest.warns(RuntimeWarning, match="left out"):
        assert main([*train, "--out", str(tmp_path / "a")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main([*train, "--out", str(tmp_path / "b"), "--include_unconverged", "true"]) == 0
