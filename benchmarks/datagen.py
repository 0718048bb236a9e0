"""Data-generation solvers on the same systems: SKR against the baselines that matter.

    python -m benchmarks.datagen [--quick] [--cases darcy_lognormal helmholtz ...] [--device cuda]
    python -m benchmarks.datagen --pipeline [--quick] [--device cuda]
    python -m benchmarks.datagen --pipeline --end-to-end-only --chunk-sizes 32 --samples 128 --threads 2
    python -m benchmarks.datagen --scaling --threads 1 [--cases helmholtz] [--sizes 130 258]
        [--methods superlu slmg] [--samples 6] [--tag name]

``--scaling`` (issue 20) measures seconds per sample against grid size on 3-D Darcy
(log-normal), 3-D convection–diffusion, 3-D Helmholtz (k₀ = 10) and 2-D Helmholtz (k₀ = 20),
from small grids up to
where each method gives out (dropped at larger sizes once over ``SCALING_LIMIT_S`` per sample):
SuperLU with the COLAMD and MMD(AᵀA + A) orderings and its factor's size, pyamg, GMRES-DR and
GCRO-DR unpreconditioned (sorted and in sample order), and with the device-side multigrid
preconditioners (Gauss–Seidel multigrid ``gsmg``, shifted-Laplacian multigrid ``slmg``, in
float64 and mixed float32), CG + multigrid on the SPD case, and GCRO-DR in one block
(:func:`~sciml.datasets.krylov.gcro_dr_batched`). ``time / fastest`` compares with the fastest
method at the same size that converged on every sample, measured in the same run.

``--pipeline`` measures ``generate()`` itself on 128² binary Darcy (130² nodes): the writer
alone, fed ready arrays, with every compression choice against the previous writer (an
uncompressed part file per chunk, then h5py's gzip when merging: every sample compressed in
one thread, after the run), with file sizes; and the whole pipeline at chunk sizes 32, 256 and
1024: end-to-end samples/s, the solve-only rate (samples over the seconds of the solve stage,
measured in the same run) and their ratio, and the seconds of every stage
(``solver/stage_seconds``). On CUDA it adds the CPU ``generate()`` on 2 threads as the
baseline in the same run. ``--end-to-end-only`` leaves out the writer alone; ``--samples``,
``--chunk-sizes`` and ``--threads`` size a run to a time limit (``benchmarks.gpu`` measures its
CPU baseline so, in a process of its own).

For each case (a PDE family at a size), the systems of ``n`` samples are assembled once and
solved by every method below; the reference solution is the sparse direct solve. Reported:
total seconds, samples per second, mean Krylov iterations per system, how many solves missed
the tolerance (for GMRES(40): hit the 10 000-iteration cap, as most of SKR's baseline did),
the largest relative difference from the direct solution, and the time as a ratio to
GMRES(40) and to the fastest CPU baseline (pyamg + CG or direct), all measured in one run.

Methods (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024, compare GMRES(40) with GCRO-DR(40, 20) in their greedy order):

- ``gmres(40)``: restarted GMRES, SKR's baseline;
- ``gmresdr(40,20)``: deflated restarting, started fresh for every system;
- ``gcrodr(40,20) sampled`` / ``sorted``: the recycled space carried from system to system
  in the order the samples were drawn and in SKR's greedy order (isolating sorting);
- ``cg+jacobi``, ``cg+mg`` (geometric multigrid V-cycle): symmetric positive definite cases;
- ``amg+cg`` (pyamg, CPU) and ``direct`` (SuperLU, CPU; one factorization per matrix, reused
  when samples or time steps share it): what a user would pick instead, run on the CPU
  even when the others run on a GPU, so a GPU run has its CPU baseline in the same run;
- ``batched cg`` (Jacobi, multigrid) / ``batched gmres`` (Jacobi): blocks of systems at
  once, sciml's GPU path;
- ``generate()``: the generator's default end to end (sampling, assembly, solve, writing), and
  the same with ``solver="direct"`` and (symmetric positive definite cases) ``solver="amg"`` on
  the CPU: a user's end-to-end alternatives, since the solve-only baselines above leave out
  sampling, assembly and writing. ``time / best CPU generate()`` compares like with like.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from sciml.datasets import generate, get_pde
from sciml.datasets.generate import choose_method
from sciml.datasets.krylov import PRECONDITIONERS, block_diagonal, cg_batched, gmres_batched
from sciml.datasets.krylov.cudss import gpu_direct, gpu_direct_available
from sciml.datasets.krylov.gcro_dr_batched import gcro_dr_batched
from sciml.datasets.krylov._operator import synchronize
from sciml.datasets.linsolve import DirectFactorization, get_linear_solver
from sciml.datasets.sorting import get_ordering
from sciml.datasets.writer import STAGES, BackgroundWriter, DatasetWriter

RESULTS = Path(__file__).parent / "results"
RTOL = 1e-8
DEFAULT_THREADS = torch.get_num_threads()  # before --threads: a run on other threads is named so
GMRES_CAP = 10_000  # SKR's iteration cap for its GMRES baseline

# case -> (pde, options, nodes per side incl. boundary, samples). The SKR cases have the
# paper's matrix sizes (Darcy 6400 = 80², Helmholtz 10 000 = 100², thermal ≈ 11 063 ≈ 105²,
# Poisson 71 313 ≈ 267²) and its log-normal GRF (α = 2.5, τ = 7); darcy_binary_128 is the
# FNO recipe at 128², the size of the GPU target.
SKR_GRF = {"alpha": 2.5, "tau": 7.0}
FULL = {
    "darcy_lognormal": ("darcy", {"coefficient": "lognormal", **SKR_GRF}, 82, 100),
    "darcy_binary": ("darcy", {"coefficient": "binary"}, 82, 100),
    "darcy_binary_128": ("darcy", {"coefficient": "binary"}, 130, 30),
    "helmholtz": ("helmholtz", {}, 102, 20),
    "poisson": ("poisson", {}, 269, 20),
    "heat": ("heat", SKR_GRF, 107, 10),
    "convection_diffusion": ("convection_diffusion", {}, 82, 100),
}
QUICK = {name: (pde, options, 34, 8 if name == "heat" else 24)
         for name, (pde, options, _, _) in FULL.items() if name != "darcy_binary_128"}
# SKR's Table 1 (no preconditioner): GMRES/SKR time and iteration ratios at the size above.
SKR_PAPER = {"darcy_lognormal": "2.70x time, 19.1x iterations (6400, rtol 1e-8)",
             "helmholtz": "6.47x time, 13.7x iterations (10000, rtol 1e-7; their k ~ U(0, 1) "
                          "makes it definite, ours is indefinite)",
             "poisson": "1.74x time, 6.29x iterations (71313 FEM, rtol 1e-8)",
             "heat": "5.35x time, 23.6x iterations ('thermal': steady, 11063 FEM, rtol 1e-8)"}


def systems(pde, options, resolution, n, seed, device):
    """The systems of ``n`` samples, per sample a list ``[(A, b, x_direct), ...]``.

    Recorded from the family's own ``solve`` (the heat equation's later right-hand sides
    depend on the earlier solutions, so those are the direct ones), with the features SKR
    sorts on and the family.
    """
    family = get_pde(pde, **options)
    params = family.sample_params(n, resolution, generator=torch.Generator().manual_seed(seed),
                                  device=device)
    per_sample = []
    for i in range(n):
        recorded = []

        def record(As, B, X0=None):
            X = DirectFactorization(As[0]).solve(B, rtol=RTOL)[0].x[None]
            recorded.append((As[0], B[0], X[0]))
            return X

        family.solve({k: v[i:i + 1] for k, v in params.items()}, record)
        per_sample.append(recorded)
    return per_sample, family.sort_features(params), family


def _error(x, reference):
    return float(torch.linalg.vector_norm(x - reference) / torch.linalg.vector_norm(reference))


def sequential(per_sample, order, method, device, precond="none", grid_shape=None, **options):
    """Every system solved alone by ``method`` in the sample order ``order``."""
    solve = get_linear_solver(method)
    totals = {"iterations": 0, "unconverged": 0, "solves": 0, "error": 0.0}
    recycle, cache = None, {}
    synchronize(device)
    start = time.perf_counter()
    for i in order:
        for A, b, reference in per_sample[i]:
            kwargs = dict(options)
            if method == "gcrodr":
                kwargs["recycle"] = recycle
            if precond != "none":
                if id(A) not in cache:  # built once per matrix, as the generator does
                    cache = {id(A): (A, PRECONDITIONERS[precond](A, grid_shape=grid_shape))}
                kwargs["M"] = cache[id(A)][1]
            result = solve(A, b, rtol=RTOL, **kwargs)
            recycle = result.recycle
            totals["iterations"] += result.iterations
            totals["unconverged"] += not result.converged
            totals["solves"] += 1
            totals["error"] = max(totals["error"], _error(result.x, reference))
    synchronize(device)
    totals["seconds"] = time.perf_counter() - start
    return totals


def direct(per_sample):
    """SuperLU per matrix; time steps or samples that share a matrix reuse its factors."""
    totals = {"iterations": 0, "unconverged": 0, "solves": 0, "error": 0.0}
    lu = {}
    start = time.perf_counter()
    for sample in per_sample:
        for A, b, reference in sample:
            if id(A) not in lu:
                lu = {id(A): (A, DirectFactorization(A))}
            result = lu[id(A)][1].solve(b[None], rtol=RTOL)[0]
            totals["unconverged"] += not result.converged
            totals["solves"] += 1
            totals["error"] = max(totals["error"], _error(result.x, reference))
    totals["seconds"] = time.perf_counter() - start
    return totals


def batched(per_sample, solver, block, device, precond="jacobi", grid_shape=None):
    """Blocks of ``block`` samples solved at once, one system of each per call."""
    solve = {"cg": cg_batched, "gmres": gmres_batched}[solver]
    totals = {"iterations": 0, "unconverged": 0, "solves": 0, "error": 0.0}
    synchronize(device)
    start = time.perf_counter()
    for first in range(0, len(per_sample), block):
        samples = per_sample[first:first + block]
        for step in range(len(samples[0])):
            As = [sample[step][0] for sample in samples]
            B = torch.stack([sample[step][1] for sample in samples])
            M = None
            if precond != "none":
                apply = PRECONDITIONERS[precond](block_diagonal(As), grid_shape=(len(As), *grid_shape))
                M = lambda V, apply=apply: apply(V.reshape(-1)).reshape(V.shape)  # noqa: E731
            for sample, result in zip(samples, solve(As, B, rtol=RTOL, M=M, maxiter=GMRES_CAP)):
                totals["iterations"] += result.iterations
                totals["unconverged"] += not result.converged
                totals["solves"] += 1
                totals["error"] = max(totals["error"], _error(result.x, sample[step][2]))
    synchronize(device)
    totals["seconds"] = time.perf_counter() - start
    return totals


def end_to_end(pde, options, resolution, n, device, solves, **method):
    """``generate()`` with its defaults for ``device`` (or the given ``method`` keywords): samples,
    assembly, solve and writing."""
    with tempfile.TemporaryDirectory() as folder:
        synchronize(device)
        start = time.perf_counter()
        out = generate(pde, n=n, n_test=1, resolution=resolution, out=Path(folder) / "data.h5",
                       chunk_size=n, device=device, progress=False, **method, **options)
        synchronize(device)
        seconds = time.perf_counter() - start
        with h5py.File(out, "r") as f:
            iterations = int(f["solver/iterations"][()].sum())
            unconverged = int(f.attrs["n_unconverged"])
    return {"iterations": iterations, "unconverged": unconverged, "solves": solves,
            "error": float("nan"), "seconds": seconds}


def run_case(name, pde, options, resolution, n, device, seed=0):
    per_sample, features, family = systems(pde, options, resolution, n, seed, device)
    grid = family.grid_shape(resolution)
    sampled = list(range(n))
    greedy = get_ordering("greedy")(features).tolist()
    plan = [("gmres(40)", lambda: sequential(per_sample, sampled, "gmres", device, restart=40,
                                             maxiter=GMRES_CAP)),
            ("gmresdr(40,20)", lambda: sequential(per_sample, sampled, "gmresdr", device)),
            ("gcrodr(40,20) sampled", lambda: sequential(per_sample, sampled, "gcrodr", device)),
            ("gcrodr(40,20) sorted (SKR)",
             lambda: sequential(per_sample, greedy, "gcrodr", device))]
    # The CPU baselines always run on the CPU, on copies when the systems live on a GPU.
    cpu = torch.device("cpu")
    on_cpu = per_sample if device == cpu else [[(A.cpu(), b.cpu(), x.cpu()) for A, b, x in sample]
                                               for sample in per_sample]
    if family.spd:
        plan += [("cg+jacobi", lambda: sequential(per_sample, sampled, "cg", device, "jacobi")),
                 ("cg+mg", lambda: sequential(per_sample, sampled, "cg", device, "mg", grid)),
                 ("amg+cg (CPU)", lambda: sequential(on_cpu, sampled, "cg", cpu, "amg"))]
    plan.append(("direct (CPU)", lambda: direct(on_cpu)))
    if family.spd:
        plan += [(f"batched cg+{precond} (block {min(n, 32)})",
                  lambda precond=precond: batched(per_sample, "cg", 32, device, precond, grid))
                 for precond in ("jacobi", "mg")]
    else:
        plan.append((f"batched gmres+jacobi (block {min(n, 32)})",
                     lambda: batched(per_sample, "gmres", 32, device, "jacobi", grid)))
    method = choose_method(family, device)
    solves = sum(map(len, per_sample))
    plan.append((f"generate() default: {method['solver']}",
                 lambda: end_to_end(pde, options, resolution, n, device, solves)))
    plan += [(f"generate() {solver} (CPU)", lambda solver=solver: end_to_end(pde, options, resolution, n, cpu, solves,
                                                                             solver=solver))
             for solver in (("direct", "amg") if family.spd else ("direct",))]
    for dev in {device, cpu}:  # one-time costs (imports, HDF5 filters, first allocations) are not a method's
        end_to_end(pde, options, resolution, 2, dev, 2)
    rows = []
    for label, measure in plan:
        totals = measure()
        rows.append({"case": name, "method": label, "n": n, "resolution": resolution,
                     "unknowns": int(np.prod(grid)), **totals,
                     "samples_per_s": n / totals["seconds"],
                     "mean_iterations": totals["iterations"] / totals["solves"]})
        print(f"  {name:22s} {label:32s} {totals['seconds']:8.2f} s  "
              f"{rows[-1]['mean_iterations']:8.1f} it  {totals['unconverged']:3d} missed",
              flush=True)
    baseline = rows[0]["seconds"]
    cpu_best = min(r["seconds"] for r in rows if r["method"] in ("direct (CPU)", "amg+cg (CPU)"))
    cpu_generate = min(r["seconds"] for r in rows if r["method"].startswith("generate() ") and "(CPU)" in r["method"])
    for row in rows:
        row["time_vs_gmres40"] = row["seconds"] / baseline
        row["time_vs_best_cpu_baseline"] = row["seconds"] / cpu_best
        if row["method"].startswith("generate()"):
            row["time_vs_best_cpu_generate"] = row["seconds"] / cpu_generate
    return rows


def _table(rows, device):
    lines = ["# Data-generation solvers on the same systems", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), "
             f"device {device}, torch {torch.__version__}; rtol {RTOL:g}; no preconditioner "
             f"unless named. Ratios are to GMRES(40) and to the faster of direct and pyamg+CG, "
             f"measured in the same run; `missed` counts solves that did not reach rtol "
             f"(GMRES(40): the {GMRES_CAP}-iteration cap).", "",
             "| case | unknowns | method | s | samples/s | mean it. | missed | max rel. err vs direct "
             "| time / GMRES(40) | time / best CPU | time / best CPU generate() |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs_generate = f"{r['time_vs_best_cpu_generate']:.2f}" if "time_vs_best_cpu_generate" in r else "—"
        lines.append(f"| {r['case']} | {r['unknowns']} | {r['method']} | {r['seconds']:.2f} | "
                     f"{r['samples_per_s']:.1f} | {r['mean_iterations']:.1f} | {r['unconverged']} | "
                     f"{r['error']:.1e} | {r['time_vs_gmres40']:.2f} | "
                     f"{r['time_vs_best_cpu_baseline']:.2f} | {vs_generate} |")
    lines += ["", "SKR's own Table 1 (GMRES(40) / SKR, PETSc on CPUs):", ""]
    lines += [f"- {case}: {text}" for case, text in SKR_PAPER.items()]
    return "\n".join(lines) + "\n"


# --scaling: time per sample against grid size, where direct factorization gives out
# (issue 20). case -> (pde, options, preconditioner of the Krylov methods, nodes per side).
SCALING = {
    "darcy3d": ("darcy3d", {"coefficient": "lognormal"}, "gsmg", (10, 18, 26, 34, 42, 50, 66)),
    "convection_diffusion3d": ("convection_diffusion3d", {}, "gsmg",
                               (10, 18, 26, 34, 42, 50, 66)),
    "helmholtz": ("helmholtz", {}, "slmg", (66, 130, 258, 514)),
    "helmholtz3d": ("helmholtz3d", {}, "slmg", (18, 26, 34, 42)),
}
SCALING_QUICK = {name: (pde, options, precond, sizes[:2])
                 for name, (pde, options, precond, sizes) in SCALING.items()}
SCALING_SAMPLES = 6
# A method whose last size took longer than this per sample is not run at larger sizes: the
# point is where each method gives out, within minutes per point on 2 cores.
SCALING_LIMIT_S = 4.0


def scaling_systems(pde, options, resolution, n, seed=0, device="cpu"):
    """The ``n`` systems ``(A, b)`` of one grid (stationary families), features, family."""
    family = get_pde(pde, **options)
    params = family.sample_params(n, resolution, generator=torch.Generator().manual_seed(seed),
                                  device=device)
    captured = []

    def record(As, B, X0=None):
        captured.extend(zip(As, B))
        return torch.zeros_like(B)

    family.solve(params, record)
    return captured, family.sort_features(params), family


def superlu(pairs, permc_spec):
    """SuperLU factor and solve per system (``permc_spec`` ordering), with the factor's bytes."""
    import scipy.sparse.linalg
    from sciml.datasets.krylov._shared import to_scipy
    solutions, unconverged, factor_bytes = [], 0, 0
    start = time.perf_counter()
    for A, b in pairs:
        matrix = to_scipy(A).tocsc()
        lu = scipy.sparse.linalg.splu(matrix, permc_spec=permc_spec)
        rhs = b.double().cpu().numpy()
        x = lu.solve(rhs)
        unconverged += not np.linalg.norm(rhs - matrix @ x) <= RTOL * np.linalg.norm(rhs)
        # values (8 B) and row indices (4 B) of L and U: what the factorization holds
        factor_bytes = max(factor_bytes, 12 * (lu.L.nnz + lu.U.nnz))
        solutions.append(torch.from_numpy(x))
    return {"seconds": time.perf_counter() - start, "iterations": 0, "solves": len(pairs),
            "unconverged": unconverged, "factor_mb": factor_bytes / 2 ** 20}, solutions


