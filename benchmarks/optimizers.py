"""Optimizers against AdamW (and L-BFGS on a PINN): orthogonalized/projected and second-order suites.

    python -m benchmarks.optimizers [--quick] [--device cuda] [--tasks mlp]          # orthogonalized
    python -m benchmarks.optimizers --suite second_order [--quick] [--device cuda]
    python -m benchmarks.optimizers --suite second_order --tasks pinn --methods adam_lbfgs_nncg --seed 1

Second-order suite (Sophia-H, Sophia-G, AdaHessian, M-FAC, MKOR, MKOR-H, DCT low-rank): every
step goes through the Trainer's step (``Trainer._step``), which gives each optimizer what it
declares. FNO-Darcy: a fixed number of steps for every method and learning rate, error every
few steps; target = AdamW's best final error; steps, training seconds and optimizer memory to
reach it. PINN (reaction, ρ = 5, hard initial and periodic conditions, float64): every method gets the same
training wall time; AdamW, L-BFGS alone, and Adam for half the time then L-BFGS (the usual PINN
schedule) are the baselines; the same schedule with Sophia-G or Sophia-H in place of Adam
(``sophia_g_lbfgs``, ``sophia_h_lbfgs``, swept over as many learning rates as Adam's phase) asks
whether a second-order first phase hands L-BFGS a better start; ``adam_lbfgs_nncg`` continues
Adam → L-BFGS's best run from its weights at 3/4 of the time with NNCG instead of L-BFGS
(Rathore et al. 2024's schedule), so both share that prefix exactly; NNCG's damping μ is swept over
as many values as Adam's rates;
learning rates decay by a cosine over each method's (phase's) time;
reported: final relative L2 at equal time, and steps and seconds
to reach AdamW's final error. Memory is the optimizer state (tensor bytes, all devices) and, on
CUDA, the peak allocated memory of the run. Results in
benchmarks/results/optimizers_second_order[_quick].{json,md}.

Orthogonalized suite:

For every task and optimizer, a small learning-rate sweep; the best learning rate (lowest final
validation error) is reported with: final error, steps and wall time to reach the target error
(AdamW's best final error in the same run) and that count as a fraction of AdamW's steps,
and time per step relative to AdamW. Muon runs on FNO twice, with complex spectral weights
orthogonalized per Fourier mode and as one flattened real matrix, to tell which trains better. Prints a markdown table; writes JSON and the
table to benchmarks/results/optimizers[_quick].{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from sciml import Trainer
from sciml.operators import FNO
from sciml.optim import build_optimizer
from sciml.solvers.operator import OperatorSolver
from sciml.solvers.pinn import PINNSolver
from sciml.solvers.pinn_problems import reaction

RESULTS = Path(__file__).parent / "results"
ORTHO = ("muon", "normuon", "root", "auon", "hybrid_auon")


def darcy(n_train: int, n_val: int, device: torch.device):
    """FNO-Darcy at 32² (the foundation dataset, FNO-paper recipe), standardised."""
    import h5py

    from sciml.datasets import generate

    with tempfile.TemporaryDirectory() as tmp:
        path = generate("darcy", n=n_train + n_val, n_test=n_val, resolution=32, out=str(Path(tmp) / "darcy.h5"),
                        seed=0, progress=False)
        with h5py.File(path) as f:
            x, y = torch.as_tensor(f["inputs"][:]).float(), torch.as_tensor(f["outputs"][:]).float()
    x = (x - x.mean()) / x.std()
    y = y / y.std()
    return (x[:n_train].to(device), y[:n_train].to(device)), (x[n_train:].to(device), y[n_train:].to(device))


def mlp_data(n_train: int, n_val: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_val, 16, generator=g)
    w = torch.randn(16, 4, generator=g)
    y = torch.sin(x @ w) + 0.1 * (x @ w) ** 2
    return (x[:n_train].to(device), y[:n_train].to(device)), (x[n_train:].to(device), y[n_train:].to(device))


def rel_l2(pred, y):
    """Mean relative L2 error over the batch (a tensor, so it serves as the training loss too)."""
    return ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()


def run(task: str, make_model, train, val, name: str, lr: float, steps: int, batch: int, eval_every: int,
        options: dict, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = make_model().to(device)
    opt = build_optimizer(name, model, lr=lr, weight_decay=1e-4, **options)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x, y = train
    g = torch.Generator(device="cpu").manual_seed(1)
    curve, step_time, sync = [], 0.0, (torch.cuda.synchronize if device.type == "cuda" else lambda: None)
    for step in range(1, steps + 1):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g).to(device)
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        rel_l2(model(x[idx]), y[idx]).backward()
        opt.step()
        schedule.step()
        sync()
        step_time += time.perf_counter() - t0
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                error = float(rel_l2(model(val[0]), val[1]))
            curve.append((step, step_time, error if math.isfinite(error) else math.inf))
    return {"task": task, "optimizer": name, "lr": lr, **{k: v for k, v in options.items()},
            "final_error": curve[-1][2], "seconds_per_step": step_time / steps, "curve": curve}


# label: (optimizer name, options, FNO learning rates, PINN learning rates); the first rate of
# each list is the quick setting's
SECOND_ORDER = {
    "adamw": ("adamw", {}, [3e-3, 1e-3, 1e-2], [1e-2, 3e-3, 1e-3]),
    "sophia_h": ("sophia", {"estimator": "hutchinson", "update_every": 10}, [3e-3, 1e-3, 1e-2], [1e-2, 3e-3, 1e-3]),
    "sophia_g": ("sophia", {"estimator": "gnb", "update_every": 10}, [3e-3, 1e-3, 1e-2], [1e-2, 3e-3, 1e-3]),
    "adahessian": ("adahessian", {}, [0.05, 0.02, 0.15], [0.05, 0.15, 0.02]),
    "mfac": ("mfac", {"ngrads": 16, "damp": 1e-2, "momentum": 0.5}, [3e-3, 1e-3, 1e-2], [3e-3, 1e-3, 1e-2]),
    "mkor": ("mkor", {"inv_freq": 10}, [3e-3, 1e-3, 1e-2], [3e-3, 1e-2, 1e-3]),
    "mkor_h": ("mkor", {"inv_freq": 10, "hybrid": True, "switch_window": 50}, [3e-3, 1e-3, 1e-2],
               [3e-3, 1e-2, 1e-3]),
    "dct_lowrank": ("dct_lowrank", {"rank": 8, "update_every": 10}, [3e-3, 1e-3, 1e-2], [1e-2, 3e-3, 1e-3]),
}
ADAM_LBFGS_LRS = [3e-3, 1e-2, 1e-3]  # the Adam phase of Adam → L-BFGS
LBFGS = ("lbfgs", {"max_iter": 20, "history_size": 50, "tolerance_grad": 1e-12, "tolerance_change": 1e-14})
# second-order first phases of "<first> → L-BFGS" on the PINN, swept over the same number of rates as Adam's
THEN_LBFGS = ("sophia_g", "sophia_h")
# NNCG after Adam → L-BFGS (Rathore et al. 2024): its damping μ is swept instead of a learning rate (the line
# search picks the step), over as many values as Adam → L-BFGS's rates, with that schedule's best Adam rate
NNCG = ("nncg", {"rank": 60, "precond_update_freq": 20, "cg_max_iters": 500})
NNCG_MUS = [1e-3, 1e-5, 1e-7]


def _state_bytes(obj) -> int:
    """Bytes of every tensor in an optimizer state (nested dicts and lists included)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    return 0


