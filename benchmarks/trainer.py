"""What the Trainer costs over a bare training loop, and what bf16 and torch.compile buy.

    python -m benchmarks.trainer [--device cuda] [--resolution 64] [--batch-size 32]

The baseline is the loop a user would write by hand: the same FNO, the same relative-L2 loss
on normalised inputs, AdamW, tensors already on the device. The Trainer adds the batch path
(a DataLoader, or the dataset preloaded on the device), the NaN guard (one host sync per
step) and its bookkeeping. Every time is quoted as a ratio to the baseline measured in the same run;
absolute milliseconds are printed too but mean something only on a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sciml import Trainer
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
    history = Trainer(solver, lr=1e-3, epochs=args.epochs + 1, batch_size=args.batch_size, device=device,
                      progress=False, **options).fit(data)
    steps = -(-len(a) // args.batch_size)
    return min(history["seconds"][1:]) / steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None, help="default 64 on GPU, 32 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 on GPU, 20 on CPU")
    parser.add_argument("--n", type=int, default=None, help="samples per epoch (default 1024 GPU, 200 CPU)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--modes", type=int, default=16)
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/trainer_<device>.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.resolution = args.resolution or (64 if gpu else 32)
    args.batch_size = args.batch_size or (32 if gpu else 20)
    args.n = args.n or (1024 if gpu else 200)
    a, u = _data(args.n, args.resolution)

    rows = [("bare loop (baseline)", bare_loop(a, u, args, device))]
    rows.append(("Trainer fp32, streamed through a DataLoader", trainer_loop(a, u, args, device, preload=False)))
    rows.append(("Trainer fp32, preloaded on the device", trainer_loop(a, u, args, device, preload=True)))
    rows.append(("Trainer bf16 autocast, preloaded", trainer_loop(a, u, args, device, precision="bf16", preload=True)))
    if gpu:
        rows.append(("Trainer fp32 + torch.compile, preloaded", trainer_loop(a, u, args, device, compile=True,
                                                                           preload=True)))
    base = rows[0][1]
    name = torch.cuda.get_device_name(device) if gpu else f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)"
    print(f"\nFNO width {args.width}, n_modes ({args.modes},{args.modes}), {args.resolution}², batch {args.batch_size}, "
          f"AdamW — {name}, torch {torch.__version__}\n")
    print("| loop | ms / step | ratio to bare loop |\n| --- | ---: | ---: |")
    for label, sec in rows:
        print(f"| {label} | {sec * 1e3:.2f} | {sec / base:.2f} |")
    result = {"device": name, "torch": torch.__version__, "config": vars(args),
              "rows": [{"loop": label, "seconds_per_step": sec, "ratio": sec / base} for label, sec in rows]}
    out = Path(args.out) if args.out else RESULTS / f"trainer_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
