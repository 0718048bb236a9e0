"""Every GPU figure of the project in one command, in order of priority, within a time budget.

    python -m benchmarks.gpu --budget SECONDS [--device cuda] [--quick] [--parts datagen trainer ...]
                             [--models fno lsm] [--out-dir DIR] [--work-dir runs/benchmarks_gpu]

Parts, in order of priority:

1. ``cuda_tests``: ``python -m pytest -m cuda -q`` (skipped on the CPU);
2. ``datagen``: ``generate()`` of 128² binary Darcy end to end on the device
   (``benchmarks.datagen --pipeline --end-to-end-only``) against the CPU baseline, the same on 2
   torch threads in a process of its own; then seconds per sample of the 3-D families (Darcy,
   convection–diffusion, Helmholtz) on the device against SuperLU and pyamg on the host
   (``benchmarks.datagen --scaling``);
3. ``trainer``: the Trainer's step time against a bare loop on the same FNO (``benchmarks.trainer``);
4. ``optimizers``: step time of each optimizer against AdamW's (``benchmarks.optimizers --quick``);
5. ``darcy``: the Darcy full setting for ``--models`` (``benchmarks.darcy --validate``): a test
   error after every epoch, checkpoints in ``--work-dir``, so a rerun resumes where this one stopped.

Each part runs as a subprocess in a session of its own with what is left of the budget, less a
safety margin, as its time limit; at the limit the whole session is killed (the Darcy children
too) and the part is marked "stopped at budget", so the command ends within ``--budget``. Results
go to one folder (default ``benchmarks/results/gpu_<device>``): ``summary.md`` and ``summary.json``
(every part's status, seconds, headline ratio and figures), rewritten after every part so that an
early stop leaves them current, one ``<part>.log`` per part (the tail of its stdout and stderr) and
``trainer.json``. Parts left out by ``--parts`` keep their entries from an earlier run in the same
folder. The headline of each part is a ratio against a baseline measured in the same run; absolute
times are printed beside it. ``--quick``: small sizes, about two minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import darcy

ROOT = Path(__file__).resolve().parent.parent
PARTS = {
    "cuda_tests": "CUDA tests (pytest -m cuda)",
    "datagen": "generate() of Darcy 128², device vs CPU on 2 threads; 3-D families vs host solvers",
    "trainer": "Trainer step vs a bare loop, same FNO",
    "optimizers": "optimizer step time vs AdamW",
    "darcy": "Darcy benchmark, validation every epoch",
}
KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a part's session
MIN_PART_S = 1.0  # a part with less time than this left is not started
LOG_TAIL = 64 * 1024  # bytes of a part's output kept in its log
STOPPED = "stopped at budget"


def margin(budget: float) -> float:
    """Seconds kept back from the parts: the kill's grace period and the last summary."""
    return KILL_GRACE_S + 1.0 + 0.01 * budget


