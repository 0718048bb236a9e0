"""HDF5 chunk compression done by sciml itself: once per sample, in parallel threads.

h5py compresses inside ``Dataset.__setitem__``, in one thread under its global lock; on a GPU
that, not the solver, set the pace of generation (``../shared/gpu/README.md``). Here each
sample's chunk is encoded by a :class:`Codec` into the exact bytes HDF5's own filter pipeline
would store (byte shuffle, then deflate — checked byte for byte in the tests), and written
with ``write_direct_chunk``. :mod:`zlib` releases the GIL, so a thread pool compresses on
every core, and the encoded bytes are copied, never re-encoded, from part file to final file.

Choices (``compression=`` of :func:`sciml.datasets.generate`):

- ``"none"``: raw chunks;
- ``"gzip"`` (level 4, h5py's default) or ``"gzip-0"`` … ``"gzip-9"``: shuffle + deflate;
- ``"lzf"``: shuffle + LZF, h5py's built-in filter (encoded through an in-memory HDF5 file,
  one thread: the lzf codec is not exposed to Python otherwise);
- ``"auto"``: shuffle + deflate level 1 for a chunk of samples whose first sample shrinks
  at least :data:`AUTO_MIN_RATIO` times, raw otherwise. HDF5 records per stored chunk which
  filters were skipped (its filter mask), so one dataset mixes both and any reader decodes it.

Why ``"auto"`` looks like that, measured on 64 samples of 128² binary Darcy (130² float32
nodes) on the 2-core development machine (``benchmarks/results/datagen_pipeline_cpu.md``):
the binary coefficient shrinks 60× with shuffle + deflate-1 at 700 MB/s per core; the smooth
solution 1.43× at 70 MB/s and the float64 GRF 1.19× at 61 MB/s. Compressing the smooth fields
would cap one core at about 1,000 samples/s for a third off their size; the rule keeps the
large win and skips the expensive small one. It reads only the data, never a clock, so the
same seed gives the same file.
"""
import zlib
from dataclasses import dataclass

import h5py
import numpy as np

__all__ = ["Codec", "get_codec", "check_compression", "filter_names", "AUTO_MIN_RATIO"]

#: ``"auto"`` compresses a chunk of samples whose first sample shrinks at least this much.
AUTO_MIN_RATIO = 2.0
_SHUFFLE, _DEFLATE, _LZF = 2, 1, 32000  # HDF5 filter ids (H5Z_FILTER_SHUFFLE, _DEFLATE, lzf)
_GZIP_DEFAULT = 4


def check_compression(compression):
    """Validate a ``compression`` choice and return it in canonical form.

    Parameters
    ----------
    compression : str
        ``"auto"``, ``"none"``, ``"lzf"``, ``"gzip"`` or ``"gzip-<level>"`` with level 0–9.

    Returns
    -------
    str
        ``"gzip"`` becomes ``"gzip-4"``; the others are returned as given.
    """
    expected = "'auto', 'none', 'lzf', 'gzip' or 'gzip-0' … 'gzip-9'"
    if not isinstance(compression, str):
        raise TypeError(f"compression must be a str ({expected}), got "
                        f"{type(compression).__name__} {compression!r}")
    if compression == "gzip":
        return f"gzip-{_GZIP_DEFAULT}"
    if compression in ("auto", "none", "lzf"):
        return compression
    name, _, level = compression.partition("-")
    if name == "gzip" and len(level) == 1 and level in "0123456789":
        return compression
    raise ValueError(f"compression must be {expected}, got {compression!r}")


@dataclass(frozen=True)
class Codec:
    """How one dataset's chunks are stored: the declared HDF5 filters and the encoder.

    Parameters
    ----------
    name : str
        A canonical choice of :func:`check_compression`.
    dtype : numpy.dtype
        Element type of the dataset (the shuffle works on its bytes).
    chunk_shape : tuple of int
        Shape of one stored chunk (one sample).
    """

    name: str
    dtype: np.dtype
    chunk_shape: tuple

    @property
    def filtered(self):
        return self.name != "none"

    def dataset_options(self):
        """Keyword arguments of ``h5py.Group.create_dataset`` declaring the filters."""
        if self.name == "none":
            return {}
        if self.name == "lzf":
            return {"compression": "lzf", "shuffle": True}
        level = 1 if self.name == "auto" else int(self.name.split("-")[1])
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}

    def mask(self, samples):
        """The HDF5 filter mask for a chunk of samples (bit i set: filter i skipped).

        Decided once per chunk of samples, from its first sample only, so that splitting the
        encoding over threads cannot change the file.
        """
        if self.name == "auto" and len(samples):
            first = _shuffle(samples[0])
            if len(zlib.compress(first, 1)) * AUTO_MIN_RATIO > len(first):
                return 0b11  # shuffle and deflate skipped: stored as it is
        return 0

    def encode(self, samples, mask=0):
        """Encode a block of samples into their stored chunks.

        Parameters
        ----------
        samples : numpy.ndarray, shape (s, *chunk_shape)
            C-contiguous, of ``dtype``.
        mask : int
            From :meth:`mask`; 0 applies every declared filter.

        Returns
        -------
        list of (int, bytes)
            Per sample its filter mask and the bytes HDF5 stores for it.
        """
        if self.name == "none" or mask:
            return [(mask, sample.tobytes()) for sample in samples]
        if self.name == "lzf":
            return _lzf(samples, self)
        level = 1 if self.name == "auto" else int(self.name.split("-")[1])
        # HDF5's pipeline: shuffle (filter 0), then zlib's deflate stream (filter 1).
        return [(0, zlib.compress(_shuffle(sample), level)) for sample in samples]

    def filter_names(self):
        """The declared filters in pipeline order, as :func:`filter_names` reads them."""
        options = self.dataset_options()
        if not options:
            return []
        level = options.get("compression_opts")
        return ["shuffle", "lzf" if options["compression"] == "lzf" else f"deflate-{level}"]


def _shuffle(sample):
    """HDF5's shuffle filter: byte ``j`` of every element, for ``j = 0 … itemsize − 1``."""
    size = sample.dtype.itemsize
    if size == 1:
        return sample.tobytes()
    return np.ascontiguousarray(sample.reshape(-1).view(np.uint8).reshape(-1, size).T).tobytes()


def filter_names(ds):
    """The filters declared on an h5py dataset, in pipeline order (e.g. shuffle, deflate-1)."""
    plist = ds.id.get_create_plist()
    names = []
    for i in range(plist.get_nfilters()):
        code, _, values, name = plist.get_filter(i)
        names.append({_DEFLATE: f"deflate-{values[0] if values else ''}", _SHUFFLE: "shuffle",
                      _LZF: "lzf"}.get(code, name.decode()))
    return names


def _lzf(samples, codec):
    # h5py ships the LZF filter but no Python binding: run it on an in-memory HDF5 file.
    # LZF is optional in HDF5: a sample it cannot shrink is stored raw, its mask bit set.
    with h5py.File(f"lzf-{id(samples)}", "w", driver="core", backing_store=False) as f:
        scratch = f.create_dataset("x", shape=samples.shape, dtype=codec.dtype,
                                   chunks=(1, *codec.chunk_shape), **codec.dataset_options())
        scratch[...] = samples
        zero = (0,) * len(codec.chunk_shape)
        return [scratch.id.read_direct_chunk((i, *zero)) for i in range(len(samples))]


def get_codec(compression, dtype, chunk_shape):
    """The :class:`Codec` of a dataset; ``compression`` as :func:`check_compression` takes it."""
    return Codec(check_compression(compression), np.dtype(dtype), tuple(chunk_shape))
