"""Sampler accuracy and cost on an analytic Gaussian mixture: ``python -m benchmarks.sampling [--quick]``.

The data distribution is a 2-D Gaussian mixture, whose noise prediction is exact
(:class:`sciml.solvers.diffusion.GaussianMixture`), so each sampler's error is measured against
a dopri5 solution of the same probability-flow ODE at tight tolerance, with no trained model.

1. Order table: the convergence order of every sampler (slope of log median error against
   log steps over 80, 160, 320 steps) on the logSNR, time-uniform and Karras (ρ = 7) grids from
   T, and on the logSNR grid from t = 0.4; the time-uniform grid once more over 640–2560 steps
   (its last step spans Δλ = ½ log(1 + Δt/t_min), which shrinks like h only once Δt ≪ t_min =
   10⁻³). A row "3M as published" runs the third-order multistep update of the reference code
   (φ₃·D₂, see :mod:`sciml.solvers.diffusion.dpm_solver_pp`) to measure what the factor 2 is worth.
2. Error against NFE on the logSNR grid for all samplers, as a table and one plot.
3. For each sampler: the wall time of one batch as a ratio to DDIM at the
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
from sciml.solvers.diffusion.dpm_solver_pp import _first, _multistep
from sciml.solvers.diffusion.gaussian_mixture import observed_order

# (sampler, options, nominal order)
CASES = [
    ("ddim", {}, 1), ("dpm_solver", {"order": 2}, 2), ("dpm_solver", {"order": 3}, 3),
    ("dpm_solver", {"order": 2, "method": "multistep"}, 2), ("dpm_solver", {"order": 3, "method": "multistep"}, 3),
    ("dpm_solver++", {"method": "2S"}, 2), ("dpm_solver++", {"method": "3S"}, 3),
    ("dpm_solver++", {"method": "2M"}, 2), ("dpm_solver++", {"method": "3M"}, 3),
    ("pndm", {}, 4), ("plms", {}, 4), ("heavy_ball", {"order": 2, "beta": 0.8}, 1),
    ("ghvb", {"order": 2, "beta": 0.8}, 2), ("ghvb", {"order": 3, "beta": 0.8}, 3),
    ("ghvb", {"order": 4, "beta": 0.8}, 4),
    ("unipc", {"order": 1}, 2), ("unipc", {"order": 2}, 3), ("unipc", {"order": 3}, 4),
    ("unipc", {"order": 2, "variant": "bh1"}, 3), ("heun_edm", {}, 2),
]
GRIDS = [("logSNR", None, (80, 160, 320)), ("time_uniform", None, (80, 160, 320)), ("karras", None, (80, 160, 320)),
         ("logSNR", 0.4, (80, 160, 320)), ("time_uniform", None, (640, 1280, 2560))]
PUBLISHED_3M = "dpm_solver++(3M as published: φ₃·D₂)"


def published_3m(model: Denoiser, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(3M) with the third-order update of the reference code and diffusers:
    x_t = (σ_t/σ_s) x − α_t φ₁ m₀ + α_t φ₂ D₁ − α_t φ₃ D₂ (ours: 2 α_t φ₃ D₂); warm-up as ours."""
    sch = model.schedule
    lam = sch.lam(ts)
    hist: list = []
    for i in range(len(ts) - 1):
        hist = (hist + [(lam[i], model.x0(x, ts[i]))])[-3:]
        s_s, a_t, s_t = sch.sigma(ts[i]), sch.alpha(ts[i + 1]), sch.sigma(ts[i + 1])
        if len(hist) < 3:
            x = _multistep(x, hist, s_s, a_t, s_t, lam[i + 1])
            continue
        (l2, m2), (l1, m1), (l0, m0) = hist
        h, h0, h1 = lam[i + 1] - l0, l0 - l1, l1 - l2
        d1_0, d1_1 = (m0 - m1) * (h / h0), (m1 - m2) * (h / h1)
        d1 = d1_0 + (h0 / (h0 + h1)) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) * (h / (h0 + h1))
        phi2 = torch.expm1(-h) / h + 1
        x = _first(x, m0, s_s, a_t, s_t, h) + a_t * phi2 * d1 - a_t * (phi2 / h - 0.5) * d2
    return x


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


