"""What checkpointing costs the step loop: LSM and FNO at the Darcy full setting's size.

    python -m benchmarks.checkpoint [--models lsm fno] [--device cpu] [--threads 2]

The models are those of ``benchmarks/darcy.py``'s full setting (85², batch 20, LSM at its
paper's configuration, 19.2M parameters), trained by the Trainer on synthetic 85² fields for a
few steps per epoch. The Trainer records per epoch the seconds of the step loop and the seconds
the loop waited for the checkpoint (``checkpoint_seconds``: the copy of the state to host
memory, plus any wait for the previous save); the write and fsync run on a thread. The epoch of
the full setting (1000 samples, 50 steps) is the measured time per step times 50, plus nothing
for validation: the ratio is an upper bound. The baseline, measured in the same run, is the
synchronous ``save_atomic`` of the same state (what every epoch paid before).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from sciml import Trainer
from sciml.checkpoint import save_atomic
from sciml.operators import build_operator
from sciml.solvers import OperatorSolver

RESULTS = Path(__file__).parent / "results"
STEPS_PER_EPOCH = 50  # the full setting: 1000 training samples, batch 20
CONFIGS = {
    "lsm": dict(width=64, num_basis=12, num_token=4, patch_size=(6, 6)),
    "fno": dict(n_modes=(24, 22), hidden_channels=32, domain_padding=5 / 85),
}


def measure(name: str, device: str, steps: int, epochs: int, resolution: int = 85) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 20, 1, resolution, resolution, generator=g)
    data = torch.utils.data.TensorDataset(x, torch.tanh(x))
    solver = OperatorSolver(build_operator(name, in_channels=1, out_channels=1, **CONFIGS[name]))
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(solver, optimizer="adam", lr=1e-3, epochs=epochs, batch_size=20, device=device,
                          checkpoint_dir=folder, progress=False, log_every=0)
        history = trainer.fit(data)
        state = {"solver": solver.state_dict(), "optimizer": trainer.optimizer.state_dict()}
        bytes_ = sum(t.numel() * t.element_size() for t in _tensors(state))
        t0 = time.perf_counter()
        save_atomic(state, Path(folder) / "sync.pt")
        sync = time.perf_counter() - t0
        write = trainer._saver.last_seconds
    rows = history.rows[1:]  # the first epoch pays for warm-up
    step = sum(r["step_seconds"] for r in rows) / (len(rows) * steps)
    blocked = max(r["checkpoint_seconds"] for r in rows)
    epoch = step * STEPS_PER_EPOCH
    return {"model": name, "parameters": sum(p.numel() for p in solver.parameters()), "state_mb": bytes_ / 1e6,
            "step_s": step, "full_epoch_s": epoch, "blocked_s": blocked, "background_write_s": write,
            "sync_save_s": sync, "blocked_ratio": blocked / epoch, "sync_ratio": sync / epoch}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["lsm", "fno"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="steps per measured epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is not counted)")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args()
    if args.steps < 1 or args.epochs < 2:
        parser.error("--steps must be >= 1 and --epochs >= 2 (the first epoch is warm-up)")
    torch.set_num_threads(args.threads)
    rows = [measure(name, args.device, args.steps, args.epochs) for name in args.models]
    lines = ["| model | parameters | state MB | step s | full-setting epoch s | loop waited s | % of epoch | "
             "background write s | synchronous save s (before) | % of epoch |", "|" + " --- |" * 10]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['state_mb']:.0f} | {r['step_s']:.3f} | "
                     f"{r['full_epoch_s']:.1f} | {r['blocked_s']:.3f} | {100 * r['blocked_ratio']:.2g}% | "
                     f"{r['background_write_s']:.3f} | {r['sync_save_s']:.3f} | {100 * r['sync_ratio']:.2g}% |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "threads": args.threads, "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "steps_per_full_epoch": STEPS_PER_EPOCH}
    (out / f"checkpoint_{args.device}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"checkpoint_{args.device}.md").write_text(f"# Checkpoint cost ({args.device}, {args.threads} threads)\n\n"
                                                      f"{table}\n")


if __name__ == "__main__":
    main()
