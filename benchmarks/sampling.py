"""Sampler accuracy and cost on an analytic Gaussian mixture: ``python -m benchmarks.sampling [--quick]``.

The data distribution is a 2-D Gaussian mixture, whose noise prediction is exact
(:class:`sciml.solvers.diffusion.GaussianMixture`), so each sampler's error is measured against
a dopri5 solution of the same probability-flow ODE at tight tolerance, with no trained model.
For each sampler: the median per-sample error at each NFE, the fitted convergence order
(slope of log error against log NFE), and the wall time of one batch as a ratio to DDIM at the
same number of steps, measured in the same run. Timings use a batch large enough that the
model's arithmetic, not Python's per-step overhead, dominates (20 000 samples; 100 samples
take about 40 µs each, all of it overhead) and are the median of repeated runs after a warm-up.
If ``diffusers`` is installed, its ``DDIMScheduler`` and ``DPMSolverMultistepScheduler``
(DPM-Solver++(2M)) are timed on the same analytic model, batch and number of steps, also as
ratios to our DDIM; they run the discrete DDPM schedule (linear betas 1e-4…0.02) their
schedulers implement, with the same mixture as the model, so the work per step is the same.
Prints a markdown table and writes JSON to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from sciml.solvers.diffusion import Denoiser, DiscreteVP, GaussianMixture, LinearVP, get_sampler, time_grid

CASES = [
    ("ddim", {}, 1), ("dpm_solver", {"order": 1}, 1), ("dpm_solver", {"order": 2}, 2),
    ("dpm_solver", {"order": 3}, 3), ("dpm_solver", {"order": 2, "method": "multistep"}, 1),
    ("dpm_solver", {"order": 3, "method": "multistep"}, 1), ("dpm_solver++", {"method": "2S"}, 2),
    ("dpm_solver++", {"method": "2M"}, 1), ("dpm_solver++", {"method": "3M"}, 1), ("pndm", {}, 1),
    ("plms", {}, 1), ("heavy_ball", {"order": 2, "beta": 0.8}, 1), ("ghvb", {"order": 2, "beta": 0.8}, 1),
]


def _label(name: str, options: dict) -> str:
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else "")


def _timings(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time of each run over ``repeat`` rounds after a warm-up round. Every round
    runs each entry once, in turn, so that a load spike from another process on a shared CPU
    falls on all entries alike instead of on whichever was being timed."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def _diffusers_runs(gmm: GaussianMixture, x: torch.Tensor, steps: int) -> dict[str, Callable[[], object]]:
    """diffusers' schedulers stepping the mixture's exact ε; empty if diffusers is not installed."""
    try:
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    except ImportError:
        return {}
    fn = gmm.noise_predictor(DiscreteVP.linear())
    runs = {}
    for name, cls in (("diffusers DDIMScheduler", DDIMScheduler),
                      ("diffusers DPMSolverMultistepScheduler", DPMSolverMultistepScheduler)):
        scheduler = cls(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)

        def run(scheduler=scheduler):
            scheduler.set_timesteps(steps)
            z = x.clone()
            for step in scheduler.timesteps:
                t = torch.full((z.shape[0],), (int(step) + 1) / 1000, dtype=z.dtype)  # t_n = n/N, n = step + 1
                z = scheduler.step(fn(z, t), step, z).prev_sample
            return z

        runs[name] = run
    return runs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and step counts (2-core CPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared CPU a second thread mostly waits)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    torch.set_num_threads(min(args.threads, os.cpu_count() or 1))
    n, steps_list, repeat = (100, [10, 20, 40], 9) if args.quick else (400, [5, 10, 20, 40, 80, 160], 11)
    n_time = 20_000
    dtype = torch.float64
    gmm = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=dtype),
                          torch.tensor([0.4, 0.5, 0.3], dtype=dtype))
    sch = LinearVP()
    fn = gmm.noise_predictor(sch)
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x_time = torch.randn(n_time, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ref_model = Denoiser(fn, sch)
    t0 = time.perf_counter()
    ref = get_sampler("probability_flow")(ref_model, x, time_grid(sch, 1), rtol=1e-12, atol=1e-12)
    ref_info = {"nfe": ref_model.nfe, "seconds": time.perf_counter() - t0}
    mid = steps_list[len(steps_list) // 2]

    rows = []
    for name, options, _ in CASES:
        errs, nfes = [], []
        for steps in steps_list:
            model = Denoiser(fn, sch)
            out = get_sampler(name)(model, x, time_grid(sch, steps), **options)
            errs.append(float((out - ref).norm(dim=1).median()))
            nfes.append(model.nfe)
        ln, le = torch.log(torch.tensor(nfes, dtype=dtype)), torch.log(torch.tensor(errs, dtype=dtype))
        order = float(-((ln - ln.mean()) * (le - le.mean())).sum() / ((ln - ln.mean()) ** 2).sum())
        rows.append({"sampler": _label(name, options), "nfe": nfes, "median_error": errs, "order": order,
                     "steps_for_timing": mid})
    ts_mid = time_grid(sch, mid)
    runs = {r["sampler"]: (lambda name=name, options=options: get_sampler(name)(Denoiser(fn, sch), x_time, ts_mid,
                                                                               **options))
            for r, (name, options, _) in zip(rows, CASES)}
    peer_runs = _diffusers_runs(gmm, x_time, mid)
    seconds = _timings({**runs, **peer_runs}, repeat)
    base = seconds[rows[0]["sampler"]]
    for r in rows:
        r["seconds"] = seconds[r["sampler"]]
        r["time_vs_ddim"] = r["seconds"] / base
    peers = {name: seconds[name] for name in peer_runs} or None

    head = "| sampler | " + " | ".join(f"err @ {s} steps" for s in steps_list) + " | NFE @ " + \
        f"{steps_list[-1]} | fitted order | time vs DDIM ({mid} steps, {n_time} samples) |"
    lines = [head, "|" + "---|" * (len(steps_list) + 4)]
    for r in rows:
        lines.append(f"| {r['sampler']} | " + " | ".join(f"{e:.2e}" for e in r["median_error"])
                     + f" | {r['nfe'][-1]} | {r['order']:.2f} | {r['time_vs_ddim']:.2f} |")
    if peers is None:
        lines.append("\n(diffusers not installed: peer timings skipped)")
    else:
        for name, sec in peers.items():
            lines.append(f"| {name} | " + " | ".join("–" for _ in steps_list) + f" | {mid} | – | {sec / base:.2f} |")
    table = "\n".join(lines)
    header = (f"Gaussian mixture, float64; errors on {n} samples against dopri5 at rtol=atol=1e-12 "
              f"({ref_info['nfe']} NFE); timings on {n_time} samples, median of {repeat} interleaved rounds, "
              f"DDIM baseline {base * 1e3:.1f} ms per batch ({base / n_time * 1e6:.2f} µs/sample); "
              f"{torch.get_num_threads()} CPU thread(s) on {platform.processor() or platform.machine()} "
              f"({os.cpu_count()} cores)\n")
    print(header)
    print(table)
    result = {"quick": args.quick, "samples": n, "timing_samples": n_time, "repeats": repeat, "steps": steps_list,
              "reference": ref_info, "rows": rows, "diffusers_seconds": peers, "baseline": "ddim",
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / ("sampling_quick.json" if args.quick else "sampling.json")
    path.write_text(json.dumps(result, indent=1))
    path.with_suffix(".md").write_text(header + "\n" + table + "\n")
    print(f"\nwrote {path} and {path.with_suffix('.md').name}")
    return result


if __name__ == "__main__":
    main()
