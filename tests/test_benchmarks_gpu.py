"""``python -m benchmarks.gpu``: it ends within its budget, kills what overruns, and says so.

These tests check how the command behaves, never what it measures.
"""
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (unlike `python -m pytest`) leaves the repository root off the path
    sys.path.insert(0, str(ROOT))
from benchmarks import gpu  # noqa: E402

STATUSES = {"done", "stopped at budget", "skipped: budget spent", "skipped: no CUDA", "not run (--parts)"}
START_UP_S = 8  # the interpreter, and the budget's own margin for error on a loaded 2-core machine


def _alive(pid: int, wait: float = 2.0) -> bool:
    """Still running after ``wait`` seconds (a SIGKILL is delivered asynchronously); a zombie waiting
    for a parent that may never reap it counts as dead."""
    end = time.monotonic() + wait
    while True:
        try:
            running = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
        except FileNotFoundError:
            running = False
        if not running or time.monotonic() > end:
            return running
        time.sleep(0.05)


def _run(tmp_path, budget, *flags):
    command = [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--quick", "--budget", str(budget),
               "--out-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"), *flags]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=budget + 60)
    wall = time.monotonic() - start
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    return proc, wall, summary


def test_a_part_that_overruns_is_killed_with_its_children(tmp_path):
    # the part ignores SIGTERM (so the SIGKILL path runs) and leaves a child of its own sleeping
    script = textwrap.dedent(f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(tmp_path / "pid")!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
    """)
    log = tmp_path / "part.log"
    start = time.monotonic()
    status, code = gpu.run_part([sys.executable, "-c", script], log, deadline=start + 1.5)
    assert (status, code) == (gpu.STOPPED, None)
    assert time.monotonic() - start < 1.5 + gpu.KILL_GRACE_S + 2
    assert not _alive(int((tmp_path / "pid").read_text()))
    text = log.read_text()
    assert text.startswith("$ ") and "started" in text and text.rstrip().endswith(f"[{gpu.STOPPED}]")


def test_a_part_that_ends_in_time_reports_its_exit_code(tmp_path):
    log = tmp_path / "part.log"
    ok = gpu.run_part([sys.executable, "-c", "print('hello')"], log, deadline=time.monotonic() + 30)
    failed = gpu.run_part([sys.executable, "-c", "raise SystemExit(3)"], log, deadline=time.monotonic() + 30)
    assert ok == ("done", 0) and failed == ("failed (exit 3)", 3)
    assert "hello" in log.read_text() and log.read_text().count("$ ") == 2


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --budget"),
    (["--budget", "0"], "must be a positive number of seconds"),
    (["--budget", "-5"], "must be a positive number of seconds"),
    (["--budget", "inf"], "must be a positive number of seconds"),
    (["--budget", "ten"], "must be a number of seconds"),
    (["--budget", "10", "--parts", "everything"], "invalid choice: 'everything'"),
    (["--budget", "10", "--device", "tpu"], "--device must be cpu or cuda"),
    *([(["--budget", "10", "--device", "cuda"], "no CUDA device is available")]
      if not torch.cuda.is_available() else []),
])
def test_bad_flags_are_refused_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_part_cut_by_the_budget_is_reported_and_the_command_ends_in_time(tmp_path):
    budget = 12  # the Darcy part (data, then 15 epochs of two models) needs more than this
    proc, wall, summary = _run(tmp_path, budget, "--parts", "cuda_tests", "darcy")
    assert proc.returncode == 0, proc.stderr
    assert wall < budget + START_UP_S
    parts = summary["parts"]
    assert list(parts) == list(gpu.PARTS)
    assert parts["cuda_tests"]["status"] == "skipped: no CUDA"
    assert parts["darcy"]["status"] == gpu.STOPPED
    assert all(parts[name]["status"] == "not run (--parts)" for name in ("datagen", "trainer", "optimizers"))
    assert gpu.STOPPED in proc.stdout.splitlines()[-1]  # the table comes last, darcy's row last in it


def test_every_part_runs_in_one_folder_within_the_budget(tmp_path):
    budget = 30
    proc, wall, summary = _run(tmp_path, budget)
    assert proc.returncode == 0, proc.stderr
    assert wall < budget + START_UP_S
    files = list((tmp_path / "out").iterdir())
    assert 0 < len(files) <= 8 and {"summary.md", "summary.json"} <= {f.name for f in files}
    parts = summary["parts"]
    assert list(parts) == list(gpu.PARTS) and all(part["status"] in STATUSES for part in parts.values())
    assert parts["cuda_tests"]["status"] == "skipped: no CUDA"
    for name, part in parts.items():  # whatever ran left its log, and what finished its headline figure
        if part["status"] in ("done", gpu.STOPPED):
            assert (tmp_path / "out" / part["log"]).exists()
        if part["status"] == "done":
            assert part["headline"] and "error" not in part
    assert proc.stdout.rstrip().splitlines()[-len(gpu.PARTS) - 2].startswith("| part | status")


@pytest.mark.slow
def test_the_quick_command_of_the_docs(tmp_path):
    budget = 120
    proc, wall, summary = _run(tmp_path, budget)
    assert proc.returncode == 0, proc.stderr
    assert wall < budget + START_UP_S and len(list((tmp_path / "out").iterdir())) <= 8
    assert all(part["status"] in STATUSES for part in summary["parts"].values())
