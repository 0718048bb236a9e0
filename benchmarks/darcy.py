"""FNO, TFNO, MG-TFNO, LSM and MgNO on the FNO paper's Darcy problem.

    python -m benchmarks.darcy --setting quick            # CPU, a few minutes
    python -m benchmarks.darcy --setting full             # GPU, the FNO paper's protocol
    python -m benchmarks.darcy --setting full --until-epoch 100   # one part of a split run

Data (Li et al., ICLR 2021, Sec. 5.2): −∇·(a∇u) = 1 on (0,1)², u = 0 on the boundary, ``a``
thresholded from a GRF to two values, solved on 421² and subsampled; 1000 training and 100
test samples (``sciml.datasets.generate``). Full setting: 85² (or ``--resolution 141``),
500 epochs, Adam lr 1e-3 halved every 100 epochs (L2 weight decay 1e-4, as in the FNO code),
batch 20, relative-L2 loss, every model at
its paper's configuration. Quick setting: 29² subsampled from 57², 200 / 50 samples, 15 epochs
from lr 5e-3 halved every 5, small widths, one torch thread per model — a check that everything
trains, with figures that say nothing about the full setting.

Every model trains through the same ``OperatorSolver`` and ``Trainer``, in its own process
(so that its peak memory is its own), with checkpoints in ``--work-dir/<setting>/<model>``:
a rerun resumes where the last one stopped, and ``--until-epoch`` splits a long run into parts.
Reported per model: held-out relative L2, parameters, seconds per training epoch (and its
ratio to FNO's, measured in the same run), peak memory — ``torch.cuda.max_memory_allocated``
on a GPU; on the CPU the rise of the process's peak resident set size (``ru_maxrss``) during
training over its value before the model was built. Results go to
``benchmarks/results/darcy_<device>_<setting>.{json,md}``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import multiprocessing
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("fno", "tfno", "mg_tfno", "lsm", "mgno")
PAPER = {"fno": 0.0108, "lsm": 0.0065}  # relative L2 at 85² reported by the FNO and the LSM papers

SETTINGS = {
    "full": {
        "data": dict(n=1100, n_test=100, resolution=85, solve_resolution=421),
        "train": dict(epochs=500, batch_size=20, lr=1e-3, step_size=100, weight_decay=1e-4),
        "models": {
            # FNO paper: 12 modes per sign (neuralop counts both signs), width 32, 4 layers
            "fno": dict(n_modes=(24, 22), hidden_channels=32),
            "tfno": dict(n_modes=(24, 22), hidden_channels=32),
            "mg_tfno": dict(n_modes=(24, 22), hidden_channels=32, levels=1, padding_fraction=0.125),
            "lsm": dict(width=64, num_basis=12, num_token=4, patch_size=(6, 6)),  # LSM's PAPER_CONFIGS["darcy"]
            "mgno": dict(),  # the paper's Darcy configuration is the default
        },
    },
    "quick": {
        "data": dict(n=250, n_test=50, resolution=29, solve_resolution=57),
        "train": dict(epochs=15, batch_size=20, lr=5e-3, step_size=5, weight_decay=1e-4),
        "models": {
            "fno": dict(n_modes=(12, 12), hidden_channels=16),
            "tfno": dict(n_modes=(12, 12), hidden_channels=16),
            "mg_tfno": dict(n_modes=(12, 12), hidden_channels=16, levels=1, padding_fraction=0.125),
            "lsm": dict(width=16, num_basis=12, num_token=4, patch_size=4, n_levels=2),
            "mgno": dict(hidden_channels=12, n_layers=3, pre_smoothing=(1, 1, 1, 2)),
        },
    },
}


def dataset(setting: str, resolution: int | None, work: Path) -> tuple[Path, int]:
    """The Darcy file of a setting and its grid (generated once; an interrupted generation resumes)."""
    from sciml.datasets import generate

    config = dict(SETTINGS[setting]["data"])
    if resolution is not None:
        config["resolution"] = resolution
    work.mkdir(parents=True, exist_ok=True)
    path = generate("darcy", out=str(work / f"darcy_{config['resolution']}.h5"), seed=0, **config)
    return path, config["resolution"]


def train_one(name: str, setting: str, data: str, work: str, device: str, until: int | None, threads: int) -> dict:
    """Train (or resume) one model and evaluate it on the test split; runs in a child process."""
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset
    from sciml.operators import OPERATORS, build_operator
    from sciml.solvers import OperatorSolver

    importlib.import_module(OPERATORS[name][0])  # imports (neuraloperator's: ~100 MB) stay out of the peak
    torch.set_num_threads(threads)
    recipe, config = SETTINGS[setting]["train"], SETTINGS[setting]["models"][name]
    # a changed configuration gets a fresh checkpoint folder instead of failing to resume
    tag = hashlib.sha1(json.dumps([config, recipe], sort_keys=True).encode()).hexdigest()[:8]
    train, test = H5Dataset(data, split="train"), H5Dataset(data, split="test")
    gpu = torch.device(device).type == "cuda"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    operator = build_operator(name, in_channels=train.in_channels, out_channels=train.out_channels, **config)
    solver = OperatorSolver(operator)
    epochs = min(recipe["epochs"], until) if until else recipe["epochs"]
    trainer = Trainer(solver, optimizer="adam", lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                      epochs=epochs, batch_size=recipe["batch_size"], scheduler="step",
                      scheduler_options={"step_size": recipe["step_size"], "gamma": 0.5}, device=device,
                      checkpoint_dir=Path(work) / setting / f"{name}_{train.grid_shape[0]}_{tag}", progress=False)
    history = trainer.fit(train)
    metrics = trainer.evaluate(test)
    seconds = history["seconds"][1:] or history["seconds"]  # the first epoch warms up kernels and caches
    if gpu:
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {"model": name, "params": sum(p.numel() for p in operator.parameters()),
            "rel_l2": metrics["rel_l2"], "epochs": len(history), "of_epochs": recipe["epochs"],
            "s_per_epoch": sum(seconds) / len(seconds), "peak_mib": peak_mib,
            "paper_rel_l2": PAPER.get(name) if setting == "full" else None,
            "config": config}


def table(rows: list[dict]) -> str:
    base = next((r["s_per_epoch"] for r in rows if r["model"] == "fno"), None)
    lines = ["| model | params | epochs | test rel. L2 | paper | s / epoch | ÷ FNO | peak MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        paper = f"{r['paper_rel_l2']:.4f}" if r["paper_rel_l2"] else "—"
        ratio = f"{r['s_per_epoch'] / base:.2f}" if base else "—"
        lines.append(f"| {r['model']} | {r['params']:,} | {r['epochs']}/{r['of_epochs']} | {r['rel_l2']:.4f} | "
                     f"{paper} | {r['s_per_epoch']:.2f} | {ratio} | {r['peak_mib']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="quick")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None,
                        help="grid of the data (full: 85 or 141, both subsampled from 421²)")
    parser.add_argument("--until-epoch", type=int, default=None,
                        help="stop after this many epochs in total; rerun to continue from the checkpoints")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per model (default: 1 on the CPU, torch's default on a GPU)")
    parser.add_argument("--work-dir", default="runs/darcy_benchmark", help="data and checkpoints")
    args = parser.parse_args(argv)

    work = Path(args.work_dir)
    device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else torch.get_num_threads())
    t0 = time.perf_counter()
    data, grid = dataset(args.setting, args.resolution, work)
    print(f"data {data} ready in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for name in args.models:
        # a fresh process per model, so that its peak memory is its own; its errors are raised here
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(train_one, name, args.setting, str(data), str(work), args.device,
                                    args.until_epoch, threads).result())
        print(table(rows).splitlines()[-1], flush=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {threads} torch thread(s) per model"
    memory = "torch.cuda.max_memory_allocated" if device.type == "cuda" else \
        "rise of the process's peak RSS (ru_maxrss) during training"
    out = {"setting": args.setting, "device": name, "torch": torch.__version__, "grid": grid,
           "data": SETTINGS[args.setting]["data"], "train": SETTINGS[args.setting]["train"],
           "peak_memory": memory, "rows": rows}
    stem = f"darcy_{device.type}_{args.setting}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    header = (f"# Darcy benchmark, {args.setting} setting ({grid}², {name}, torch {torch.__version__})\n\n"
              f"Held-out relative L2 on {SETTINGS[args.setting]['data']['n_test']} test samples; seconds per "
              f"training epoch (first epoch excluded) and its ratio to FNO's in the same run; peak memory: "
              f"{memory}. Paper figures (full setting only) are at 85² after 500 epochs.\n\n")
    # against the papers' figures: met, or short by how much
    verdicts = "".join(f"- {r['model']}: {r['rel_l2']:.4f} against the paper's {r['paper_rel_l2']:.4f}: "
                       + ("met" if r["rel_l2"] <= r["paper_rel_l2"] else
                          f"short by {100 * (r['rel_l2'] / r['paper_rel_l2'] - 1):.0f}%") + "\n"
                       for r in rows if r["paper_rel_l2"])
    (RESULTS / f"{stem}.md").write_text(header + table(rows) + "\n" + (f"\n{verdicts}" if verdicts else ""))
    print("\n" + table(rows) + (f"\n\n{verdicts}" if verdicts else "") + f"\nwrote {RESULTS / stem}.{{json,md}}")
    return out


if __name__ == "__main__":
    main()
