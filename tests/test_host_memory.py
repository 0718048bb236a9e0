"""sciml.host_memory: the Trainer's host allocations stay in the heap from one step to the next."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc thresholds are glibc's")

# allocates 16 MiB through malloc and prints whether keep() applied and the bytes malloc mmapped for it
PROBE = """
import ctypes, ctypes.util
from sciml import host_memory, Trainer
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
kept = host_memory.keep()
before = libc.mallinfo2().hblkhd
p = libc.malloc(16 << 20)
print(kept, libc.mallinfo2().hblkhd - before)
libc.free(p)
host_memory.release()
"""


def _probe(**env) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("SCIML_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_keep_takes_a_16_mib_block_from_the_heap_where_glibc_would_mmap_it():
    kept, mmapped = _probe()
    assert kept and mmapped == 0
    # glibc's own settings in a fresh process: mmap above 128 KiB (the probe can see it)
    kept, mmapped = _probe(SCIML_MALLOC="system")
    assert not kept and mmapped >= 16 << 20


def test_a_users_malloc_settings_are_left_alone():
    for env in ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, {"MALLOC_ARENA_MAX": "2"},
                {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}):
        kept, mmapped = _probe(**env)
        assert not kept and mmapped >= 16 << 20, env


def test_an_unknown_choice_is_refused_by_name():
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _probe(SCIML_MALLOC="off")
    assert "SCIML_MALLOC must be one of ('keep', 'system') (unset means keep), got 'off'" in failed.value.stderr