def run_part(command: list[str], log: Path, deadline: float) -> tuple[str, int | None]:
    """Run ``command`` from the repository root with its output appended to ``log``.

    The command gets a session of its own, so that at ``deadline`` (a ``time.monotonic()``) its
    children die with it. Returns the status ("done", "failed (exit N)" or "stopped at budget")
    and the exit code (None when stopped).
    """
    with open(log, "ab") as out:
        out.write(f"$ {shlex.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            out.write(f"\n[{STOPPED}]\n".encode())
            return STOPPED, None
        finally:  # also on a signal to this process: nothing of the part may outlive it
            _kill_session(proc)
    return ("done" if code == 0 else f"failed (exit {code})"), code


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGTERM to the session's process group, SIGKILL after the grace period; a leader that
    already exited may have left children in the group, so they get the SIGKILL too."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the group is already empty
        pass


def _keep_tail(log: Path) -> None:
    data = log.read_bytes()
    if len(data) > LOG_TAIL:
        head = data[:data.index(b"\n") + 1]  # the command line
        log.write_bytes(head + f"[... {len(data) - LOG_TAIL} bytes cut ...]\n".encode() + data[-LOG_TAIL:])


# ----- the parts: commands to run, then figures read from what they wrote (even if stopped) -----

def _python(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


def cuda_tests_commands(ctx) -> list[list[str]]:
    return [_python("-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider")]


def cuda_tests_figures(ctx) -> tuple[str, list[str], dict]:
    lines = (ctx.out / "cuda_tests.log").read_text(errors="replace").splitlines()
    last = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|errors?|skipped)", line)), None)
    if last is None:
        raise ValueError("no pytest summary line in the log")
    counts = {kind.rstrip("s") if kind == "errors" else kind: int(n)
              for n, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", last)}
    problems = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    ran = sum(v for k, v in counts.items() if k != "skipped")
    return f"{counts.get('passed', 0)}/{ran} passed", problems, {"counts": counts, "problems": problems}


def datagen_commands(ctx) -> list[list[str]]:
    sized = ["--chunk-sizes", 32, "--samples", 64] if ctx.quick else []
    return [_python("-m", "benchmarks.datagen", "--pipeline", "--end-to-end-only", "--device", ctx.device, *sized,
                    "--out-dir", ctx.scratch / "datagen" / "device"),
            # the baseline on 2 threads in a process of its own, whatever the device process did
            _python("-m", "benchmarks.datagen", "--pipeline", "--end-to-end-only", "--device", "cpu", "--threads", 2,
                    "--chunk-sizes", 32, "--samples", 64 if ctx.quick else 128,
                    "--out-dir", ctx.scratch / "datagen" / "cpu_2_threads"),
            # 3-D families where direct factorization gives out; host rows (SuperLU, pyamg) in the same run
            _python("-m", "benchmarks.datagen", "--scaling", "--device", ctx.device,
                    "--cases", "darcy3d", "convection_diffusion3d", "helmholtz3d",
                    *(["--sizes", 10, "--samples", 2] if ctx.quick else ["--sizes", 34, 66, "--samples", 4]),
                    "--out-dir", ctx.scratch / "datagen" / "scaling_3d")]


def datagen_figures(ctx) -> tuple[str, list[str], dict]:
    def rows(folder):
        return [r for f in sorted((ctx.scratch / "datagen" / folder).glob("*.json"))
                for r in json.loads(f.read_text())["pipeline"]]

    device = [r for r in rows("device") if r["device"] == ctx.device_type]
    baseline = rows("cpu_2_threads")
    details = [f"{r['device']} chunk {r['chunk']}, n {r['n']}: {r['samples_per_s']:.1f} samples/s end to end, "
               f"{r['solve_only_per_s']:.1f} solve only" for r in device]
    details += [f"baseline: CPU, 2 threads, chunk {r['chunk']}, n {r['n']}: {r['samples_per_s']:.1f} samples/s"
                for r in baseline]
    # on CUDA, datagen measures the same baseline inside the device's process too: a cross-check
    details += [f"baseline inside the {ctx.device_type} process: {r['samples_per_s']:.1f} samples/s"
                for r in rows("device") if r["device"] != ctx.device_type]
    best = max(device, key=lambda r: r["samples_per_s"])
    ratio = best["samples_per_s"] / baseline[0]["samples_per_s"]
    headline = (f"{ratio:.2f}× CPU 2 threads ({best['samples_per_s']:.1f} vs "
                f"{baseline[0]['samples_per_s']:.1f} samples/s, chunk {best['chunk']})")
    scaling = _scaling_3d(ctx)
    for case, point in scaling.items():
        details.append(f"{case} {point['resolution']}³: {point['device_method']} {point['device_s']:.3g} s/sample "
                       f"against {point['host_method']} {point['host_s']:.3g} s on the host: "
                       f"{point['host_s'] / point['device_s']:.2f}×")
    return headline, details, {"device": device, "cpu_2_threads": baseline, "ratio": ratio, "scaling_3d": scaling}


def _scaling_3d(ctx) -> dict:
    """Per 3-D family, at its largest grid measured: the fastest converged method on the device
    against the fastest on the host (SuperLU, pyamg). Partial results count (a run stopped at budget)."""
    rows = [r for f in sorted((ctx.scratch / "datagen" / "scaling_3d").glob("*.json"))
            for r in json.loads(f.read_text())]
    points = {}
    for case in sorted({r["case"] for r in rows}):
        ok = [r for r in rows if r["case"] == case and r["unconverged"] == 0]
        host = [r for r in ok if "superlu" in r["method"] or "CPU" in r["method"]]
        device = [r for r in ok if r not in host]
        both = {r["resolution"] for r in host} & {r["resolution"] for r in device}
        if not both:
            continue
        size = max(both)
        d = min((r for r in device if r["resolution"] == size), key=lambda r: r["seconds_per_sample"])
        h = min((r for r in host if r["resolution"] == size), key=lambda r: r["seconds_per_sample"])
        points[case] = {"resolution": size, "device_method": d["method"], "device_s": d["seconds_per_sample"],
                        "host_method": h["method"], "host_s": h["seconds_per_sample"]}
    return points


def trainer_commands(ctx) -> list[list[str]]:
    sized = ["--n", 40, "--epochs", 1, "--resolution", 16, "--width", 8, "--modes", 4, "--batch-size", 10]
    # its "gpu" case is the step-time table (bare loop, Trainer streamed, preloaded, bf16, CUDA graph, compiled)
    return [_python("-m", "benchmarks.trainer", "--case", "gpu", "--device", ctx.device, *(sized if ctx.quick else []),
                    "--out", ctx.out / "trainer.json")]


def trainer_figures(ctx) -> tuple[str, list[str], dict]:
    result = json.loads((ctx.out / "trainer.json").read_text())
    rows = result["rows"]
    details = [f"{r['loop']}: {1e3 * r['seconds_per_step']:.2f} ms/step, {r['ratio']:.2f}× bare loop" for r in rows]
    # the Trainer as most runs use it: fp32, data preloaded on the device
    main = next((r for r in rows if r["loop"] == "Trainer fp32, preloaded on the device"),
                rows[-1])
    headline = (f"{main['ratio']:.2f}× bare loop ({main['loop']}: {1e3 * main['seconds_per_step']:.2f} vs "
                f"{1e3 * rows[0]['seconds_per_step']:.2f} ms/step)")
    return headline, details, result


def optimizers_commands(ctx) -> list[list[str]]:
    return [_python("-m", "benchmarks.optimizers", "--quick", "--device", ctx.device,
                    *(["--tasks", "mlp"] if ctx.quick else []), "--out-dir", ctx.scratch / "optimizers")]


def optimizers_figures(ctx) -> tuple[str, list[str], dict]:
    rows = [r for f in sorted((ctx.scratch / "optimizers").glob("optimizers*.json"))
            for r in json.loads(f.read_text())["rows"]]
    if not rows:
        raise FileNotFoundError("no task finished")
    details = [f"{r['task']} {r['optimizer']}{' ' + r['complex_mode'] if r.get('complex_mode') else ''}: "
               f"{1e3 * r['seconds_per_step']:.2f} ms/step, {r['step_time_vs_adamw']:.2f}× AdamW" for r in rows]
    headline = "; ".join(
        f"{task}: {min(ratios):.2f}–{max(ratios):.2f}× AdamW over {len(ratios)}"
        for task in dict.fromkeys(r["task"] for r in rows)
        for ratios in [[r["step_time_vs_adamw"] for r in rows if r["task"] == task and r["optimizer"] != "adamw"]])
    return headline, details, {"rows": rows}


def darcy_commands(ctx) -> list[list[str]]:
    return [_python("-m", "benchmarks.darcy", "--setting", ctx.setting, "--models", *ctx.models,
                    "--device", ctx.device, "--work-dir", ctx.work / "darcy", "--validate",
                    "--out-dir", ctx.scratch / "darcy")]


def darcy_figures(ctx) -> tuple[str, list[str], dict]:
    """Read from the checkpoint folders, whose histories hold every finished epoch of a stopped run."""
    data = darcy.data_config(ctx.setting, None)
    epochs = darcy.recipe(ctx.setting)["epochs"]
    paper = darcy.PAPER if ctx.setting == "full" and data["resolution"] == darcy.PAPER_GRID else {}
    models, details, headlines = {}, [], []
    for name in ctx.models:
        history_file = darcy.checkpoint_folder(ctx.work / "darcy", ctx.setting, name, data) / "history.json"
        if not history_file.exists():
            continue
        history = [{k: row.get(k) for k in ("epoch", "train_loss", "val_rel_l2", "seconds")}
                   for row in json.loads(history_file.read_text())]
        seconds = [row["seconds"] for row in history]
        per_epoch = statistics.median(seconds[1:] or seconds)  # the first epoch warms up
        last = history[-1]["val_rel_l2"]
        models[name] = {"epochs": len(history), "of_epochs": epochs, "val_rel_l2": last,
                        "best_val_rel_l2": min(row["val_rel_l2"] for row in history), "s_per_epoch": per_epoch,
                        "paper_rel_l2": paper.get(name), "history": history}
        versus = f" = {last / paper[name]:.2f}× paper" if name in paper else ""
        headlines.append(f"{name} {len(history)}/{epochs} ep, val {last:.4f}{versus}")
        details.append(f"{name}: {len(history)}/{epochs} epochs, {per_epoch:.2f} s/epoch, val rel. L2 {last:.4f} "
                       f"(best {models[name]['best_val_rel_l2']:.4f})"
                       + (f", paper {paper[name]:.4f}" if name in paper else ""))
    if not models:
        raise FileNotFoundError("no model finished an epoch")
    return "; ".join(headlines), details, {"setting": ctx.setting, "data": data, "models": models}


STEPS = {"cuda_tests": (cuda_tests_commands, cuda_tests_figures), "datagen": (datagen_commands, datagen_figures),
         "trainer": (trainer_commands, trainer_figures), "optimizers": (optimizers_commands, optimizers_figures),
         "darcy": (darcy_commands, darcy_figures)}


# ----- the summary -----

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _table(summary: dict) -> str:
    lines = ["| part | status | s | headline (ratio vs baseline, same run) |", "| --- | --- | ---: | --- |"]
    for name, part in summary["parts"].items():
        earlier = " (earlier run)" if part.get("run_at") and part["run_at"] < summary["started"] else ""
        seconds = f"{part['seconds']:.0f}" if part.get("seconds") is not None else "—"
        lines.append(f"| {name} | {part['status']}{earlier} | {seconds} | {part.get('headline') or '—'} |")
    return "\n".join(lines)


def write_summary(summary: dict, out: Path) -> None:
    """Both summary files, each replaced whole (a reader never sees half of one)."""
    summary["updated"] = _now()
    md = [f"# GPU figures: {summary['device_name']}", "",
          f"`{summary['command']}` — started {summary['started']}, budget {summary['budget_s']:g} s, "
          f"{summary['wall_s']:.0f} s so far; torch {summary['torch']}. Each headline is a ratio against a "
          f"baseline measured in the same run; absolute figures below.", "", _table(summary)]
    for name, part in summary["parts"].items():
        if part.get("details") or part.get("error"):
            md += ["", f"## {name}: {PARTS[name]}", "",
                   *(f"- {line}" for line in part.get("details", [])),
                   *([f"- figures not read: {part['error']}"] if part.get("error") else [])]
    for path, text in ((out / "summary.json", json.dumps(summary, indent=1)),
                       (out / "summary.md", "\n".join(md) + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _earlier_parts(out: Path, device: str, quick: bool) -> dict:
    """The parts of an earlier summary in ``out`` on the same device and sizes."""
    try:
        earlier = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    if earlier.get("device") != device or earlier.get("quick") != quick:
        return {}
    return {name: part for name, part in earlier.get("parts", {}).items() if name in PARTS}


# ----- the command -----

def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=_budget, required=True,
                        help="seconds for the whole command; it ends before they are spent")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="small sizes: about two minutes on 2 CPU cores")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="a subset of the parts (they run in order of priority whatever the order given)")
    parser.add_argument("--models", nargs="+", choices=darcy.MODELS, default=None,
                        help=f"Darcy models (default: fno mgno with --quick, else {' '.join(darcy.MODELS)})")
    parser.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results/gpu_<device>)")
    parser.add_argument("--work-dir", default="runs/benchmarks_gpu",
                        help="data and checkpoints of the resumable parts, and the parts' own outputs")
    args = parser.parse_args(argv)

    import torch  # after parsing: a mistyped flag is answered at once

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        args.device_type = torch.device(args.device).type
    except RuntimeError:  # not a device string at all
        args.device_type = None
    if args.device_type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device_type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available")
    args.device_name = (torch.cuda.get_device_name(args.device) if args.device_type == "cuda"
                        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    args.torch = torch.__version__
    args.models = args.models or (["fno", "mgno"] if args.quick else list(darcy.MODELS))
    args.setting = "quick" if args.quick else "full"
    args.out = Path(args.out_dir or ROOT / "benchmarks" / "results" / f"gpu_{args.device_type}").resolve()
    args.work = Path(args.work_dir).resolve()
    args.scratch = args.work / "outputs"
    return args


def main(argv=None) -> int:
    started = time.monotonic()  # before torch's import: the budget counts from the start
    ctx = parse(argv)
    deadline = started + ctx.budget - margin(ctx.budget)
    ctx.out.mkdir(parents=True, exist_ok=True)
    summary = {"command": shlex.join(["python", "-m", "benchmarks.gpu", *(sys.argv[1:] if argv is None else argv)]),
               "device": ctx.device_type, "device_name": ctx.device_name, "quick": ctx.quick, "torch": ctx.torch,
               "budget_s": ctx.budget, "started": _now(), "wall_s": 0.0, "work_dir": str(ctx.work),
               "parts": {name: {"status": "not run (--parts)"} for name in PARTS}}
    summary["parts"].update(_earlier_parts(ctx.out, ctx.device_type, ctx.quick))
    # a SIGTERM (a scheduler's time limit) unwinds like Ctrl-C: the running part is killed, the summary written
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    failed = False
    for name in (p for p in PARTS if p in ctx.parts):
        commands, figures = STEPS[name]
        part = summary["parts"][name] = {"title": PARTS[name], "run_at": _now(), "seconds": None}
        log = ctx.out / f"{name}.log"
        if name == "cuda_tests" and ctx.device_type != "cuda":
            part["status"] = "skipped: no CUDA"
        elif deadline - time.monotonic() < MIN_PART_S:
            part["status"] = "skipped: budget spent"
        else:
            part["status"] = "running"
            write_summary(summary, ctx.out)
            print(f"[{name}] {PARTS[name]}: {deadline - time.monotonic():.0f} s left", flush=True)
            log.unlink(missing_ok=True)
            if name in ("datagen", "optimizers"):  # their files are re-measured, never carried over
                shutil.rmtree(ctx.scratch / name, ignore_errors=True)
            if name == "trainer":
                (ctx.out / "trainer.json").unlink(missing_ok=True)
            t0 = time.monotonic()
            try:
                for command in commands(ctx):
                    part["status"], part["exit_code"] = run_part(command, log, deadline)
                    if part["status"] != "done":
                        break
            except (KeyboardInterrupt, SystemExit):
                part["status"] = "interrupted"
                raise
            finally:
                part["seconds"] = time.monotonic() - t0
                _keep_tail(log)
                part["log"] = log.name
                summary["wall_s"] = time.monotonic() - started
                write_summary(summary, ctx.out)
            failed |= part["status"].startswith("failed")
            try:
                part["headline"], part["details"], part["results"] = figures(ctx)
            except (OSError, ValueError, KeyError, IndexError, ZeroDivisionError) as error:
                part["error"] = f"{type(error).__name__}: {error}"
            print(f"[{name}] {part['status']} in {part['seconds']:.1f} s: {part.get('headline', '—')}", flush=True)
            for line in part.get("details", []):
                print(f"    {line}", flush=True)
        summary["wall_s"] = time.monotonic() - started
        write_summary(summary, ctx.out)
    print(f"\nwrote {ctx.out}/summary.{{md,json}} in {time.monotonic() - started:.0f} s of a "
          f"{ctx.budget:g} s budget\n\n{_table(summary)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
