"""PINN accuracy and cost per problem: Adam alone against Adam then L-BFGS, in float64.

    python -m benchmarks.pinn [--quick] [--problems burgers convection ...]

Every problem is solved with hard initial/boundary constraints where it has them (Lagaris et
al. 1998), a tanh MLP, Sobol collocation, and two schedules through the Trainer: Adam alone,
and the same Adam steps followed by L-BFGS (strong Wolfe line search), the recipe of Raissi et
al. 2019 and Rathore et al. 2024. Reported: relative L2 error against the problem's reference
and the wall time, as a ratio to the baseline measured in the same run: 100 steps of a
hand-written Adam loop on the same loss (what the time of one Adam step costs without the
Trainer). Targets are the issue's: Burgers ≤ 1e-3; convection (β = 40) 4.19e-3, reaction
1.92e-2, wave 5.52e-2 (Rathore et al. 2024, Adam + L-BFGS, with 4 × 200 networks on a GPU).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sciml import Trainer
from sciml.solvers.pinn import PINNSolver
from sciml.solvers.pinn_problems import PROBLEMS

RESULTS = Path(__file__).parent / "results"
TARGETS = {"burgers": 1e-3, "convection": 4.19e-3, "reaction": 1.92e-2, "wave": 5.52e-2}

# per problem: hidden widths, interior points, Adam steps, Adam learning rate, L-BFGS iterations
FULL = {
    "burgers": ((32, 32, 32, 32), 2048, 1000, 1e-3, 3000),
    "convection": ((50, 50, 50, 50), 2048, 1000, 1e-3, 2000),
    "reaction": ((50, 50, 50, 50), 2048, 1000, 1e-3, 1500),
    "wave": ((50, 50, 50, 50), 2048, 1000, 1e-3, 2000),
    "poisson": ((32, 32, 32), 1024, 500, 1e-3, 1000),
    "allen_cahn": ((50, 50, 50, 50), 2048, 1000, 1e-3, 2000),
}
QUICK = {name: ((20, 20), 256, 200, 3e-3, 200) for name in FULL}


def _solver(name: str, hidden, n: int, seed: int = 0) -> tuple[PINNSolver, object]:
    solver = PINNSolver(PROBLEMS[name](), hidden=hidden, hard=True, dtype=torch.float64, seed=seed)
    return solver, solver.collocation(n, max(n // 16, 16), max(n // 16, 16), sampler="sobol", seed=seed)


def bare_adam(solver: PINNSolver, data, lr: float, steps: int = 100) -> float:
    """Seconds for ``steps`` steps of a hand-written Adam loop (after 5 warm-up steps)."""
    state = {k: v.clone() for k, v in solver.state_dict().items()}
    batch = {k: v[None] for k, v in data[0].items()}
    opt = torch.optim.Adam(solver.parameters(), lr=lr)
    for i in range(steps + 5):
        if i == 5:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        solver.loss(batch).backward()
        opt.step()
    seconds = time.perf_counter() - t0
    solver.load_state_dict(state)
    return seconds


def run(name: str, config, seed: int = 0) -> list[dict]:
    hidden, n, adam_steps, lr, lbfgs_iters = config
    solver, data = _solver(name, hidden, n, seed)
    baseline = bare_adam(solver, data, lr)
    rows = []
    t0 = time.perf_counter()
    Trainer(solver, optimizer="adam", lr=lr, epochs=adam_steps, batch_size=1, device="cpu", progress=False,
            seed=seed).fit(data)
    t_adam = time.perf_counter() - t0
    rows.append({"problem": name, "optimizer": "adam", "rel_l2": solver.relative_error(), "seconds": t_adam,
                 "time_ratio": t_adam / baseline})
    t0 = time.perf_counter()
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, device="cpu", progress=False, seed=seed,
            optimizer_options={"max_iter": lbfgs_iters, "history_size": 50, "tolerance_grad": 1e-12,
                               "tolerance_change": 1e-15}).fit(data)
    t_total = t_adam + time.perf_counter() - t0
    rows.append({"problem": name, "optimizer": "adam+lbfgs", "rel_l2": solver.relative_error(), "seconds": t_total,
                 "time_ratio": t_total / baseline})
    for r in rows:
        r.update({"target": TARGETS.get(name), "baseline_s": baseline, "hidden": list(hidden), "n_interior": n,
                  "adam_steps": adam_steps, "adam_lr": lr, "lbfgs_max_iter": lbfgs_iters,
                  "problem_params": _params(solver)})
    return rows


def _params(solver: PINNSolver) -> str:
    return {"burgers": "nu=0.01/pi", "convection": "beta=40", "reaction": "rho=5", "wave": "beta=5",
            "poisson": "2-D, k=1", "allen_cahn": "eps=1e-4, gamma=5"}[solver.problem.name]


def table(rows: list[dict]) -> str:
    lines = ["| problem | optimizer | rel. L2 | target | wall s | time / baseline |", "|---|---|---|---|---|---|"]
    for r in rows:
        target = f"{r['target']:.3g}" if r["target"] else "—"
        lines.append(f"| {r['problem']} ({r['problem_params']}) | {r['optimizer']} | {r['rel_l2']:.3e} | {target} | "
                     f"{r['seconds']:.1f} | {r['time_ratio']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks and few steps (about a minute)")
    parser.add_argument("--problems", nargs="+", default=list(FULL), choices=list(FULL))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small networks: 1 is fastest)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = QUICK if args.quick else FULL
    rows = []
    for name in args.problems:
        rows.extend(run(name, configs[name], args.seed))
        print(table(rows[-2:]).splitlines()[-2], flush=True)
        print(table(rows[-2:]).splitlines()[-1], flush=True)
    machine = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), torch {torch.__version__}"
    out = {"machine": machine, "quick": args.quick, "seed": args.seed,
           "baseline": "100 steps of a hand-written Adam loop on the same loss and points", "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    stem = "pinn_quick" if args.quick else "pinn"
    if set(args.problems) != set(FULL):
        stem += "_" + "_".join(args.problems)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{stem}.md").write_text(f"# PINN benchmark\n\nMachine: {machine}. Times are ratios to the "
                                        f"baseline ({out['baseline']}) measured in the same run.\n\n"
                                        f"{table(rows)}\n")
    print(table(rows))
    return out


if __name__ == "__main__":
    main()
