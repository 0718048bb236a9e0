"""The writer of generate(): one compression per sample, byte-exact codecs, crash safety of every
step of writing and assembling, errors from the writer thread, and one writer per output."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import h5py
import numpy as np
import pytest
import torch

from sciml.datasets import generate
from sciml.datasets.compression import AUTO_MIN_RATIO, check_compression, get_codec
from sciml.datasets.pipeline import HostChunk, StageTimer
from sciml.datasets.writer import DatasetWriter, OutputLock, OutputLockedError, STAGES

SMALL = dict(n=12, resolution=17, chunk_size=4, progress=False, seed=3)
FIELDS = ("inputs", "outputs", "params/grf")


def _raw_chunks(path, name):
    with h5py.File(path, "r") as f:
        ds = f[name]
        zero = (0,) * (ds.ndim - 1)
        return [ds.id.read_direct_chunk((i, *zero)) for i in range(ds.shape[0])]


def _same_data(a, b):
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            if name not in ("solver/seconds", "solver/stage_seconds"):
                np.testing.assert_array_equal(f[name][()], g[name][()], err_msg=name)
        assert dict(f.attrs) == dict(g.attrs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return generate("darcy", out=tmp_path_factory.mktemp("ref") / "ref.h5", **SMALL)


@pytest.mark.parametrize("compression", ["gzip-1", "gzip-4", "gzip-9", "lzf"])
def test_codec_writes_the_bytes_of_hdf5s_own_filters(tmp_path, compression):
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.standard_normal((3, 2, 9, 11)), axis=-1).astype(np.float32)
    codec = get_codec(compression, smooth.dtype, smooth.shape[1:])
    with h5py.File(tmp_path / "h5py.h5", "w") as f:
        f.create_dataset("x", data=smooth, chunks=(1, 2, 9, 11), **codec.dataset_options())
    theirs = _raw_chunks(tmp_path / "h5py.h5", "x")
    ours = codec.encode(smooth, codec.mask(smooth))
    assert [mask for mask, _ in theirs] == [0, 0, 0]
    assert theirs == ours


def test_auto_compresses_binary_fields_and_stores_smooth_ones_raw(tmp_path):
    rng = np.random.default_rng(1)
    binary = np.where(np.cumsum(rng.standard_normal((4, 1, 64, 64)), -1) > 0, 12.0, 3.0)
    smooth = rng.standard_normal((4, 1, 64, 64))
    for field, compressed in ((binary.astype(np.float32), True),
                              (smooth.astype(np.float32), False)):
        codec = get_codec("auto", field.dtype, field.shape[1:])
        mask = codec.mask(field)
        chunks = [chunk for _, chunk in codec.encode(field, mask)]
        ratio = field[0].nbytes / len(zlib.compress(field[0].tobytes(), 1))
        assert (mask == 0) == compressed, ratio
        assert (ratio >= AUTO_MIN_RATIO) == compressed or not compressed
        sizes = [len(chunk) for chunk in chunks]
        assert (max(sizes) * 4 < field[0].nbytes) if compressed else sizes == [field[0].nbytes] * 4
        # One dataset mixes compressed and raw chunks (HDF5's filter mask) and reads back exactly.
        with h5py.File(tmp_path / "mixed.h5", "w") as f:
            ds = f.create_dataset("x", shape=field.shape, dtype=field.dtype,
                                  chunks=(1, *field.shape[1:]), **codec.dataset_options())
            for i, chunk in enumerate(chunks):
                ds.id.write_direct_chunk((i, 0, 0, 0), chunk, mask)
        with h5py.File(tmp_path / "mixed.h5", "r") as f:
            np.testing.assert_array_equal(f["x"][()], field)


def test_compression_choices_are_checked():
    assert check_compression("gzip") == "gzip-4"
    assert [check_compression(c) for c in ("auto", "none", "lzf", "gzip-0", "gzip-9")] == \
        ["auto", "none", "lzf", "gzip-0", "gzip-9"]
    for bad in ("gzip-10", "zstd", "gzip-", "GZIP", "gzip-\u00b2", "gzip-\u0663"):
        with pytest.raises(ValueError, match="compression must be"):
            check_compression(bad)
    with pytest.raises(TypeError, match="compression must be a str"):
        check_compression(4)


def test_each_sample_is_compressed_once_and_copied_as_stored(tmp_path, monkeypatch):
    calls = []
    compress = zlib.compress
    monkeypatch.setattr(zlib, "compress", lambda data, level: calls.append(len(data)) or
                        compress(data, level))
    parts = {}
    out = tmp_path / "once.h5"

    def keep_part(k, done):  # the part is durable when the callback runs: read its raw chunks
        path = tmp_path / "once.h5.parts" / f"chunk_{k:06d}.h5"
        parts[k] = {name: _raw_chunks(path, name) for name in FIELDS}

    generate("darcy", out=out, compression="gzip-6", callback=keep_part, **SMALL)
    assert sorted(parts) == [0, 1, 2]
    for name in FIELDS:
        stored = _raw_chunks(out, name)
        first = [chunk for k in range(3) for chunk in parts[k][name]]
        assert stored == first, name  # byte-identical: nothing decoded and encoded again
        assert all(mask == 0 for mask, _ in stored)
    # 12 samples x 3 fields, one deflate call each; nothing else was compressed.
    assert len(calls) == 36
    with h5py.File(out, "r") as f:
        assert f["outputs"].compression == "gzip" and f["outputs"].compression_opts == 6
        info = json.loads(f.attrs["compression"])
    assert info["requested"] == "gzip-6"
    assert info["datasets"]["inputs"]["filters"] == "shuffle+deflate-6"
    assert info["datasets"]["inputs"]["compressed_samples"] == 12
    assert info["datasets"]["inputs"]["ratio"] > 5  # the binary coefficient


def test_every_compression_holds_the_same_data(reference, tmp_path):
    raw = generate("darcy", out=tmp_path / "raw.h5", compression="none", **SMALL)
    lzf = generate("darcy", out=tmp_path / "lzf.h5", compression="lzf", **SMALL)
    with h5py.File(raw, "r") as f, h5py.File(lzf, "r") as h, h5py.File(reference, "r") as g:
        for name in FIELDS:
            np.testing.assert_array_equal(f[name][()], g[name][()])
            np.testing.assert_array_equal(h[name][()], g[name][()])
            assert f[name].compression is None and h[name].compression == "lzf"
        info = json.loads(g.attrs["compression"])
    # auto (the default): the binary coefficient compressed, the smooth solution stored raw
    assert info["requested"] == "auto"
    assert info["datasets"]["inputs"]["compressed_samples"] == 12
    assert info["datasets"]["outputs"]["compressed_samples"] == 0
    assert info["datasets"]["outputs"]["ratio"] == 1.0
    assert all(mask == 0b11 for mask, _ in _raw_chunks(reference, "outputs"))


def test_stage_seconds_cover_every_stage_of_every_chunk(reference):
    with h5py.File(reference, "r") as f:
        stages = f["solver/stage_seconds"][()]
        names = list(f["solver/stage_seconds"].attrs["stages"])
    assert names == list(STAGES) and stages.shape == (3, len(STAGES))
    assert np.isfinite(stages).all() and (stages >= 0).all()
    assert (stages[:, names.index("solve")] > 0).all()


def _child(out, patch, **options):
    """A generate() run in a child process with ``patch`` applied first (Python source)."""
    kwargs = {**SMALL, **options}
    script = textwrap.dedent("""
        import os, sys, time
        from sciml.datasets import generate
        from sciml.datasets import writer
    """) + textwrap.dedent(patch) + textwrap.dedent(f"""
        generate("darcy", out={str(out)!r}, **{kwargs!r})
        print("finished", flush=True)
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def _kill_at(child, marker):
    try:
        for line in child.stdout:
            if line.strip() == marker:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.wait(timeout=120)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"the child never reached {marker!r}"