def krylov_run(pairs, order, method, precond, grid, **options):
    """``method`` with ``precond`` (built per matrix, timed) over ``pairs`` in ``order``; the
    recycled space of GCRO-DR carried along the order. Returns totals and the solutions."""
    solve = gpu_direct if method == "gpu_direct" else get_linear_solver(method)
    if precond == "amg":    # pyamg runs on the CPU: its rows get CPU copies, as a user would
        pairs = [(A.cpu(), b.cpu()) for A, b in pairs]
    totals = {"iterations": 0, "unconverged": 0, "solves": 0, "seconds": 0.0}
    solutions, recycle = [None] * len(pairs), None
    worst = 0.0
    device = pairs[0][1].device
    synchronize(device)
    start = time.perf_counter()
    for i in order:
        A, b = pairs[i]
        kwargs = dict(options)
        if method == "gcrodr":
            kwargs["recycle"] = recycle
        if precond != "none":
            kwargs["M"] = PRECONDITIONERS[precond](A, grid_shape=grid)
        result = solve(A, b, rtol=RTOL, **kwargs)
        recycle = result.recycle
        totals["iterations"] += result.iterations
        totals["unconverged"] += not result.converged
        totals["solves"] += 1
        worst = max(worst, result.residual)
        solutions[i] = result.x.cpu()
    synchronize(device)
    totals["seconds"] = time.perf_counter() - start
    totals["max_true_residual"] = worst
    return totals, solutions


