"""Keep freed host memory for the next training step instead of handing it back to the OS.

A training step allocates the same activations every time. glibc's malloc returns large freed
blocks to the kernel (``munmap``, or trimming the top of the heap once its free part passes a
threshold that it adapts as the program runs) and faults them in again, page by page, when the
next step asks for the same sizes. Measured on the 2-core CPU machine (benchmarks/trainer.py,
Burgers PINN step of 94 ms, one thread): 1,400–8,000 minor page faults per step with the default
settings, varying from run to run with the adapted thresholds; 106,000 and 2.7x the step time
with only the trim threshold fixed (fixing one switches off the adaptation of both, leaving the
mmap threshold at 128 KiB); and under 60 with both fixed as here.

``mallopt(3)``: ``M_MMAP_THRESHOLD`` at its largest allowed value (32 MiB on 64-bit glibc), so
that activations come from the heap, and ``M_TRIM_THRESHOLD`` at 512 MiB, so that the heap keeps
up to that much free memory for the next step. :func:`release` gives the free top back at the
end of a fit (``malloc_trim(3)``). Only glibc has these calls; other C libraries, and processes
whose user chose an allocator (an ``LD_PRELOAD``) or glibc settings (any ``MALLOC_*`` variable,
``GLIBC_TUNABLES``), are left alone, and ``SCIML_MALLOC=system`` turns this off. The thresholds
stay fixed for the rest of the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's HEAP_MAX_SIZE / 2 on 64-bit: larger values are refused
TRIM_THRESHOLD = 512 * 2**20
CHOICES = ("keep", "system")  # of SCIML_MALLOC


def _user_settings() -> list[str]:
    """The environment's own malloc settings: glibc's ``MALLOC_*`` variables, its tunables, a preloaded allocator."""
    return [k for k in os.environ if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "LD_PRELOAD")]


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL | None:
    """glibc, where this process runs on it and nobody asked to leave its allocator alone."""
    choice = os.environ.get("SCIML_MALLOC", "keep")
    if choice not in CHOICES:
        raise ValueError(f"SCIML_MALLOC must be one of {CHOICES} (unset means keep), got {choice!r}")
    if choice == "system" or _user_settings():
        return None
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def keep() -> bool:
    """Fix glibc's thresholds (once per process); True where they are set."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release() -> None:
    """Give the heap's free memory back to the OS (after a fit that kept it)."""
    if keep.cache_info().currsize and keep():
        _libc().malloc_trim(0)
