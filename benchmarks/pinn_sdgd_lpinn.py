"""SDGD and Lagrangian PINNs against their baselines: ``python -m benchmarks.pinn_sdgd_lpinn [--quick]``.

1. SDGD (:class:`sciml.solvers.sdgd.SDGDSolver`, Hu et al. 2024) on the two-body Poisson problem
   in the unit ball of ℝ^d: relative L2 error and wall time after the same number of Adam steps
   with |I| = |J| = 10 sampled dimensions and with the full Laplacian (|I| = |J| = d), both from
   the same initial network and the same points; the time ratio full / SDGD is measured in the
   same run. At d = 1000 (not in ``--quick``) the full-Laplacian step is only timed, over a few
   steps, since training it to the same step count would take hours on a CPU.
2. The Lagrangian PINN (:class:`sciml.solvers.lpinn.LagrangianPINNSolver`, Mojgani et al. 2023)
   against the Eulerian PINN on u_t + β u_x = 0, u0 = sin x, β = 10, 30, 50: relative L2 on a
   128 × 64 Eulerian grid and wall time, same training recipe (full-batch Adam, then L-BFGS).

Prints markdown tables and writes JSON and markdown to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from sciml.solvers.lpinn import EulerianPINNSolver, LagrangianPINNSolver, space_time_grid
from sciml.solvers.sdgd import SDGDSolver, TwoBodyPoisson
from sciml.train import Trainer

SDGD_DIMS = 10


def _sdgd_run(problem: TwoBodyPoisson, dims: int, steps: int, batch: int, test: torch.Tensor) -> dict:
    torch.manual_seed(0)  # the same initial network for both methods
    solver = SDGDSolver(problem, dims=dims, hidden=128, depth=4, generator=torch.Generator().manual_seed(1))
    train = problem.dataset(steps * batch, torch.Generator().manual_seed(2))  # a fresh batch every step
    t0 = time.perf_counter()
    Trainer(solver, optimizer="adam", lr=1e-3, epochs=1, batch_size=batch, progress=False, device="cpu").fit(train)
    seconds = time.perf_counter() - t0
    return {"rel_l2": float(solver.evaluate(test)["rel_l2"]), "seconds": seconds, "seconds_per_step": seconds / steps}


def _step_time(problem: TwoBodyPoisson, dims: int, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    solver = SDGDSolver(problem, dims=dims, hidden=128, depth=4)
    opt = torch.optim.Adam(solver.parameters(), lr=1e-3)
    x = problem.sample(batch, torch.Generator().manual_seed(2))
    f = problem.forcing(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        solver.loss((x, f)).backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def sdgd_rows(quick: bool) -> list[dict]:
    steps, batch = (200, 100) if quick else (1000, 100)
    rows = []
    for d in (100,) if quick else (100, 1000):
        problem = TwoBodyPoisson(d, seed=0)
        test = problem.sample(5000, torch.Generator().manual_seed(123))
        torch.manual_seed(0)
        init = float(SDGDSolver(problem, hidden=128, depth=4).evaluate(test)["rel_l2"])
        sdgd = _sdgd_run(problem, SDGD_DIMS, steps, batch, test)
        if d <= 100:
            full = _sdgd_run(problem, d, steps, batch, test)
        else:
            full = {"rel_l2": None, "seconds": None, "seconds_per_step": _step_time(problem, d, 5, batch)}
        rows.append({"dim": d, "steps": steps, "batch": batch, "sampled_dims": SDGD_DIMS, "initial_rel_l2": init,
                     "sdgd": sdgd, "full": full,
                     "time_ratio_full_over_sdgd": full["seconds_per_step"] / sdgd["seconds_per_step"]})
    return rows


def _fit_convection(solver, adam: int, lbfgs: int, grid: tuple[int, int]) -> float:
    train = TensorDataset(space_time_grid(*grid))
    common = dict(batch_size=len(train), progress=False, device="cpu")
    t0 = time.perf_counter()
    Trainer(solver, optimizer="adam", lr=3e-3, epochs=adam, **common).fit(train)
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=lbfgs, optimizer_options={"max_iter": 20}, **common).fit(train)
    return time.perf_counter() - t0


def lpinn_rows(quick: bool) -> list[dict]:
    adam, lbfgs, grid = (100, 25, (32, 16)) if quick else (500, 50, (64, 32))
    test = space_time_grid(128, 64)
    rows = []
    for beta in (10.0, 30.0, 50.0):
        row = {"beta": beta, "adam_steps": adam, "lbfgs_iterations": 20 * lbfgs, "grid": list(grid)}
        for name, make in (("lpinn", lambda: LagrangianPINNSolver(beta, hidden=32, depth=4)),
                           ("eulerian", lambda: EulerianPINNSolver(beta, hidden=48, depth=4))):
            torch.manual_seed(0)
            solver = make()
            seconds = _fit_convection(solver, adam, lbfgs, grid)
            row[name] = {"rel_l2": float(solver.evaluate(test)["rel_l2"]), "seconds": seconds,
                         "parameters": sum(p.numel() for p in solver.parameters())}
        rows.append(row)
    return rows


def _fmt(v: float | None, spec: str = ".2e") -> str:
    return "—" if v is None else format(v, spec)


def tables(sdgd: list[dict], lpinn: list[dict]) -> str:
    lines = ["| d | steps × points | initial rel. L2 | SDGD (10 dims) rel. L2 | full Laplacian rel. L2 "
             "| SDGD s/step | full s/step | full / SDGD time |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sdgd:
        lines.append(f"| {r['dim']} | {r['steps']} × {r['batch']} | {r['initial_rel_l2']:.3f} "
                     f"| {_fmt(r['sdgd']['rel_l2'])} | {_fmt(r['full']['rel_l2'])} "
                     f"| {r['sdgd']['seconds_per_step']:.3f} | {r['full']['seconds_per_step']:.3f} "
                     f"| {r['time_ratio_full_over_sdgd']:.1f}× |")
    lines += ["", "| β | LPINN rel. L2 | Eulerian PINN rel. L2 | LPINN s | Eulerian s | parameters (L / E) |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in lpinn:
        lp, eu = r["lpinn"], r["eulerian"]
        lines.append(f"| {r['beta']:g} | {lp['rel_l2']:.2e} | {eu['rel_l2']:.2e} | {lp['seconds']:.1f} "
                     f"| {eu['seconds']:.1f} | {lp['parameters']} / {eu['parameters']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 100 only, shorter runs (2-core CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: one thread beats two on a shared 2-core machine
    sdgd, lpinn = sdgd_rows(args.quick), lpinn_rows(args.quick)
    table = tables(sdgd, lpinn)
    cpu = platform.processor() or platform.machine()
    header = (f"SDGD and Lagrangian PINNs, float32, {torch.get_num_threads()} CPU thread on "
              f"{os.cpu_count()} shared cores ({cpu}), torch {torch.__version__}")
    print(header + "\n\n" + table)
    result = {"header": header, "quick": args.quick, "sdgd": sdgd, "lpinn": lpinn}
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    stem = "pinn_sdgd_lpinn_quick" if args.quick else "pinn_sdgd_lpinn"
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out_dir / f"{stem}.md").write_text(header + "\n\n" + table + "\n")
    print(f"\nwrote {out_dir / stem}.json and .md")
    return result


if __name__ == "__main__":
    main()
