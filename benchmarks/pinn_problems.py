"""PINNs on problems posed as a user would: shapes, conditions per boundary part, systems, unknown coefficients.

    python -m benchmarks.pinn_problems [--quick] [--problems lshape heat_disk ...]

Every problem is posed through the public API only (``Domain`` on a geometry, conditions per part,
several outputs, trainable coefficients; see :mod:`sciml.solvers.pinn_problems`) and trained in
float64 on one torch thread by Adam then L-BFGS through the Trainer, with Sobol' points. Reported
per problem: the figure the issue asks for, its target, the wall time (cumulative, Adam included)
and that time as a ratio to the baseline measured in the same process (100 steps of a hand-written
Adam loop on the same loss, :func:`benchmarks.pinn.bare_adam`), the network, the point counts and
a learning curve (the figure after every ``chunk`` steps; the metric's own time is left out).

- ``lshape``: −Δu = f on the L-shape [−1, 1]² − [0, 1]², Neumann on the re-entrant edges, Dirichlet
  elsewhere; relative L2 on 4096 Sobol' points of the shape, target 1e-3;
- ``heat_disk``: u_t = Δu + f on the unit disk × [0, 1], Robin on the circle; relative L2 in space-time, 1e-3;
- ``burgers_id`` / ``burgers_id_noise``: λ1, λ2 of Burgers from 2000 scattered Cole–Hopf values,
  without and with 1% noise (Raissi et al. 2019, §4.1.1); relative errors of λ1 and λ2, 1% and 5%;
- ``kovasznay``: Navier–Stokes, Re = 20; relative L2 of the velocity (u, v), 1e-3;
- ``cavity``: lid-driven cavity, Re = 100; largest deviation from Ghia, Ghia & Shin 1982 over
  their u (x = 0.5) and v (y = 0.5) centreline tables, in units of the lid speed, 0.02;
  ``cavity_w10`` weighs the wall conditions 10 and runs 5000 L-BFGS iterations.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from benchmarks.pinn import bare_adam
from sciml import Trainer
from sciml.callbacks import Callback
from sciml.solvers.pinn import Collocation, PINNSolver
from sciml.solvers.pinn_problems import (GHIA_RE100_U, GHIA_RE100_V, burgers_identification, cavity, heat_disk,
                                         kovasznay, poisson_lshape)

RESULTS = Path(__file__).parent / "results"
LAMBDA2 = 0.01 / torch.pi


def _ghia_deviation(solver: PINNSolver) -> dict:
    """Largest |u − u_Ghia| on x = 0.5 and |v − v_Ghia| on y = 0.5 (lid speed 1)."""
    yu = torch.tensor(GHIA_RE100_U, dtype=torch.float64)
    xv = torch.tensor(GHIA_RE100_V, dtype=torch.float64)
    pu = torch.stack([torch.full_like(yu[:, 0], 0.5), yu[:, 0]], 1)
    pv = torch.stack([xv[:, 0], torch.full_like(xv[:, 0], 0.5)], 1)
    du = (solver.sample(pu)[:, 0] - yu[:, 1]).abs().max()
    dv = (solver.sample(pv)[:, 1] - xv[:, 1]).abs().max()
    return {"metric": float(max(du, dv)), "u_dev": float(du), "v_dev": float(dv)}


def _lambdas(solver: PINNSolver) -> dict:
    lam1 = solver.coefficients["lambda1"].item()
    lam2 = math.exp(solver.coefficients["log_lambda2"].item())
    e1, e2 = abs(lam1 - 1.0), abs(lam2 - LAMBDA2) / LAMBDA2
    return {"metric": max(e1, e2), "lambda1": lam1, "lambda2": lam2, "lambda1_err": e1, "lambda2_err": e2,
            "u_rel_l2": solver.relative_error()}


# name: (problem factory, metric, target, what the metric is, hidden, n_interior, n_boundary, Adam steps, Adam lr,
# L-BFGS iterations)
FULL = {
    "lshape": (poisson_lshape, lambda s: {"metric": s.relative_error()}, 1e-3, "rel. L2 of u",
               (32, 32, 32), 2048, 256, 1000, 1e-3, 3000),
    "heat_disk": (heat_disk, lambda s: {"metric": s.relative_error()}, 1e-3, "rel. L2 of u (space-time)",
                  (32, 32, 32), 4096, 512, 1000, 1e-3, 3000),
    "burgers_id": (lambda: burgers_identification(2000, 0.0), _lambdas, 1e-2, "max rel. error of λ1, λ2",
                   (20,) * 6, 2048, 1, 2000, 1e-3, 5000),
    "burgers_id_noise": (lambda: burgers_identification(2000, 0.01), _lambdas, 5e-2, "max rel. error of λ1, λ2",
                         (20,) * 6, 2048, 1, 2000, 1e-3, 5000),
    "kovasznay": (kovasznay, lambda s: {"metric": s.relative_error(components=("u", "v"))}, 1e-3,
                  "rel. L2 of (u, v)", (50,) * 4, 2048, 512, 1000, 1e-3, 3000),
    "cavity": (cavity, _ghia_deviation, 2e-2, "max deviation from Ghia (lid speed 1)",
               (50,) * 4, 4096, 512, 1000, 1e-3, 3000),
    "cavity_w10": (lambda: cavity(wall_weight=10.0), _ghia_deviation, 2e-2, "max deviation from Ghia (lid speed 1)",
                   (50,) * 4, 4096, 512, 1000, 1e-3, 5000),
}
QUICK = {k: v[:4] + ((20, 20), 256, 64, 100, 3e-3, 100) for k, v in FULL.items()}


class _Curve(Callback):
    """The metric after every epoch, against the training time alone."""

    def __init__(self, metric, start: float, offset: float, rows: list, phase: str):
        self.metric, self.rows, self.phase = metric, rows, phase
        self.start, self.offset, self.skipped = start, offset, 0.0

    def on_epoch_end(self, trainer, row):
        t0 = time.perf_counter()
        self.rows.append({"phase": self.phase, "seconds": self.offset + t0 - self.start - self.skipped,
                          **self.metric(trainer.solver)})
        self.skipped += time.perf_counter() - t0

    def elapsed(self) -> float:
        return self.offset + time.perf_counter() - self.start - self.skipped


def run(name: str, config, seed: int = 0, chunk: int = 100) -> dict:
    factory, metric, target, what, hidden, n, nb, adam_steps, lr, lbfgs_iters = config
    problem = factory()
    solver = PINNSolver(problem, hidden=hidden, dtype=torch.float64, seed=seed)
    data = solver.collocation(n, nb, nb, sampler="sobol", seed=seed)
    baseline = bare_adam(solver, data, lr)
    curve: list[dict] = []
    cb = _Curve(metric, time.perf_counter(), 0.0, curve, "adam")
    Trainer(solver, optimizer="adam", lr=lr, epochs=adam_steps // chunk, batch_size=1, device="cpu", progress=False,
            seed=seed, callbacks=[cb]).fit(Collocation(data.sets * chunk))
    cb = _Curve(metric, time.perf_counter(), cb.elapsed(), curve, "lbfgs")
    options = {"max_iter": chunk, "max_eval": 10**9, "history_size": 100, "tolerance_grad": 1e-12,
               "tolerance_change": 1e-15}
    trainer = Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=-(-lbfgs_iters // chunk), batch_size=1, device="cpu",
                      progress=False, seed=seed, optimizer_options=options, callbacks=[cb])
    trainer.fit(data)
    taken = trainer.optimizer.state[trainer.optimizer.param_groups[0]["params"][0]]["n_iter"]
    final = curve[-1]
    params = sum(p.numel() for p in solver.network.parameters())
    return {"problem": name, "figure": what, "target": target, **{k: v for k, v in final.items() if k != "phase"},
            "best": min(p["metric"] for p in curve), "time_ratio": final["seconds"] / baseline, "baseline_s": baseline,
            "hidden": list(hidden), "network_parameters": params, "n_interior": n, "n_boundary": nb,
            "adam_steps": adam_steps, "adam_lr": lr, "lbfgs_iterations": taken, "chunk": chunk, "curve": curve}


def table(rows: list[dict]) -> str:
    lines = ["| problem | figure | reached | best on curve | target | network (parameters) | points "
             "| Adam + L-BFGS steps "
             "| wall s | time / baseline |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "✓" if r["metric"] <= r["target"] else "✗"
        lines.append(f"| {r['problem']} | {r['figure']} | {r['metric']:.3e} {ok} | {r['best']:.3e} | {r['target']:g} | "
                     f"{len(r['hidden'])}×{r['hidden'][0]} tanh ({r['network_parameters']}) | {r['n_interior']} + "
                     f"{r['n_boundary']}/part | {r['adam_steps']} + {r['lbfgs_iterations']} | {r['seconds']:.0f} | "
                     f"{r['time_ratio']:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3.4 * len(rows), 3.1), squeeze=False)
    for ax, r in zip(axes[0], rows):
        for phase in ("adam", "lbfgs"):
            pts = [p for p in r["curve"] if p["phase"] == phase]
            ax.semilogy([p["seconds"] for p in pts], [p["metric"] for p in pts], label=phase)
        ax.axhline(r["target"], color="k", ls=":", lw=1, label="target")
        ax.set(title=r["problem"], xlabel="wall s (1 thread)", ylabel=r["figure"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks and few steps (seconds)")
    parser.add_argument("--problems", nargs="+", default=list(FULL), choices=list(FULL))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=100, help="steps between points of the learning curve")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = QUICK if args.quick else FULL
    rows = []
    for name in args.problems:
        rows.append(run(name, configs[name], args.seed, min(args.chunk, configs[name][7])))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    stem = "pinn_problems" + ("_quick" if args.quick else "") + \
        ("" if set(args.problems) == set(FULL) else "_" + "_".join(args.problems)) + \
        (f"_seed{args.seed}" if args.seed else "")
    machine = f"{platform.processor() or platform.machine()}, 1 torch thread, torch {torch.__version__}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    (RESULTS / f"{stem}.md").write_text(
        f"# PINN problems posed through the public API\n\nMachine: {machine} (2-core CPU dev machine). Float64, Sobol' "
        f"points, Adam then L-BFGS. `wall s` is training time (Adam included, metric evaluations left out); the "
        f"baseline is 100 steps of a hand-written Adam loop on the same loss, measured in the same process.\n\n"
        f"{table(rows)}\n")
    plot(rows, RESULTS / f"{stem}.png")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
