"""Orthogonalized and projected optimizers against AdamW, on FNO-Darcy and a small MLP regression.

    python -m benchmarks.optimizers [--quick] [--device cuda]

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

from sciml.operators import FNO
from sciml.optim import build_optimizer

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes on 2 CPU cores")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the .md and .json go")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    quick = args.quick
    lrs = {"adamw": [1e-3, 3e-3] if quick else [1e-3, 3e-3, 1e-2],
           "adamp": [1e-3, 3e-3] if quick else [1e-3, 3e-3, 1e-2],
           "sgdp": [3e-2, 1e-1] if quick else [3e-2, 1e-1, 3e-1]}
    ortho_lrs = [3e-3, 1e-2] if quick else [3e-3, 1e-2, 3e-2]

    darcy_train, darcy_val = darcy(64 if quick else 1000, 32 if quick else 100, device)
    source = "sciml.datasets darcy 32²"
    width = 16 if quick else 32
    tasks = {
        "fno_darcy": (lambda: FNO((12, 12), 1, 1, width, n_layers=4 if not quick else 2), darcy_train, darcy_val,
                      60 if quick else 800, 8 if quick else 20, 10 if quick else 50),
        "mlp": (lambda: nn.Sequential(nn.Linear(16, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(),
                                      nn.Linear(128, 4)), *mlp_data(512 if quick else 4096, 256, device),
                150 if quick else 1500, 32 if quick else 128, 25 if quick else 50),
    }
    rows = []
    for task, (make_model, train, val, steps, batch, every) in tasks.items():
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
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads")
    table = (f"Optimizers vs AdamW ({'quick' if args.quick else 'full'}; {device_name}; torch {torch.__version__}; "
             f"FNO data: {source}; target = AdamW's best final error)\n\n" + "\n".join(lines))
    print(table, flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "optimizers_quick" if args.quick else "optimizers"
    (out / f"{stem}.md").write_text(table + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"device": device_name, "fno_data": source, "quick": args.quick,
                                                  "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
