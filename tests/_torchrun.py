"""Run a script on two gloo ranks under ``torchrun`` for the multi-process tests.

A rank of the CPU (gloo) backend has been seen to die by SIGABRT ("terminate called without an
active exception") twice in full-suite runs (once in CI, once on a loaded dev machine) and
never in ~220 standalone runs or four full-suite runs since: a crash in torch's C++ side, not a
wrong result. Such a run is repeated
once, with a warning that carries its output; a rank that fails any other way (a Python
exception, another signal, a wrong answer) fails the test at once.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

# torchrun's report names the first rank to fail; a negative exit code is the signal that killed it
SIGABRT = -6
ROOT_CAUSE = re.compile(r"Root Cause.*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def run_two_ranks(write_script: Callable[[int], Path], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``write_script(attempt)`` (a fresh script and output place per attempt) on two ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        script = write_script(attempt)
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                               "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0",
                               str(script)], capture_output=True, text=True, timeout=timeout, env=env)
        cause = ROOT_CAUSE.search(proc.stderr)
        if proc.returncode == 0 or attempt == 1 or cause is None or int(cause.group(1)) != SIGABRT:
            break
        warnings.warn(f"a torchrun rank died by SIGABRT; running once more. Its output:\n{proc.stdout[-1000:]}\n"
                      f"{proc.stderr[-2000:]}", RuntimeWarning)
    return proc


def failure(proc: subprocess.CompletedProcess) -> str:
    return f"torchrun exited with {proc.returncode}\nstdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-3000:]}"