def _order_table(fn, sch, x: torch.Tensor, quick: bool) -> tuple[list[dict], str]:
    """The fitted order of every case on every grid (see the module docstring)."""
    grids = GRIDS[:4] if quick else GRIDS
    refs = {t0: get_sampler("probability_flow")(Denoiser(fn, sch), x, time_grid(sch, 1, t_start=t0),
                                                rtol=1e-12, atol=1e-12) for t0 in {g[1] for g in grids}}
    cases = [(name, options, nominal, get_sampler(name)) for name, options, nominal in CASES]
    cases.append((PUBLISHED_3M, {}, 3, published_3m))
    rows = []
    for name, options, nominal, sampler in cases:
        row = {"sampler": name if sampler is published_3m else _label(name, options), "nominal": nominal, "orders": {},
               "errors": {}}
        for grid, t0, steps in grids:
            key = f"{grid}{'' if t0 is None else f' from t={t0}'} ({steps[0]}–{steps[-1]} steps)"
            errs = [float((sampler(Denoiser(fn, sch), x, time_grid(sch, n, grid, t0), **options) - refs[t0])
                          .norm(dim=1).median()) for n in steps]
            row["orders"][key], row["errors"][key] = observed_order(list(steps), errs), errs
        rows.append(row)
        print(row["sampler"], {k: round(v, 2) for k, v in row["orders"].items()}, flush=True)
    keys = list(rows[0]["orders"])
    lines = ["| sampler | nominal | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
    for r in rows:
        cells = [f"{r['orders'][k]:.2f}" + ("" if abs(r["orders"][k] - r["nominal"]) <= 0.3 else " ✗") for k in keys]
        lines.append(f"| {r['sampler']} | {r['nominal']} | " + " | ".join(cells) + " |")
    return rows, "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 6))
    for i, r in enumerate(rows):
        ax.loglog(r["nfe"], r["median_error"], marker="os^vD<>"[i % 7], linestyle=("-", "--", ":")[i // 7],
                  label=r["sampler"])
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel("median error against dopri5")
    ax.set_title("Gaussian mixture, logSNR grid, float64")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    order_rows, order_table = _order_table(fn, sch, x, args.quick)
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
        rows.append({"sampler": _label(name, options), "nfe": nfes, "median_error": errs,
                     "order": observed_order(nfes, errs), "steps_for_timing": mid})
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
        f"{steps_list[-1]} | fitted order (vs NFE) | time vs DDIM ({mid} steps, {n_time} samples) |"
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
    machine = (f"{torch.get_num_threads()} CPU thread(s) on {platform.processor() or platform.machine()} "
               f"({os.cpu_count()} cores)")
    order_header = (f"Convergence orders (slope of log median error against log steps), Gaussian mixture, float64, "
                    f"{n} samples, dopri5 references at rtol=atol=1e-12; ✗: more than 0.3 from nominal\n")
    header = (f"Error against NFE on the logSNR grid; errors on {n} samples against dopri5 at rtol=atol=1e-12 "
              f"({ref_info['nfe']} NFE); timings on {n_time} samples, median of {repeat} interleaved rounds, "
              f"DDIM baseline {base * 1e3:.1f} ms per batch ({base / n_time * 1e6:.2f} µs/sample); {machine}\n")
    print(order_header)
    print(order_table)
    print()
    print(header)
    print(table)
    result = {"quick": args.quick, "samples": n, "timing_samples": n_time, "repeats": repeat, "steps": steps_list,
              "reference": ref_info, "orders": order_rows, "rows": rows, "diffusers_seconds": peers,
              "baseline": "ddim", "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": machine}
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / ("sampling_quick.json" if args.quick else "sampling.json")
    path.write_text(json.dumps(result, indent=1))
    path.with_suffix(".md").write_text(order_header + "\n" + order_table + "\n\n" + header + "\n" + table + "\n")
    _plot(rows, path.with_name(path.stem + "_error_vs_nfe.png"))
    print(f"\nwrote {path}, {path.with_suffix('.md').name} and {path.stem}_error_vs_nfe.png")
    return result


if __name__ == "__main__":
    main()
