"""What the Trainer costs over a bare training loop, and what bf16 and torch.compile buy.

    python -m benchmarks.trainer                         # CPU: the FNO demo and the PINN Adam phase
    python -m benchmarks.trainer --case fno_demo --threads 2 --epochs 3 --rounds 6
    python -m benchmarks.trainer --case gpu [--device cuda] [--resolution 64] [--batch-size 32]

CPU cases (``--case cpu`` runs both; written to ``results/trainer_cpu.{json,md}``), each the
Trainer against the loop a user writes by hand, from the same starting weights (a copy of the
state dict) through the same batches, with the same optimizer and schedule:

- ``fno_demo``: the README's ``sciml demo`` — FNO n_modes (12, 12), width 32, 4 layers, 32×32
  fields (1000 train / 100 test; synthetic fields of the Darcy shapes, since timing does not
  depend on the values), batch 20, AdamW lr 3e-3 weight decay 1e-4 (``build_optimizer``'s groups:
  no decay on biases), cosine schedule, validation on the test split every epoch. The plain loop
  draws its order from ``DistributedSampler(seed=0)`` as the Trainer does, keeps the loss on the
  device (one host sync per epoch) and validates with ``solver.loss``.
- ``pinn_adam``: the README's Adam phase for Burgers — ``PINNSolver(burgers(), hidden=(20,)*8,
  hard=True, dtype=float64)``, 10000 Sobol points, ``Trainer(optimizer="adam", lr=1e-3,
  batch_size=1)`` (one step per epoch) against ``loss(points[0]).backward(); opt.step()``.

An epoch of the Trainer is timed from one ``scheduler.step()`` to the next (it builds its
schedule through a callable here), so it covers its steps, validation, bookkeeping and progress
bar (on by default, as for a user); the plain loop times its own epochs. Each round runs the
Trainer and the plain loop once each from the same weights, alternating which goes first, in
short runs so that this VM's drift (±15%, far more while other jobs run) falls on both alike;
the first epoch of every run is a warm-up. The ratio quoted is the median over rounds of each
round's ratio of median epochs; the ratio of all epochs' medians and of the fastest epochs are
given beside it. (Interleaving the two epoch by epoch in one process was tried and rejected: a
step in the Trainer's place ran 3–8% slower even when it was the plain loop's own step.) The
two must also end with the same losses and weights (the same arithmetic; the differences are
shown). The minor page faults per epoch are shown too. glibc's malloc hands freed activations back to
the OS and faults them in again at the next step, thousands of times per step here, varying from
run to run; the Trainer's ``fit`` fixes malloc's thresholds (:mod:`sciml.host_memory`) for the
whole process, so the plain loop of the same process, after the first Trainer run, is measured
with them too: the ratio is the Trainer's own cost. ``--malloc system`` measures both under
glibc's defaults (``SCIML_MALLOC=system``), as the Trainer ran before.

``--case gpu`` (the default where CUDA is present) is the original table: the bare loop, the
Trainer streamed or preloaded, bf16 autocast, the step captured as a CUDA graph (any reason it
was not captured is printed) and torch.compile (``results/trainer_<device>.json``).
Every time is quoted as a ratio to the baseline measured in the same run; absolute milliseconds
are printed too but mean something only on the machine that printed them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Iterator

import torch

from sciml import Trainer, host_memory
from sciml.losses import relative_l2
from sciml.operators import FNO
from sciml.solvers import OperatorSolver

RESULTS = Path(__file__).parent / "results"


def _data(n: int, res: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 1, res, res, generator=g)
    k = torch.fft.fftfreq(res, d=1.0 / res)
    u = torch.fft.ifft2(torch.fft.fft2(a) / (1 + 0.05 * (k[:, None] ** 2 + k[None, :] ** 2))).real
    return a, u


def _model(width: int, modes: int) -> FNO:
    torch.manual_seed(0)
    return FNO(n_modes=(modes, modes), in_channels=1, out_channels=1, hidden_channels=width)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(a, u, args, device) -> float:
    """Seconds per step of a hand-written loop (after one warm-up epoch)."""
    model = _model(args.width, args.modes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    a, u = a.to(device), u.to(device)
    mean, std = a.mean(), a.std()
    times = []
    for epoch in range(args.epochs + 1):
        perm = torch.randperm(len(a), device=device)
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(a), args.batch_size):
            idx = perm[i : i + args.batch_size]
            loss = relative_l2(model((a[idx] - mean) / std), u[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        if epoch:  # epoch 0 warms up kernels and allocator
            times.append((time.perf_counter() - t0) / -(-len(a) // args.batch_size))
    return min(times)


def trainer_loop(a, u, args, device, **options) -> float:
    """Seconds per step of Trainer.fit on the same problem (best epoch after a warm-up epoch)."""
    data = torch.utils.data.TensorDataset(a, u)
    solver = OperatorSolver(_model(args.width, args.modes))
    with warnings.catch_warnings(record=True) as caught:  # cuda_graph=True says why a step is not captured
        warnings.simplefilter("always")
        history = Trainer(solver, lr=1e-3, epochs=args.epochs + 1, batch_size=args.batch_size, device=device,
                          progress=False, **options).fit(data)
    for w in caught:
        print(f"  warning: {w.message}")
    steps = -(-len(a) // args.batch_size)
    return min(history["seconds"][1:]) / steps


# ---------------------------------------------------------------------------- CPU: the Trainer against a plain loop
class _Clock:
    """Stamps at every ``scheduler.step()`` of the Trainer: an epoch is the time from one to the next."""

    def __init__(self):
        self.stamps: list[float] = []
        self.faults: list[int | None] = []  # minor page faults so far, at each stamp

    def scheduler(self, make):
        """A Trainer ``scheduler`` callable: ``make(optimizer)`` whose ``step`` also stamps the time."""
        def build(opt):
            sched = make(opt)
            step = sched.step

            def stamped_step(*args, **kwargs):
                step(*args, **kwargs)
                self.stamps.append(time.perf_counter())
                self.faults.append(_minor_faults())

            sched.step = stamped_step
            return sched
        return build

    def periods(self) -> list[float]:
        """Seconds of the epochs after the first (the warm-up ends at the first stamp)."""
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]

    def faults_per_epoch(self) -> float | None:
        """Minor page faults per epoch after the first."""
        if len(self.faults) < 2 or self.faults[0] is None:
            return None
        return (self.faults[-1] - self.faults[0]) / (len(self.faults) - 1)


def _cpu_name(threads: int) -> str:
    return f"{platform.processor() or platform.machine() or 'cpu'} ({threads} threads)"


def _fno_demo_problem(args):
    from torch.utils.data import TensorDataset

    a, u = _data(args.n + args.n_test, args.resolution)
    train, test = TensorDataset(a[: args.n], u[: args.n]), TensorDataset(a[args.n :], u[args.n :])
    torch.manual_seed(0)
    solver = OperatorSolver(FNO(n_modes=(args.modes, args.modes), in_channels=1, out_channels=1,
                                hidden_channels=args.width, n_layers=args.layers))
    solver.prepare(train)  # the Trainer fits the same statistics again at the start of its run
    return solver, (train, test)


def _fno_trainer(solver, data, args, clock: _Clock) -> dict:
    train, test = data
    cosine = clock.scheduler(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs))
    history = Trainer(solver, optimizer="adamw", lr=args.lr, weight_decay=1e-4, epochs=args.epochs,
                      batch_size=args.batch_size, scheduler=cosine, device="cpu", checkpoint_dir=None,
                      progress=args.progress).fit(train, test)
    return {"train_loss": history.last["train_loss"], "val_loss": history.last["val_loss"]}


def _fno_plain(solver, data, args, losses: dict) -> Iterator[float]:
    """The loop by hand, one epoch per ``next``: the Trainer's batches (DistributedSampler order,
    batch_size cuts), its optimizer groups and schedule, the loss summed on the device (one host
    sync per epoch), validation with ``solver.loss``. Yields the epoch's seconds."""
    from torch.utils.data import DistributedSampler

    from sciml.optim import build_optimizer

    (a, u), (a_test, u_test) = data[0].tensors, data[1].tensors
    opt = build_optimizer("adamw", solver, lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    sampler = DistributedSampler(data[0], num_replicas=1, rank=0, shuffle=True, seed=0)
    bs = args.batch_size
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        solver.train()
        sampler.set_epoch(epoch)
        total, steps = torch.zeros((), dtype=torch.float64), 0  # float64, as the Trainer's sum of floats
        for idx in torch.tensor(list(sampler)).split(bs):
            loss = solver.loss((a[idx], u[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.detach(), steps + 1
        sched.step()
        solver.eval()
        with torch.no_grad():
            val = sum(solver.loss((a_test[i : i + bs], u_test[i : i + bs])).double() * len(a_test[i : i + bs])
                      for i in range(0, len(a_test), bs)) / len(a_test)
        losses.update(train_loss=float(total) / steps, val_loss=float(val))
        yield time.perf_counter() - t0


def _pinn_problem(args):
    from sciml.solvers.pinn import PINNSolver
    from sciml.solvers.pinn_problems import burgers

    pinn = PINNSolver(burgers(), hidden=(20,) * args.pinn_depth, hard=True, dtype=torch.float64)
    return pinn, pinn.collocation(n_interior=args.pinn_points, sampler="sobol")


def _pinn_trainer(pinn, points, args, clock: _Clock) -> dict:
    constant = clock.scheduler(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    # an epoch line every 20 epochs, as the README's run of 1000 epochs prints them
    history = Trainer(pinn, optimizer="adam", lr=1e-3, epochs=args.pinn_steps, batch_size=1, scheduler=constant,
                      device="cpu", progress=args.progress, log_every=20).fit(points)
    return {"train_loss": history.last["train_loss"]}


def _pinn_plain(pinn, points, args, losses: dict) -> Iterator[float]:
    """``loss(points[0]).backward(); opt.step()`` by hand, one step per ``next``; yields its seconds."""
    from sciml.optim import build_optimizer

    opt = build_optimizer("adam", pinn, lr=1e-3)  # torch.optim.Adam over the same groups as the Trainer's
    batch = points[0]
    pinn.train()
    for _ in range(args.pinn_steps):
        t0 = time.perf_counter()
        loss = pinn.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.update(train_loss=float(loss.detach()))
        yield time.perf_counter() - t0


def _minor_faults() -> int | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    real = [torch.view_as_real(t) if t.is_complex() else t for t in (a, b)]
    return float((real[0].double() - real[1].double()).abs().max()) if a.numel() else 0.0


def _compare(label: str, unit: str, model: torch.nn.Module, data, trainer, plain, args, rounds: int) -> dict:
    """Rounds of one Trainer run and one plain run, each from the same weights, alternating which
    goes first; the ratio of their epochs and the difference of their losses and weights."""
    start = copy.deepcopy(model.state_dict())
    round_ratios, trainer_all, plain_all, loss_diffs, weight_diffs = [], [], [], [], []
    faults = {"trainer": [], "plain": []}
    for r in range(rounds):
        runs = {}
        for who in ("trainer", "plain") if r % 2 == 0 else ("plain", "trainer"):
            model.load_state_dict(start)
            if who == "trainer":
                clock = _Clock()
                losses = trainer(model, data, args, clock)
                seconds, per_epoch = clock.periods(), clock.faults_per_epoch()
            else:
                losses = {}
                epochs = plain(model, data, args, losses)
                next(epochs)  # the first epoch is its warm-up
                before = _minor_faults()
                seconds = list(epochs)
                per_epoch = None if before is None else (_minor_faults() - before) / len(seconds)
            if per_epoch is not None:
                faults[who].append(per_epoch)
            runs[who] = seconds, losses, {k: v.detach().clone() for k, v in model.state_dict().items()}
        (t_sec, t_loss, t_state), (p_sec, p_loss, p_state) = runs["trainer"], runs["plain"]
        trainer_all += t_sec
        plain_all += p_sec
        round_ratios.append(statistics.median(t_sec) / statistics.median(p_sec))
        loss_diffs.append(max(abs(t_loss[k] - p_loss[k]) / abs(p_loss[k]) for k in p_loss))
        weight_diffs.append(max(_max_difference(v, p_state[k]) for k, v in t_state.items()))
        print(f"  {label} round {r + 1}/{rounds}: Trainer {statistics.median(t_sec) * 1e3:.1f} ms, plain "
              f"{statistics.median(p_sec) * 1e3:.1f} ms per {unit} (ratio {round_ratios[-1]:.3f}); "
              f"losses {t_loss} vs {p_loss}", flush=True)
    model.load_state_dict(start)
    return {"case": label, "unit": unit, "rounds": rounds,
            "trainer_ms": statistics.median(trainer_all) * 1e3, "plain_ms": statistics.median(plain_all) * 1e3,
            "ratio": statistics.median(round_ratios),
            "ratio_of_medians": statistics.median(trainer_all) / statistics.median(plain_all),
            "ratio_of_fastest": min(trainer_all) / min(plain_all),
            "round_ratios": round_ratios, "trainer_seconds": trainer_all, "plain_seconds": plain_all,
            "trainer_minor_faults": statistics.median(faults["trainer"]) if faults["trainer"] else None,
            "plain_minor_faults": statistics.median(faults["plain"]) if faults["plain"] else None,
            "max_relative_loss_difference": max(loss_diffs), "max_weight_difference": max(weight_diffs)}


MALLOC_ENV = ("SCIML_MALLOC", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def _faults(row: dict) -> str:
    t, p = row["trainer_minor_faults"], row["plain_minor_faults"]
    return "n/a" if t is None else f"{t:,.0f} / {p:,.0f} per {row['unit']}"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def run_cpu(args, cases: list[str]) -> dict:
    torch.set_num_threads(args.threads)
    load_before, rows = _load(), []
    if "fno_demo" in cases:
        solver, data = _fno_demo_problem(args)
        rows.append(_compare("fno_demo", "epoch", solver, data, _fno_trainer, _fno_plain, args, args.rounds or 6))
    if "pinn_adam" in cases:
        pinn, points = _pinn_problem(args)
        rows.append(_compare("pinn_adam", "step", pinn, points, _pinn_trainer, _pinn_plain, args,
                             args.rounds or 16))
    name = _cpu_name(torch.get_num_threads())
    load = [x for x in (load_before, _load()) if x is not None]
    if load and max(load) > args.threads + 0.5:
        print(f"\nwarning: load average {max(load):.1f} on {os.cpu_count()} cores: other jobs shared the CPU, so "
              f"single epochs may be many times slower; the paired ratio is the figure to trust, if any")
    what = {"fno_demo": f"FNO ({args.modes},{args.modes}) modes, width {args.width}, {args.layers} layers, "
                        f"{args.resolution}², {args.n}/{args.n_test} samples, batch {args.batch_size}, AdamW "
                        f"lr {args.lr:g} + cosine, validation each epoch",
            "pinn_adam": f"Burgers PINN (20,)*{args.pinn_depth} tanh, hard, float64, {args.pinn_points} Sobol "
                         f"points, Adam lr 1e-3, one step per epoch"}
    lines = [f"Trainer against a hand-written loop, same weights and batches — {name}, torch {torch.__version__}; "
             f"progress bar {'on' if args.progress else 'off'}; alternating rounds of one run each, "
             f"{args.epochs} FNO epochs / {args.pinn_steps} PINN steps per run, the first a warm-up"
             + (f"; load average {' → '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} cores" if load else "")
             + f"; malloc thresholds {'fixed by the Trainer' if host_memory.keep() else 'glibc defaults'}"
             + "".join(f", {k}={os.environ[k]}" for k in MALLOC_ENV if k in os.environ) + ".",
             "",
             "| case | Trainer / plain (median of rounds) | ratio of medians | ratio of fastest | Trainer ms | "
             "plain ms | page faults Trainer / plain | max rel. loss diff | max weight diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['case']} ({what[r['case']]}; {r['rounds']} rounds) | **{r['ratio']:.3f}** | "
                     f"{r['ratio_of_medians']:.3f} | "
                     f"{r['ratio_of_fastest']:.3f} | {r['trainer_ms']:.1f} / {r['unit']} | "
                     f"{r['plain_ms']:.1f} / {r['unit']} | {_faults(r)} | {r['max_relative_loss_difference']:.1e} | "
                     f"{r['max_weight_difference']:.1e} |")
    table = "\n".join(lines)
    print("\n" + table)
    result = {"device": name, "torch": torch.__version__, "config": vars(args), "load_average": load,
              "malloc_env": {k: os.environ[k] for k in MALLOC_ENV if k in os.environ}, "rows": rows}
    out = Path(args.out) if args.out else RESULTS / "trainer_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return result


# ---------------------------------------------------------------------------- GPU: the original table
def run_gpu(args) -> dict:
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.resolution = args.resolution or (64 if gpu else 32)
    args.batch_size = args.batch_size or (32 if gpu else 20)
    args.n = args.n or (1024 if gpu else 200)
    args.modes = args.modes or 16
    args.epochs = args.epochs or 3
    a, u = _data(args.n, args.resolution)

    rows = [("bare loop (baseline)", bare_loop(a, u, args, device))]
    rows.append(("Trainer fp32, streamed through a DataLoader", trainer_loop(a, u, args, device, preload=False)))
    rows.append(("Trainer fp32, preloaded on the device", trainer_loop(a, u, args, device, preload=True)))
    rows.append(("Trainer bf16 autocast, preloaded", trainer_loop(a, u, args, device, precision="bf16", preload=True)))
    if gpu:
        rows.append(("Trainer fp32 + CUDA graph, preloaded", trainer_loop(a, u, args, device, cuda_graph=True,
                                                                           preload=True)))
        rows.append(("Trainer fp32 + torch.compile, preloaded", trainer_loop(a, u, args, device, compile=True,
                                                                           preload=True)))
    base = rows[0][1]
    name = torch.cuda.get_device_name(device) if gpu else _cpu_name(torch.get_num_threads())
    print(f"\nFNO width {args.width}, n_modes ({args.modes},{args.modes}), {args.resolution}², batch {args.batch_size}, "
          f"AdamW — {name}, torch {torch.__version__}\n")
    print("| loop | ms / step | ratio to bare loop |\n| --- | ---: | ---: |")
    for label, sec in rows:
        print(f"| {label} | {sec * 1e3:.2f} | {sec / base:.2f} |")
    result = {"device": name, "torch": torch.__version__, "config": vars(args),
              "rows": [{"loop": label, "seconds_per_step": sec, "ratio": sec / base} for label, sec in rows]}
    # on the CPU this table must not overwrite the CPU cases' results (trainer_cpu.json)
    default = f"trainer_{device.type}.json" if gpu else f"trainer_{device.type}_loops.json"
    out = Path(args.out) if args.out else RESULTS / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")
    return result


CASES = ("cpu", "fno_demo", "pinn_adam", "gpu")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--case", choices=CASES, default="gpu" if torch.cuda.is_available() else "cpu",
                        help="cpu: fno_demo and pinn_adam; gpu: the original table")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the CPU cases")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run, the first a warm-up (default 3 for fno_demo; 3 timed for gpu)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating Trainer/plain rounds (default 6 for fno_demo, 16 for pinn_adam)")
    parser.add_argument("--pinn-steps", type=int, default=15, help="Adam steps per run, the first a warm-up")
    parser.add_argument("--pinn-points", type=int, default=10000)
    parser.add_argument("--pinn-depth", type=int, default=8, help="hidden layers of 20")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="turn the Trainer's progress bar off (on by default, as for a user)")
    parser.add_argument("--malloc", choices=("keep", "system"), default=os.environ.get("SCIML_MALLOC", "keep"),
                        help="system: glibc's malloc settings for both loops (SCIML_MALLOC=system); keep: the "
                             "Trainer's (sciml.host_memory)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="gpu case")
    parser.add_argument("--resolution", type=int, default=None, help="default 64 on GPU, 32 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 on GPU, 20 on CPU")
    parser.add_argument("--n", type=int, default=None,
                        help="training samples (default 1000 for fno_demo; 1024 GPU, 200 CPU for gpu)")
    parser.add_argument("--n-test", type=int, default=100, help="test samples (fno_demo)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=None, help="default 12 for fno_demo, 16 for gpu")
    parser.add_argument("--layers", type=int, default=4, help="FNO layers (fno_demo)")
    parser.add_argument("--lr", type=float, default=3e-3, help="fno_demo")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/trainer_<case>.json)")
    args = parser.parse_args(argv)
    if args.malloc == "system":
        os.environ["SCIML_MALLOC"] = "system"  # read at the first Trainer.fit of the process
    if args.case == "gpu":
        return run_gpu(args)
    args.resolution, args.batch_size = args.resolution or 32, args.batch_size or 20
    args.n, args.modes, args.epochs = args.n or 1000, args.modes or 12, args.epochs or 3
    if args.epochs < 2 or args.pinn_steps < 2:
        parser.error("--epochs and --pinn-steps must be at least 2 (the first is a warm-up)")
    return run_cpu(args, ["fno_demo", "pinn_adam"] if args.case == "cpu" else [args.case])


if __name__ == "__main__":
    main()