class _Clock:
    """Training time only: synchronised around each step, evaluation excluded."""

    def __init__(self, device: torch.device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.seconds = 0.0

    def step(self, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        self.seconds += time.perf_counter() - t0
        return out


def _trainer(solver, name: str, lr: float, options: dict, device: torch.device) -> Trainer:
    trainer = Trainer(solver, optimizer=name, lr=lr, optimizer_options=options, device=device, progress=False)
    trainer.optimizer = trainer._make_optimizer()
    return trainer


def fno_second_order(label: str, lr: float, train, val, steps: int, batch: int, every: int, width: int,
                     device: torch.device) -> dict:
    """One FNO-Darcy run of ``steps`` Trainer steps; the curve is (step, seconds, val rel. L2)."""
    name, options = SECOND_ORDER[label][:2]
    torch.manual_seed(0)
    solver = OperatorSolver(FNO((12, 12), 1, 1, width, n_layers=2), loss="l2", normalize=False).to(device)
    trainer = _trainer(solver, name, lr, options, device)
    params = [p for p in solver.parameters() if p.requires_grad]
    x, y = train
    g = torch.Generator().manual_seed(1)
    clock, curve, skipped = _Clock(device), [], 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(1, steps + 1):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g).to(device)
        _, ok = clock.step(lambda: trainer._step(solver, (x[idx], y[idx]), params))
        skipped += not ok
        if step % every == 0 or step == steps:
            with torch.no_grad():
                error = float(rel_l2(solver.operator(val[0]), val[1]))
            curve.append((step, clock.seconds, error if math.isfinite(error) else math.inf))
    return {"task": "fno_darcy", "method": label, "optimizer": name, "lr": lr, **options,
            "final_error": curve[-1][2], "seconds": clock.seconds, "steps": steps, "skipped": skipped,
            "state_mib": _state_bytes(trainer.optimizer.state) / 2 ** 20,
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None,
            "curve": curve}


def _pinn_phases(label: str, lr: float, budget: float, mu: float | None = None) -> list[tuple[str, dict, float, float]]:
    """(optimizer, options, lr, until seconds) per phase: ``"lbfgs"``; ``"<first>_lbfgs"``, i.e. ``first``
    (``"adam"`` or a :data:`SECOND_ORDER` label) for half the budget, then L-BFGS; ``"adam_lbfgs_nncg"``,
    Adam for half the budget, L-BFGS for a quarter, NNCG with damping ``mu`` for the last quarter; or a
    label alone."""
    if label == "lbfgs":
        return [(*LBFGS, 1.0, budget)]
    if label == "adam_lbfgs_nncg":
        return [("adam", {}, lr, budget / 2), (*LBFGS, 1.0, 3 * budget / 4), (NNCG[0], {**NNCG[1], "mu": mu}, 1.0, budget)]
    if label.endswith("_lbfgs"):
        first = label[: -len("_lbfgs")]
        name, options = ("adam", {}) if first == "adam" else SECOND_ORDER[first][:2]
        return [(name, options, lr, budget / 2), (*LBFGS, 1.0, budget)]
    name, options = SECOND_ORDER[label][:2]
    return [(name, options, lr, budget)]


def pinn_second_order(label: str, lr: float, budget: float, every: int, n_interior: int, hidden,
                      device: torch.device, mu: float | None = None, seed: int = 0, snapshot_at: float | None = None,
                      start: dict | None = None) -> dict:
    """One PINN run for ``budget`` seconds of training; phases as in :func:`_pinn_phases`; ``seed``
    sets the network's initialisation, the points and the optimizers' random streams.

    ``snapshot_at``: keep the weights, clock, step count and curve at that time in the row's
    ``"snapshot"``. ``start``: such a snapshot to continue from with the last phase only, its
    time counted (so two schedules that share a prefix are compared from the same weights)."""
    torch.manual_seed(seed)
    solver = PINNSolver(reaction(), hidden=hidden, hard=True, dtype=torch.float64, seed=seed).to(device)
    data = solver.collocation(n_interior, max(n_interior // 16, 16), sampler="sobol", seed=seed)
    batch = {k: v.to(device) for k, v in data[0].items()}
    params = [p for p in solver.parameters() if p.requires_grad]
    phases = _pinn_phases(label, lr, budget, mu)
    clock, curve, step, skipped, state_mib = _Clock(device), [], 0, 0, 0.0
    if start is not None:
        solver.load_state_dict(start["solver"])
        clock.seconds, curve, step, phases = start["seconds"], list(start["curve"]), start["steps"], phases[-1:]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    begin, snapshot, stats = clock.seconds, None, {}
    for name, options, rate, until in phases:
        trainer = _trainer(solver, name, rate, options, device)
        while clock.seconds < until:
            if name not in ("lbfgs", "nncg"):  # cosine decay over the phase's time (line searches pick the step)
                for group in trainer.optimizer.param_groups:
                    group["lr"] = rate * 0.5 * (1 + math.cos(math.pi * (clock.seconds - begin) / (until - begin)))
            _, ok = clock.step(lambda: trainer._step(solver, batch, params))
            step, skipped = step + 1, skipped + (not ok)
            if name == "nncg":
                state = trainer.optimizer.state
                stats = {"nncg_steps": state["nncg_steps"], "nncg_rejected_steps": state["nncg_rejected_steps"],
                         "nncg_cg_truncated": state["nncg_cg_truncated"]}
            if step % every == 0 or clock.seconds >= until:
                error = solver.relative_error()
                curve.append((step, clock.seconds, error if math.isfinite(error) else math.inf))
            if snapshot_at is not None and snapshot is None and clock.seconds >= snapshot_at:
                snapshot = {"solver": {k: v.clone() for k, v in solver.state_dict().items()},
                            "seconds": clock.seconds, "steps": step,
                            "curve": curve + [(step, clock.seconds, solver.relative_error())]}
        state_mib, begin = max(state_mib, _state_bytes(trainer.optimizer.state) / 2 ** 20), until
    return {"task": "pinn_reaction", "method": label, "lr": lr if label != "lbfgs" else 1.0, "mu": mu, "seed": seed,
            "final_error": curve[-1][2], "seconds": clock.seconds, "steps": step, "skipped": skipped,
            "state_mib": state_mib,
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None,
            "curve": curve, **stats, **({"snapshot": snapshot} if snapshot is not None else {})}


def _to_target(rows: list[dict], target: float) -> None:
    for r in rows:
        hit = next((c for c in r["curve"] if c[2] <= target), None)
        r.update(target_error=target, steps_to_target=hit[0] if hit else None,
                 seconds_to_target=hit[1] if hit else None)


def second_order_suite(args, device: torch.device) -> None:
    quick = args.quick
    rows: list[dict] = []
    if "fno_darcy" in args.tasks:
        rows += _fno_second_order_rows(args, device)
        _report_second_order(rows, args, device)
    if "pinn" in args.tasks:
        rows += _pinn_second_order_rows(quick, device, args.methods, args.seed)
        _report_second_order(rows, args, device, PINN_BUDGET[quick])


PINN_BUDGET = {True: 10.0, False: 120.0}  # seconds of training per PINN run (quick, full)
PINN_METHODS = ["lbfgs", "adam_lbfgs", "adam_lbfgs_nncg", *(f"{m}_lbfgs" for m in THEN_LBFGS), *SECOND_ORDER]


def _fno_second_order_rows(args, device: torch.device) -> list[dict]:
    quick = args.quick
    train, val = darcy(64 if quick else 1000, 32 if quick else 100, device)
    steps, batch, every, width = (60, 8, 10, 16) if quick else (800, 20, 50, 32)
    fno_rows = []
    for label, (_, _, lrs, _) in SECOND_ORDER.items():
        if args.methods and label not in args.methods:
            continue
        runs = [fno_second_order(label, lr, train, val, steps, batch, every, width, device)
                for lr in (lrs[:2] if quick else lrs)]
        best = min(runs, key=lambda r: r["final_error"])
        best["sweep"] = {r["lr"]: r["final_error"] for r in runs}
        fno_rows.append(best)
        print(f"fno_darcy {label} lr={best['lr']:g} error={best['final_error']:.4g}", flush=True)
    base = next(r for r in fno_rows if r["method"] == "adamw")
    _to_target(fno_rows, base["final_error"])
    for r in fno_rows:
        r["time_per_step_vs_adamw"] = (r["seconds"] / r["steps"]) / (base["seconds"] / base["steps"])
    return fno_rows


def _pinn_second_order_rows(quick: bool, device: torch.device, methods=None, seed: int = 0) -> list[dict]:
    budget = PINN_BUDGET[quick]
    every, n_interior, hidden = (100, 512, (20, 20, 20)) if quick else (200, 2048, (50, 50, 50))
    pinn_rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small only waits on a second thread (7 ms against 1.5 ms a step)
    for label in PINN_METHODS:
        if methods and label not in methods:
            continue
        if label == "adam_lbfgs_nncg":  # from Adam → L-BFGS's best run at 3/4 of the budget
            reference = next(r for r in pinn_rows if r["method"] == "adam_lbfgs")
            runs = [pinn_second_order(label, reference["lr"], budget, every, n_interior, hidden, device, mu, seed,
                                      start=reference["snapshot"])
                    for mu in (NNCG_MUS[:2] if quick else NNCG_MUS)]
            sweep_key = "mu"
        else:
            first = label[: -len("_lbfgs")] if label.endswith("_lbfgs") else label
            lrs = [1.0] if label == "lbfgs" else ADAM_LBFGS_LRS if first == "adam" else SECOND_ORDER[first][3]
            runs = [pinn_second_order(label, lr, budget, every, n_interior, hidden, device, seed=seed,
                                      snapshot_at=3 * budget / 4 if label == "adam_lbfgs" else None)
                    for lr in (lrs[:2] if quick else lrs)]
            sweep_key = "lr"
        best = min(runs, key=lambda r: r["final_error"])
        best["sweep"] = {r[sweep_key]: r["final_error"] for r in runs}
        pinn_rows.append(best)
        print(f"pinn_reaction {label} lr={best['lr']:g} mu={best['mu']} error={best['final_error']:.4g} "
              f"steps={best['steps']}",
              flush=True)
    for r in pinn_rows:
        r.pop("snapshot", None)  # weights, for adam_lbfgs_nncg's start: not for the JSON
    base = next((r for r in pinn_rows if r["method"] == "adamw"), None)
    if base is not None:
        _to_target(pinn_rows, base["final_error"])
    reference = next(r for r in pinn_rows if r["method"] == "adam_lbfgs")["final_error"]
    for r in pinn_rows:
        r["error_vs_adam_lbfgs"] = r["final_error"] / reference
    torch.set_num_threads(threads)
    return pinn_rows


def _device_name(device: torch.device) -> str:
    return (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads")


def _report_second_order(rows: list[dict], args, device: torch.device, budget: float | None = None) -> None:
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    header = ("| task | method | best lr (μ) | final rel. L2 | vs Adam→L-BFGS | steps | train s | steps to target "
              "| s to target | optimizer state MiB | peak MiB |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header] + [
        f"| {r['task']} | {r['method']} | {r['lr']:g}{'' if r.get('mu') is None else ' (μ %g)' % r['mu']} "
        f"| {r['final_error']:.3e} "
        f"| {fmt(r.get('error_vs_adam_lbfgs'), '.2f')} | {r['steps']} | {r['seconds']:.1f} "
        f"| {fmt(r.get('steps_to_target'), 'd')} | {fmt(r.get('seconds_to_target'), '.1f')} "
        f"| {r['state_mib']:.3f} | {fmt(r['peak_mib'], '.0f')} |" for r in rows]
    device_name = _device_name(device)
    pinn_target = ", target = AdamW's final error" if any(r["task"] == "pinn_reaction" and r["method"] == "adamw"
                                                          for r in rows) else ""
    pinn = f"; PINN on 1 thread: reaction ρ=5, every method {budget:g} s of training{pinn_target}" if budget else ""
    fno = ("; FNO-Darcy 32², equal steps, target = AdamW's best final error"
           if any(r["task"] == "fno_darcy" for r in rows) else "")
    notes = [f"- {r['method']}, seed {r['seed']}: final error per μ "
             f"{', '.join(f'{mu:g}: {err:.3e}' for mu, err in r['sweep'].items())}; {r['nncg_steps']} NNCG steps, "
             f"{r['nncg_cg_truncated']} of their CG solves stopped short of the tolerance (negative curvature "
             f"or the iteration cap), {r['nncg_rejected_steps']} steps rejected by the line search"
             for r in rows if r["method"] == "adam_lbfgs_nncg"]
    table = (f"Second-order optimizers ({'quick' if args.quick else 'full'}; {device_name}; torch {torch.__version__}"
             f"{fno}{pinn})\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else ""))
    print(table, flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "optimizers_second_order_quick" if args.quick else "optimizers_second_order"
    if set(args.tasks) != {"fno_darcy", "pinn"}:
        stem += "_" + "_".join(args.tasks) + "_" + device.type
    if args.methods:
        stem += "_" + "_".join(sorted(args.methods))
    if args.seed:
        stem += f"_seed{args.seed}"
    (out / f"{stem}.md").write_text(table + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"device": device_name, "quick": args.quick, "pinn_budget_s": budget,
                                                  "torch": torch.__version__, "rows": rows}, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes on 2 CPU cores")
    parser.add_argument("--suite", choices=("orthogonalized", "second_order"), default="orthogonalized")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the .md and .json go")
    parser.add_argument("--tasks", nargs="+", choices=("fno_darcy", "mlp", "pinn"), default=None,
                        help="which tasks (orthogonalized: fno_darcy mlp; second_order: fno_darcy pinn); "
                             "a subset writes <stem>_<tasks>_<device>.*")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="second_order suite: only these labels besides the baselines (adamw on FNO, adam_lbfgs)")
    parser.add_argument("--seed", type=int, default=0, help="second_order suite, PINN: network, points, streams")
    args = parser.parse_args(argv)
    suite_tasks = {"orthogonalized": ["fno_darcy", "mlp"], "second_order": ["fno_darcy", "pinn"]}[args.suite]
    args.tasks = args.tasks or suite_tasks
    if args.methods:  # the baselines the ratios refer to always run (AdamW: FNO; Adam → L-BFGS: PINN)
        unknown = set(args.methods) - set(PINN_METHODS)
        if unknown:
            parser.error(f"--methods must be among {PINN_METHODS}, got unknown {sorted(unknown)}")
        args.methods = set(args.methods) | {"adam_lbfgs"} | ({"adamw"} if "fno_darcy" in args.tasks else set())
    if not set(args.tasks) <= set(suite_tasks):
        parser.error(f"--tasks for the {args.suite} suite must be among {suite_tasks}, got {args.tasks}")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.suite == "second_order":
        second_order_suite(args, device)
        return
    quick = args.quick
    # four rates a factor ~3 apart: the H100 run's best AdamW and Muon rates sat at the top of a sweep of three
    lrs = {"adamw": [1e-3, 3e-3] if quick else [1e-3, 3e-3, 1e-2, 3e-2],
           "adamp": [1e-3, 3e-3] if quick else [1e-3, 3e-3, 1e-2, 3e-2],
           "sgdp": [3e-2, 1e-1] if quick else [3e-2, 1e-1, 3e-1, 1.0]}
    ortho_lrs = [3e-3, 1e-2] if quick else [3e-3, 1e-2, 3e-2, 1e-1]

    source = "sciml.datasets darcy 32²"
    width = 16 if quick else 32
    tasks = {
        "fno_darcy": (lambda: FNO((12, 12), 1, 1, width, n_layers=4 if not quick else 2),
                      *(darcy(64 if quick else 1000, 32 if quick else 100, device) if "fno_darcy" in args.tasks
                        else (None, None)), 60 if quick else 800, 8 if quick else 20, 10 if quick else 50),
        "mlp": (lambda: nn.Sequential(nn.Linear(16, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(),
                                      nn.Linear(128, 4)), *mlp_data(512 if quick else 4096, 256, device),
                150 if quick else 1500, 32 if quick else 128, 25 if quick else 50),
    }
    rows = []
    for task, (make_model, train, val, steps, batch, every) in tasks.items():
        if task not in args.tasks:
            continue
        configs = [("adamw", {}), ("adamp", {}), ("sgdp", {"momentum": 0.9})]
        configs += [(n, {"complex_mode": "per_mode"} if task == "fno_darcy" else {}) for n in ORTHO]
        if task == "fno_darcy":
            configs.append(("muon", {"complex_mode": "flatten"}))
        for name, options in configs:
            runs = [run(task, make_model, train, val, name, lr, steps, batch, every, options, device)
                    for lr in lrs.get(name, ortho_lrs)]
            best = min(runs, key=lambda r: r["final_error"])
            best["sweep"] = {r["lr"]: r["final_error"] for r in runs}
            rows.append(best)
            print(f"{task} {name} {options} lr={best['lr']:g} error={best['final_error']:.4g}", flush=True)
        base = next(r for r in rows if r["task"] == task and r["optimizer"] == "adamw")
        target = base["final_error"]
        for r in rows:
            if r["task"] != task:
                continue
            hit = next((c for c in r["curve"] if c[2] <= target), None)
            r.update(target_error=target, steps_to_target=hit[0] if hit else None,
                     steps_fraction=hit[0] / steps if hit else None,
                     seconds_to_target=hit[1] if hit else None,
                     step_time_vs_adamw=r["seconds_per_step"] / base["seconds_per_step"])

        _report(rows, args, device, source)


def _report(rows: list[dict], args, device: torch.device, source: str) -> None:
    """Print the table of the tasks finished so far and write it (so a cut-off run keeps them)."""
    header = ("| task | optimizer | complex mode | best lr | final error | steps to target | s to target "
              "| steps / AdamW's | step time / AdamW |\n|---|---|---|---|---|---|---|---|---|")
    lines = [header] + [
        f"| {r['task']} | {r['optimizer']} | {r.get('complex_mode', '')} | {r['lr']:g} | {r['final_error']:.4f} "
        f"| {r['steps_to_target'] if r['steps_to_target'] else '—'} "
        f"| {'%.2f' % r['seconds_to_target'] if r['seconds_to_target'] is not None else '—'} "
        f"| {'%.2f' % r['steps_fraction'] if r['steps_fraction'] is not None else '—'} "
        f"| {r['step_time_vs_adamw']:.2f} |" for r in rows]
    device_name = _device_name(device)
    table = (f"Optimizers vs AdamW ({'quick' if args.quick else 'full'}; {device_name}; torch {torch.__version__}; "
             f"FNO data: {source}; target = AdamW's best final error)\n\n" + "\n".join(lines))
    print(table, flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "optimizers_quick" if args.quick else "optimizers"
    if set(args.tasks) != {"fno_darcy", "mlp"}:
        stem += "_" + "_".join(args.tasks) + "_" + device.type
    (out / f"{stem}.md").write_text(table + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"device": device_name, "fno_data": source, "quick": args.quick,
                                                  "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
