"""PINN accuracy and cost per problem: Adam alone against Adam then L-BFGS, in float64.

    python -m benchmarks.pinn [--quick] [--problems burgers convection ...]

Every problem is solved with hard initial/boundary constraints where it has them (Lagaris et
al. 1998; periodic boundaries through (cos, sin) input features, Dong & Ni 2021), a tanh MLP (on
random Fourier features of the non-periodic coordinates for convection and wave, Wang, Wang &
Perdikaris 2021), Sobol collocation, and two schedules through the Trainer: Adam alone,
and the same Adam steps followed by L-BFGS (strong Wolfe line search), the recipe of Raissi et
al. 2019 and Rathore et al. 2024. Reported: relative L2 error against the problem's reference
and the wall time, as a ratio to the baseline measured in the same run: 100 steps of a
hand-written Adam loop on the same loss (what the time of one Adam step costs without the
Trainer). Targets are the issue's: Burgers ≤ 1e-3; convection (β = 40) 4.19e-3, reaction
1.92e-2, wave 5.52e-2 (Rathore et al. 2024, Adam + L-BFGS: their best over networks of 3 hidden
layers 50 to 400 wide, Adam learning rates and 41 000 iterations, float32, soft constraints).

Runs are checkpointed every ``--chunk`` steps under ``--checkpoint-dir`` (one folder per
problem, setting, seed and chunk) and resume when rerun; delete a folder after changing the code.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sciml import Trainer
from sciml.solvers.pinn import Collocation, PINNSolver
from sciml.solvers.pinn_problems import PROBLEMS

RESULTS = Path(__file__).parent / "results"
TARGETS = {"burgers": 1e-3, "convection": 4.19e-3, "reaction": 1.92e-2, "wave": 5.52e-2}

# per problem: hidden widths, interior points, Adam steps, Adam learning rate, L-BFGS iterations, Fourier
# feature scale σ (None: raw coordinates); Burgers as Raissi et al. 2019 (§3.1.1: 9 layers of 20 neurons,
# N_f = 10 000); convection, reaction and wave as Rathore et al. 2024 (3 hidden layers, 10 000 residual
# points) at their narrowest width, 50. σ: convection's solution has β/2π ≈ 6.4 periods in t (frequency
# 20 in the scaled t), σ = 10 (σ = 5 and 20 also tried, see the closing note of #7); wave's fastest
# component has 2.5 periods in x and 5 in t, σ = 2
FULL = {
    "burgers": ((20,) * 8, 10000, 1000, 1e-3, 10000, None),
    "convection": ((50,) * 3, 10000, 1000, 1e-3, 10000, 10.0),
    "reaction": ((50,) * 3, 10000, 1000, 1e-3, 10000, None),
    "wave": ((50,) * 3, 10000, 1000, 1e-3, 10000, 2.0),
    "poisson": ((32, 32, 32), 1024, 500, 1e-3, 1000, None),
    "allen_cahn": ((50, 50, 50, 50), 2048, 1000, 1e-3, 2000, None),
}
QUICK = {name: ((20, 20), 256, 200, 3e-3, 200, config[5]) for name, config in FULL.items()}


def _solver(name: str, hidden, n: int, seed: int = 0, fourier: float | None = None) -> tuple[PINNSolver, object]:
    solver = PINNSolver(PROBLEMS[name](), hidden=hidden, hard=True, dtype=torch.float64, seed=seed,
                        fourier_scale=fourier)
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


def _phase(solver: PINNSolver, data: Collocation, optimizer: str, lr: float, steps: int, chunk: int,
           options: dict, folder: Path | None, seed: int) -> tuple[list[dict], int]:
    """``steps`` steps of ``optimizer`` as epochs of ``chunk`` steps, checkpointed after each epoch
    (so an interrupted run resumes where it stopped), with the relative L2 error after each epoch;
    returns that curve and the number of steps taken.

    Adam's epoch is ``chunk`` copies of the one point set (one step each). L-BFGS's is one call of
    at most ``chunk`` iterations (no cap on function evaluations within it), whose history
    carries over to the next call; it takes fewer where its tolerances stop it, so its count is
    read from the optimizer."""
    epochs = -(-steps // chunk)
    if optimizer == "lbfgs":
        options, train = {**options, "max_iter": chunk, "max_eval": 10 ** 9}, data
    else:
        train = Collocation(data.sets * chunk)
    trainer = Trainer(solver, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=1, device="cpu", progress=False,
                      seed=seed, optimizer_options=options, checkpoint_dir=folder)
    history = trainer.fit(train, val=data)
    taken = (trainer.optimizer.state[trainer.optimizer.param_groups[0]["params"][0]]["n_iter"]
             if optimizer == "lbfgs" else epochs * chunk)
    return [{"epoch": r["epoch"], "seconds": r["seconds"], "rel_l2": r["val_rel_l2"], "loss": r["val_loss"]}
            for r in history.rows], taken


def run(name: str, config, seed: int = 0, folder: Path | None = None, chunk: int = 100) -> list[dict]:
    """Adam, then L-BFGS from where Adam stopped; rows for both, with their learning curves.

    With ``folder`` every ``chunk`` steps are checkpointed under ``folder/adam`` and ``folder/lbfgs``
    and a rerun resumes; the seconds are those measured when each chunk ran, each including one
    evaluation (the loss on the points and the error on the reference grid)."""
    hidden, n, adam_steps, lr, lbfgs_iters, fourier = config
    if adam_steps % min(chunk, adam_steps):
        raise ValueError(f"Adam's {adam_steps} steps must be a multiple of chunk={chunk}")
    resumed = folder is not None and folder.exists()
    solver, data = _solver(name, hidden, n, seed, fourier)
    baseline = bare_adam(solver, data, lr)
    lbfgs = {"history_size": 100, "tolerance_grad": 1e-12, "tolerance_change": 1e-15}  # Rathore et al.'s memory
    phases = {"adam": _phase(solver, data, "adam", lr, adam_steps, min(chunk, adam_steps), {},
                             folder / "adam" if folder else None, seed)}
    phases["adam+lbfgs"] = _phase(solver, data, "lbfgs", 1.0, lbfgs_iters, min(chunk, lbfgs_iters), lbfgs,
                                  folder / "lbfgs" if folder else None, seed)
    rows, elapsed = [], 0.0
    for label, (curve, taken) in phases.items():
        for point in curve:
            elapsed += point.pop("seconds")
            point["seconds"] = elapsed
        rows.append({"problem": name, "optimizer": label, "rel_l2": curve[-1]["rel_l2"], "seconds": elapsed,
                     "time_ratio": elapsed / baseline, "steps": taken, "curve": curve})
    for r in rows:
        r.update({"target": TARGETS.get(name), "baseline_s": baseline, "hidden": list(hidden), "n_interior": n,
                  "adam_steps": adam_steps, "adam_lr": lr, "lbfgs_max_iter": lbfgs_iters, "chunk": chunk,
                  "fourier_scale": fourier, "input_features": repr(solver.features),
                  "resumed": resumed, "problem_params": _params(solver)})
    return rows


def _params(solver: PINNSolver) -> str:
    return {"burgers": "nu=0.01/pi", "convection": "beta=40", "reaction": "rho=5", "wave": "beta=5",
            "poisson": "2-D, k=1", "allen_cahn": "eps=1e-4, gamma=5"}[solver.problem.name]


def table(rows: list[dict]) -> str:
    lines = ["| problem | optimizer | network | points | steps | rel. L2 | best rel. L2, at wall s | target | wall s "
             "| time / baseline |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"{r['target']:.3g}" if r["target"] else "—"
        net = f"{len(r['hidden'])}×{r['hidden'][0]} tanh"
        if r.get("fourier_scale"):
            net += f", Fourier σ={r['fourier_scale']:g}"
        best = min(point["rel_l2"] for point in r["curve"])
        reached = next(point["seconds"] for point in r["curve"] if point["rel_l2"] <= 1.01 * best)  # within 1%
        label = r["optimizer"] + (" (resumed)" if r["resumed"] else "")
        lines.append(f"| {r['problem']} ({r['problem_params']}) | {label} | {net} | {r['n_interior']} | "
                     f"{r['steps']} | {r['rel_l2']:.3e} | {best:.3e}, {reached:.0f} | {target} | {r['seconds']:.1f} "
                     f"| {r['time_ratio']:.1f} |")
    return "\n".join(lines)


def markdown(out: dict) -> str:
    """The results page: set-up, the caveats of the timings, the table."""
    rows = out["rows"]
    resumed = " Rows marked resumed ran partly in an earlier process; their baseline is this process's." \
        if any(r["resumed"] for r in rows) else ""
    return (f"# PINN benchmark\n\nMachine: {out['machine']}. Float64, hard initial/boundary constraints where the "
            f"problem has them (Rathore et al.'s are soft; periodic ones through (cos, sin) input features), Sobol "
            f"points. `steps`: Adam steps, or L-BFGS iterations "
            f"after them. `wall s` is cumulative (the adam+lbfgs row includes Adam) and includes one evaluation "
            f"every {rows[0]['chunk']} steps; `best rel. L2, at wall s`: the lowest error of the learning curve and "
            f"when it was first reached within 1% (L-BFGS may stall long before its last iteration); "
            f"`time / baseline` divides `wall s` by the baseline ({out['baseline']}) measured in the same process."
            f"{resumed}\n\n{table(rows)}\n")


def plot(rows: list[dict], path: Path) -> None:
    """Relative L2 error against wall time, one panel per problem, Adam then L-BFGS in one curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = plt.subplots(1, len(problems), figsize=(3.6 * len(problems), 3.2), squeeze=False)
    for ax, name in zip(axes[0], problems):
        for r in (r for r in rows if r["problem"] == name):
            ax.loglog([p["seconds"] for p in r["curve"]], [p["rel_l2"] for p in r["curve"]], label=r["optimizer"])
        if TARGETS.get(name):
            ax.axhline(TARGETS[name], color="k", ls=":", lw=1, label="target")
        ax.set(title=name, xlabel="wall s", ylabel="rel. L2")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks and few steps (about a minute)")
    parser.add_argument("--problems", nargs="+", default=list(FULL), choices=list(FULL))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small networks: 1 is fastest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=100,
                        help="steps between checkpoints and points of the learning curve (default 100)")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("runs/benchmarks/pinn"),
                        help="where runs are checkpointed; a rerun with the same settings resumes")
    args = parser.parse_args(argv)
    if args.chunk < 1:
        parser.error(f"--chunk must be a positive integer, got {args.chunk}")
    torch.set_num_threads(args.threads)
    configs = QUICK if args.quick else FULL
    rows = []
    for name in args.problems:
        config = configs[name]
        tag = "_".join(str(v) for v in (len(config[0]), config[0][0], *config[1:5], "fourier", config[5],
                                        "chunk", args.chunk))
        rows.extend(run(name, config, args.seed, args.checkpoint_dir / f"{name}_{tag}_seed{args.seed}", args.chunk))
        print(table(rows[-2:]).splitlines()[-2], flush=True)
        print(table(rows[-2:]).splitlines()[-1], flush=True)
    machine = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s), torch {torch.__version__}"
    out = {"machine": machine, "quick": args.quick, "seed": args.seed,
           "baseline": "100 steps of a hand-written Adam loop on the same loss and points", "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    stem = "pinn_quick" if args.quick else "pinn"
    if set(args.problems) != set(FULL):
        stem += "_" + "_".join(args.problems)
    if args.seed:
        stem += f"_seed{args.seed}"  # seed 0's files stay
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{stem}.md").write_text(markdown(out))
    plot(rows, RESULTS / f"{stem}.png")
    print(table(rows))
    return out


if __name__ == "__main__":
    main()