# Points of the writer where a SIGKILL lands: inside a part before its rename, in the final
# file with half its chunks copied, and the final file complete but not yet moved onto out.
KILL_POINTS = {
    "part written, not renamed": """
        fsync = writer.fsync_path
        def slow_fsync(path):
            fsync(path)
            if ".parts" in str(path) and "chunk_000001" in str(path):
                print("here", flush=True); time.sleep(30)
        writer.fsync_path = slow_fsync
    """,
    "final file half assembled": """
        merge = writer.DatasetWriter._merge
        def slow_merge(self, k, *args):
            merge(self, k, *args)
            if k == 1:
                self.final.flush(); print("here", flush=True); time.sleep(30)
        writer.DatasetWriter._merge = slow_merge
    """,
    "final file complete, not moved": """
        replace = os.replace
        def slow_replace(src, dst):
            if str(dst).endswith("killed.h5"):
                print("here", flush=True); time.sleep(30)
            replace(src, dst)
        writer.os.replace = slow_replace
    """,
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_anywhere_in_the_writer_resumes_to_the_same_file(reference, tmp_path, point):
    out = tmp_path / "killed.h5"
    _kill_at(_child(out, KILL_POINTS[point]), "here")
    assert not out.exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert "killed.h5.lock" in leftovers or "killed.h5.parts" in leftovers
    recomputed = []
    generate("darcy", out=out, callback=lambda k, done: recomputed.append(k), **SMALL)
    _same_data(reference, out)
    # Only chunks that were not durable were computed again; nothing is left behind.
    assert len(recomputed) <= (2 if point == "part written, not renamed" else 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.h5"]


def test_sigkill_at_random_moments_resumes_to_the_same_file(reference, tmp_path):
    out = tmp_path / "random.h5"
    rng = np.random.default_rng(7)
    for _ in range(3):
        child = _child(out, "")
        try:
            child.wait(timeout=float(rng.uniform(0.5, 4.0)))
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
        child.stdout.close()
    generate("darcy", out=out, **SMALL)
    _same_data(reference, out)


def test_a_writer_error_reaches_the_caller_and_finished_chunks_stay(reference, tmp_path,
                                                                    monkeypatch):
    write = DatasetWriter.write_chunk

    def disk_full_at_chunk_1(self, k, arrays, times):
        if k == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, k, arrays, times)

    monkeypatch.setattr(DatasetWriter, "write_chunk", disk_full_at_chunk_1)
    out = tmp_path / "full.h5"
    with pytest.raises(OSError, match="no space left on the device of out=.*kept and resumed"):
        generate("darcy", out=out, **SMALL)
    parts = sorted(p.name for p in (tmp_path / "full.h5.parts").iterdir())
    assert parts == ["chunk_000000.h5", "config.json"] and not out.exists()
    monkeypatch.setattr(DatasetWriter, "write_chunk", write)
    recomputed = []
    generate("darcy", out=out, callback=lambda k, done: recomputed.append(k), **SMALL)
    assert recomputed == [1, 2]
    _same_data(reference, out)


def test_one_writer_per_output_and_orphans_of_dead_runs_are_removed(reference, tmp_path):
    out = tmp_path / "locked.h5"
    with OutputLock(out):  # another run holds the output
        with pytest.raises(OutputLockedError) as info:
            generate("darcy", out=out, **SMALL)
    assert f"PID {os.getpid()}" in str(info.value) and "locked.h5" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing touched, the lock file removed on release

    # A second process fails at once while the first runs, and the first still succeeds.
    first = _child(out, """
        fsync = writer.fsync_path
        def slow_fsync(path):
            fsync(path)
            if "chunk_000000" in str(path):
                print("here", flush=True); time.sleep(2)
        writer.fsync_path = slow_fsync
    """)
    assert first.stdout.readline().strip() == "here"
    with pytest.raises(OutputLockedError, match=f"PID {first.pid}"):
        generate("darcy", out=out, **SMALL)
    assert first.stdout.read().strip() == "finished"
    first.wait(timeout=60)
    first.stdout.close()
    _same_data(reference, out)

    # Temporary files of dead processes (a pid that is not running) are cleaned up.
    dead = 2 ** 22 + 12345
    out2 = tmp_path / "orphans.h5"
    parts = tmp_path / "orphans.h5.parts"
    parts.mkdir()
    (parts / f"chunk_000000.h5.{dead}.tmp").write_bytes(b"half a part")
    (tmp_path / f"orphans.h5.{dead}.tmp").write_bytes(b"half a file")
    (tmp_path / "orphans.h5.notes.tmp").write_bytes(b"the user's")  # not ours: kept
    generate("darcy", out=out2, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked.h5", "orphans.h5",
                                                          "orphans.h5.notes.tmp"]


def test_writer_refuses_a_chunk_of_another_layout(tmp_path):
    writer = DatasetWriter(tmp_path / "o.h5", [tmp_path / "a.h5", tmp_path / "b.h5"], [2, 2],
                           "auto")
    try:
        writer.write_chunk(0, {"inputs": np.zeros((2, 1, 4, 4), np.float32)}, {})
        with pytest.raises(ValueError, match="chunk 1 holds"):
            writer.write_chunk(1, {"inputs": np.zeros((2, 1, 5, 5), np.float32)}, {})
    finally:
        writer.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generation_is_reproducible_and_says_its_rng_device(tmp_path):
    options = dict(SMALL, device="cuda")
    a = generate("darcy", out=tmp_path / "a.h5", **options)
    b = generate("darcy", out=tmp_path / "b.h5", **options)
    _same_data(a, b)
    with h5py.File(a, "r") as f:
        assert f.attrs["rng_device"] == "cuda"
        assert f["solver/converged"][()].all()


def test_stage_timer_charges_a_nested_stage_to_itself_only():
    timer = StageTimer(torch.device("cpu"))
    with timer("assemble"):
        time.sleep(0.01)
        with timer("solve"):
            time.sleep(0.2)
    assert timer.seconds["solve"] >= 0.2 and timer.seconds["assemble"] < 0.15


def test_host_chunk_waits_for_its_copies_in_the_writer_and_charges_the_wait():
    class Event:  # stands in for a torch.cuda.Event recorded after non-blocking copies
        waited = False

        def synchronize(self):
            time.sleep(0.05)
            Event.waited = True

    chunk = HostChunk({"inputs": torch.arange(3.0)}, Event())
    times = {"copy": 0.01}
    arrays = chunk.arrays(times)
    assert Event.waited and times["copy"] >= 0.06
    assert isinstance(arrays["inputs"], np.ndarray) and arrays["inputs"].tolist() == [0, 1, 2]


def test_a_full_disk_while_assembling_the_file_keeps_every_part(reference, tmp_path, monkeypatch):
    finish = DatasetWriter.finish

    def full(self, attrs, grid):
        self.final.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DatasetWriter, "finish", full)
    out = tmp_path / "assembly.h5"
    with pytest.raises(OSError, match="no space left on the device of out=.*kept and resumed"):
        generate("darcy", out=out, **SMALL)
    # Every chunk is durable; the half-assembled file is gone (it is rebuilt from the parts).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assembly.h5.parts"]
    assert len(list((tmp_path / "assembly.h5.parts").glob("chunk_*.h5"))) == 3
    monkeypatch.setattr(DatasetWriter, "finish", finish)
    recomputed = []
    generate("darcy", out=out, callback=lambda k, done: recomputed.append(k), **SMALL)
    assert recomputed == []
    _same_data(reference, out)