def blocks_run(pairs, order, precond, grid, block, **options):
    """GCRO-DR in blocks of ``block`` systems along ``order`` (:func:`gcro_dr_batched`), the
    recycled space carried from block to block; preconditioners built per matrix, timed."""
    totals = {"iterations": 0, "unconverged": 0, "solves": 0}
    solutions, recycle, worst = [None] * len(pairs), None, 0.0
    device = pairs[0][1].device
    synchronize(device)
    start = time.perf_counter()
    for first in range(0, len(order), block):
        idx = order[first:first + block]
        As = [pairs[i][0] for i in idx]
        M = [PRECONDITIONERS[precond](A, grid_shape=grid) for A in As]
        results = gcro_dr_batched(As, torch.stack([pairs[i][1] for i in idx]), rtol=RTOL, M=M,
                                  recycle=recycle, **options)
        recycle = results[0].recycle
        for i, result in zip(idx, results):
            totals["iterations"] += result.iterations
            totals["unconverged"] += not result.converged
            totals["solves"] += 1
            worst = max(worst, result.residual)
            solutions[i] = result.x.cpu()
    synchronize(device)
    totals["seconds"] = time.perf_counter() - start
    totals["max_true_residual"] = worst
    return totals, solutions


def scaling_plan(family, precond, grid, sampled, greedy, device=torch.device("cpu")):
    """(label, method, order, precond, options) of every method on a case."""
    plan = [("gpu direct (cuDSS)", "gpu_direct", sampled, "none", {})] if (
        device.type == "cuda" and gpu_direct_available(device)[0]) else []
    plan += [("gmresdr(40,20)", "gmresdr", sampled, "none", {}),
            ("gcrodr(40,20) sampled", "gcrodr", sampled, "none", {}),
            ("gcrodr(40,20) sorted (SKR)", "gcrodr", greedy, "none", {})]
    few = {"m": 30, "k": 5}
    plan += [(f"gmresdr(30,5)+{precond}", "gmresdr", sampled, precond, few),
             (f"gcrodr(30,5)+{precond} sampled", "gcrodr", sampled, precond, few),
             (f"gcrodr(30,5)+{precond} sorted", "gcrodr", greedy, precond, few),
             (f"gcrodr(30,5)+{precond}32 sorted (mixed)", "gcrodr", greedy, f"{precond}32", few)]
    if precond == "slmg":   # Helmholtz: many iterations, a larger recycled space can pay
        plan += [(f"gmresdr(40,20)+{precond}", "gmresdr", sampled, precond, {}),
                 (f"gcrodr(40,20)+{precond} sampled", "gcrodr", sampled, precond, {}),
                 (f"gcrodr(40,20)+{precond} sorted", "gcrodr", greedy, precond, {}),
                 (f"gcrodr(40,20)+{precond} sorted, one block", "blocks", greedy, precond, {})]
    if family.spd:
        plan += [(f"cg+{precond}", "cg", sampled, precond, {}),
                 ("amg+cg (pyamg, CPU)", "cg", sampled, "amg", {})]
    elif precond == "gsmg":
        plan += [("gmresdr(30,5)+amg (pyamg, CPU)", "gmresdr", sampled, "amg", few)]
    return plan


def scaling_rows(cases, n=SCALING_SAMPLES, limit=SCALING_LIMIT_S, out=None, stem=None,
                 methods=None, device=torch.device("cpu")):
    """Seconds per sample of every method at every size of ``cases`` (CPU, 1 thread);
    ``methods``: substrings, a method runs if its label contains one (default: all)."""
    wanted = (lambda label: True) if not methods else (
        lambda label: any(word in label for word in methods))
    rows = []
    for name, (pde, options, precond, sizes) in cases.items():
        slow = set()
        for resolution in sizes:
            pairs, features, family = scaling_systems(pde, options, resolution, n,
                                                      device=device)
            grid = family.grid_shape(resolution)
            sampled = list(range(n))
            greedy = get_ordering("greedy")(features).tolist()
            measured, reference = [], None
            for spec in ("COLAMD", "MMD_AT_PLUS_A"):
                label = f"superlu ({spec})"
                if label in slow or not wanted(label):
                    continue
                totals, solutions = superlu(pairs, spec)
                reference = reference or solutions
                measured.append((label, totals, solutions))
            for label, method, order, pre, options_ in scaling_plan(family, precond, grid,
                                                                   sampled, greedy, device):
                if label in slow or not wanted(label):
                    continue
                if method == "blocks":
                    totals, solutions = blocks_run(pairs, order, pre, grid, n, **options_)
                else:
                    totals, solutions = krylov_run(pairs, order, method, pre, grid, **options_)
                measured.append((label, totals, solutions))
            if reference is None:   # beyond SuperLU: the first preconditioned method's solutions
                reference = next(sol for label, t, sol in measured if "+" in label
                                 and t["unconverged"] == 0)
            for label, totals, solutions in measured:
                per_sample = totals["seconds"] / n
                if per_sample > limit:
                    slow.add(label)
                error = max(_error(x.cpu(), r.cpu()) for x, r in zip(solutions, reference))
                rows.append({"case": name, "resolution": resolution,
                             "unknowns": int(np.prod(grid)), "method": label, "n": n,
                             "seconds_per_sample": per_sample,
                             "mean_iterations": totals["iterations"] / totals["solves"],
                             "unconverged": totals["unconverged"], "error": error,
                             "factor_mb": totals.get("factor_mb"),
                             "max_true_residual": totals.get("max_true_residual")})
                print(f"  {name:22s} {resolution:4d} {label:40s} {per_sample:9.3f} s/sample "
                      f"{rows[-1]['mean_iterations']:7.1f} it {totals['unconverged']} missed "
                      f"err {error:.1e}", flush=True)
            best = min(r["seconds_per_sample"] for r in rows
                       if r["case"] == name and r["resolution"] == resolution
                       and r["unconverged"] == 0)
            for r in rows:
                if r["case"] == name and r["resolution"] == resolution:
                    r["time_vs_fastest"] = r["seconds_per_sample"] / best
            if out is not None:   # written after every point: an interrupted run keeps them
                (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
                (out / f"{stem}.md").write_text(_scaling_table(rows, n, limit, device))
    return rows


def _scaling_table(rows, n, limit, device=torch.device("cpu")):
    where = (f"device {torch.cuda.get_device_name(device)}; SuperLU and pyamg on the CPU "
             f"({torch.get_num_threads()} threads); GPU direct solve: "
             f"{gpu_direct_available(device)[1] or 'torch.sparse.spsolve (cuDSS)'}"
             if device.type == "cuda" else
             f"2-core CPU dev machine, {torch.get_num_threads()} torch thread(s)")
    lines = ["# Time per sample against grid size: direct, AMG, Krylov with and without "
             "recycling", "",
             f"Machine: {platform.machine()}, {where}, torch {torch.__version__}; rtol "
             f"{RTOL:g}, {n} samples per "
             f"point; a method is dropped at larger sizes once it took over {limit:g} s per "
             f"sample. `time / fastest` is to the fastest method at the same size that "
             f"converged on every sample, in the same run. Errors are relative to SuperLU "
             f"(beyond it: to the first preconditioned method). `factor MB`: SuperLU's L+U.",
             "", "| case | nodes/side | unknowns | method | s/sample | mean it. | missed "
             "| max rel. err | factor MB | time / fastest |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        factor = f"{r['factor_mb']:.0f}" if r["factor_mb"] is not None else "—"
        lines.append(f"| {r['case']} | {r['resolution']} | {r['unknowns']} | {r['method']} | "
                     f"{r['seconds_per_sample']:.3f} | {r['mean_iterations']:.1f} | "
                     f"{r['unconverged']} | {r['error']:.1e} | {factor} | "
                     f"{r.get('time_vs_fastest', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


PIPELINE_RESOLUTION = 130
WRITER_CHOICES = ("auto", "none", "lzf", "gzip-1", "gzip-4")


def _chunk_of_arrays(device, count, folder):
    """Ready arrays of ``count`` samples of 128² binary Darcy: inputs, outputs, diagnostics."""
    src = generate("darcy", n=64, n_test=1, resolution=PIPELINE_RESOLUTION, chunk_size=64,
                   out=Path(folder) / "src.h5", device=device, progress=False)
    with h5py.File(src, "r") as f:
        arrays = {name: f[name][()] for name in ("inputs", "outputs")}
        arrays.update({f"solver/{name}": f[f"solver/{name}"][()]
                       for name in ("iterations", "residual", "converged")})
    reps = -(-count // 64)
    return {name: np.concatenate([value] * reps)[:count] for name, value in arrays.items()}


def _legacy_writer(arrays, chunks, folder):
    """The writer before this pipeline: raw part files, then h5py's gzip at the merge."""
    folder = Path(folder)
    for k in range(chunks):
        with h5py.File(folder / f"part{k}.h5", "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value)
    count = len(arrays["inputs"])
    with h5py.File(folder / "legacy.h5", "w") as f:
        datasets = {name: f.create_dataset(name, shape=(count * chunks, *value.shape[1:]),
                                           dtype=value.dtype, chunks=(1, *value.shape[1:]),
                                           compression="gzip", shuffle=value.ndim > 1)
                    for name, value in arrays.items()}
        for k in range(chunks):
            with h5py.File(folder / f"part{k}.h5", "r") as part:
                for name in arrays:
                    datasets[name][k * count:(k + 1) * count] = part[name][()]
    return folder / "legacy.h5"


def _writer_alone(compression, arrays, chunks, folder):
    folder = Path(folder)
    count = len(arrays["inputs"])
    writer = DatasetWriter(folder / "out.h5", [folder / f"c{k}.h5" for k in range(chunks)],
                           [count] * chunks, compression)
    background = BackgroundWriter()
    for k in range(chunks):
        background.submit(writer.write_chunk, k, arrays, {})
    background.join()
    x = np.linspace(0, 1, PIPELINE_RESOLUTION)
    writer.finish({"config": {}}, {"x": x, "y": x})
    writer.close()
    return folder / "out.h5"


def writer_rows(device, chunk=256, chunks=8, repeats=3):
    """Pairs of 130² float32 fields stored per second, and file sizes, per compression."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        arrays = _chunk_of_arrays(device, chunk, folder)
        plan = [(f"sciml writer, {c}", lambda d, c=c: _writer_alone(c, arrays, chunks, d))
                for c in WRITER_CHOICES]
        plan.append(("previous writer (raw parts, h5py gzip-4 at merge)",
                     lambda d: _legacy_writer(arrays, chunks, d)))
        for label, run in plan:
            seconds, size = [], 0
            for _ in range(repeats):
                with tempfile.TemporaryDirectory(dir=folder) as d:
                    start = time.perf_counter()
                    out = run(d)
                    seconds.append(time.perf_counter() - start)
                    size = out.stat().st_size
            pairs = chunk * chunks
            rows.append({"writer": label, "pairs": pairs, "seconds": float(np.median(seconds)),
                         "pairs_per_s": pairs / float(np.median(seconds)),
                         "file_mb": size / 1e6})
            print(f"  {label:52s} {rows[-1]['pairs_per_s']:8.0f} pairs/s  "
                  f"{rows[-1]['file_mb']:7.1f} MB", flush=True)
    baseline = rows[-1]["pairs_per_s"]
    for row in rows:
        row["speed_vs_previous"] = row["pairs_per_s"] / baseline
    return rows


def pipeline_rows(device, chunk_sizes, samples=None):
    """``generate()`` end to end at each chunk size (``samples`` each, default by device and
    chunk), with its stage seconds."""
    rows = []
    runs = [(device, c, samples or max(2 * c, 2048 if device.type == "cuda" else 256)) for c in chunk_sizes]
    if device.type == "cuda":
        runs.append((torch.device("cpu"), 32, 128))  # the CPU baseline of the same run
    with tempfile.TemporaryDirectory() as folder:
        for dev in {device, torch.device("cpu")}:  # one-time costs are not the pipeline's
            generate("darcy", n=4, n_test=1, resolution=PIPELINE_RESOLUTION, chunk_size=4,
                     out=Path(folder) / f"warm_{dev.type}.h5", device=dev, progress=False)
        for dev, chunk, n in runs:
            threads = torch.get_num_threads()
            if dev.type == "cpu" and device.type == "cuda":
                torch.set_num_threads(2)
            out = Path(folder) / f"p{chunk}_{dev.type}.h5"
            synchronize(dev)
            start = time.perf_counter()
            generate("darcy", n=n, n_test=1, resolution=PIPELINE_RESOLUTION, chunk_size=chunk,
                     out=out, device=dev, progress=False)
            synchronize(dev)
            wall = time.perf_counter() - start
            torch.set_num_threads(threads)
            with h5py.File(out, "r") as f:
                stages = dict(zip(STAGES, np.nansum(f["solver/stage_seconds"][()], axis=0)))
                unconverged = int(f.attrs["n_unconverged"])
            row = {"device": dev.type, "chunk": chunk, "n": n, "seconds": wall,
                   "samples_per_s": n / wall, "solve_only_per_s": n / stages["solve"],
                   "unconverged": unconverged, "file_mb": out.stat().st_size / 1e6,
                   "stage_seconds": {k: float(v) for k, v in stages.items()}}
            row["end_to_end_vs_solve_only"] = row["samples_per_s"] / row["solve_only_per_s"]
            rows.append(row)
            print(f"  {dev.type} chunk {chunk:5d} n {n:5d}: {row['samples_per_s']:8.1f} samples/s "
                  f"end to end, {row['solve_only_per_s']:9.1f} solve only", flush=True)
    cpu = [r for r in rows if r["device"] == "cpu"]
    for row in rows:
        if device.type == "cuda" and cpu:
            row["vs_cpu_generate"] = row["samples_per_s"] / cpu[-1]["samples_per_s"]
    return rows


def _pipeline_table(writer, rows, device):
    lines = ["# generate() as a pipeline: the writer alone, and end to end", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} "
             f"torch thread(s), device {device}, torch {torch.__version__}. 128² binary Darcy "
             f"(130² nodes), rtol {RTOL:g}, `generate()` defaults."]
    if writer:
        lines += ["", "## The writer alone, fed ready arrays (8 chunks of 256 pairs of 130² float32 "
                  "fields plus diagnostics; median of 3)", "",
                  "| writer | pairs/s | × previous writer | file MB |", "|---|---|---|---|"]
        lines += [f"| {r['writer']} | {r['pairs_per_s']:.0f} | {r['speed_vs_previous']:.2f} | "
                  f"{r['file_mb']:.1f} |" for r in writer]
    lines += ["", "## End to end (writer thread overlapped with the solves: stage seconds add up "
              "to more than the wall time)", "",
              "| device | chunk | n | samples/s | solve-only samples/s | end-to-end / solve-only "
              "| × CPU generate() | file MB | " + " | ".join(f"{s} s" for s in STAGES) + " |",
              "|" + "---|" * (8 + len(STAGES))]
    for r in rows:
        vs = f"{r['vs_cpu_generate']:.1f}" if "vs_cpu_generate" in r else "—"
        lines.append(f"| {r['device']} | {r['chunk']} | {r['n']} | {r['samples_per_s']:.1f} | "
                     f"{r['solve_only_per_s']:.1f} | {r['end_to_end_vs_solve_only']:.2f} | {vs} | "
                     f"{r['file_mb']:.1f} | " +
                     " | ".join(f"{r['stage_seconds'][s]:.2f}" for s in STAGES) + " |")
    return "\n".join(lines) + "\n"


def pipeline_main(device, quick, out, chunk_sizes=None, samples=None, writer=True):
    """The writer alone (unless ``writer`` is false) and ``generate()`` end to end; a run sized by
    ``chunk_sizes`` or ``samples``, or without the writer, gets file names of its own."""
    stem = f"datagen_pipeline{'_quick' if quick else ''}_{device.type}"
    stem += "" if writer else "_end_to_end"
    stem += f"_chunks{'-'.join(map(str, chunk_sizes))}" if chunk_sizes else ""
    stem += f"_n{samples}" if samples else ""
    stem += f"_threads{torch.get_num_threads()}" if torch.get_num_threads() != DEFAULT_THREADS else ""
    writer = writer_rows(device, repeats=1 if quick else 3) if writer else []
    rows = pipeline_rows(device, chunk_sizes or ((32, 256) if quick else (32, 256, 1024)), samples)
    (out / f"{stem}.json").write_text(json.dumps({"writer": writer, "pipeline": rows}, indent=1))
    table = _pipeline_table(writer, rows, device)
    (out / f"{stem}.md").write_text(table)
    print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, minutes on 2 CPU cores")
    parser.add_argument("--pipeline", action="store_true",
                        help="generate() itself: the writer alone and the stages end to end")
    parser.add_argument("--end-to-end-only", action="store_true",
                        help="--pipeline: generate() end to end only, not the writer alone")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=None,
                        help="--pipeline: chunk sizes of the end-to-end runs (default 32 256 [1024])")
    parser.add_argument("--samples", type=int, default=None,
                        help="--pipeline: samples per end-to-end run (default by device and chunk size)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cases", nargs="+", default=None,
                        choices=sorted(set(FULL) | set(SCALING)))
    parser.add_argument("--scaling", action="store_true",
                        help="time per sample against grid size (3-D Darcy, 3-D "
                             "convection-diffusion, 3-D and 2-D Helmholtz)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="--scaling: nodes per side to run (default: each case's list)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="--scaling: run only methods whose label contains one of these")
    parser.add_argument("--tag", default=None, help="--scaling: suffix of the result files")
    parser.add_argument("--limit", type=float, default=SCALING_LIMIT_S,
                        help="--scaling: seconds per sample past which a method is not run "
                             "at the next size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    for name in ("samples", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.chunk_sizes and min(args.chunk_sizes) < 1:
        parser.error(f"--chunk-sizes must be positive integers, got {args.chunk_sizes}")
    if not args.pipeline and (args.end_to_end_only or args.chunk_sizes):
        parser.error("--end-to-end-only and --chunk-sizes need --pipeline")
    if args.samples and not (args.pipeline or args.scaling):
        parser.error("--samples needs --pipeline or --scaling")
    if (args.sizes or args.methods or args.tag or args.limit != SCALING_LIMIT_S) \
            and not args.scaling:
        parser.error("--sizes, --methods, --tag and --limit need --scaling")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = QUICK if args.quick else FULL
    rows = []
    stem = f"datagen_{'quick' if args.quick else 'full'}_{device.type}"
    if args.cases:  # a subset keeps the complete run's files
        stem += "_" + "_".join(args.cases)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.scaling:
        chosen = SCALING_QUICK if args.quick else SCALING
        chosen = {name: (pde, options, precond, tuple(args.sizes) if args.sizes else sizes)
                  for name, (pde, options, precond, sizes) in chosen.items()
                  if not args.cases or name in args.cases}
        stem = f"datagen_scaling{'_quick' if args.quick else ''}_{device.type}" + (
            "_" + "_".join(args.cases) if args.cases else "") + (
            f"_{args.tag}" if args.tag else "")
        samples = args.samples or SCALING_SAMPLES
        rows = scaling_rows(chosen, n=samples, limit=args.limit, out=out, stem=stem,
                            methods=args.methods, device=device)
        print(_scaling_table(rows, samples, args.limit, device))
        return rows
    if args.pipeline:
        return pipeline_main(device, args.quick, out, args.chunk_sizes, args.samples,
                             writer=not args.end_to_end_only)
    for name in args.cases or cases:
        rows += run_case(name, *cases[name], device)
        # Written after every case, so an interrupted run keeps what it measured.
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
        (out / f"{stem}.md").write_text(_table(rows, device))
    print(_table(rows, device))


if __name__ == "__main__":
    main()
