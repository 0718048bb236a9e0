"""FNO, TFNO, MG-TFNO, LSM and MgNO on the FNO paper's Darcy problem.

    python -m benchmarks.darcy --setting quick            # CPU, a few minutes
    python -m benchmarks.darcy --setting full             # GPU, the FNO paper's protocol
    python -m benchmarks.darcy --setting full --until-epoch 100   # one part of a split run
    python -m benchmarks.darcy --setting full --models lsm        # one model; the others' rows are kept
    python -m benchmarks.darcy --setting full --validate --out-dir DIR  # test error every epoch, results in DIR

Data (Li et al., ICLR 2021, Sec. 5.2): −∇·(a∇u) = 1 on (0,1)², u = 0 on the boundary, ``a``
thresholded from a GRF to two values, solved on 421² and subsampled; 1000 training and 100
test samples (``sciml.datasets.generate``). Full setting: 85² (or ``--resolution 141``),
500 epochs, Adam lr 1e-3 halved every 100 epochs, batch 20, relative-L2 loss, every model at
its paper's configuration. Quick setting: 29² subsampled from 57², 200 / 50 samples, 15 epochs
from lr 5e-3 halved every 5, small widths, one torch thread per model — a check that everything
trains, with figures that say nothing about the full setting.

Weight decay: the FNO and LSM reference scripts use ``Adam(weight_decay=1e-4)`` (an L2 term
added to the gradient) on ``LpLoss(size_average=False)``, the *sum* of the batch's relative
errors; our loss is their *mean*. Adam's update does not change when the loss is scaled, but
the decay term does not scale with it: 1e-4 on a mean loss is ``batch_size`` (20×) stronger
than the reference's. We use ``1e-4 / batch_size``, the reference's decay relative to the
loss. (``build_optimizer`` leaves biases and normalisation weights undecayed; the reference
decays every parameter.)

FNO and TFNO pad the domain (neuraloperator's ``domain_padding``, a fraction of the grid on
each side): the solution is not periodic, and the FNO reference pads 9 cells on the far side of
each axis of 85²; here 5/85 of the grid on each side, 5 cells at 85², 10 in all.

Every model trains through the same ``OperatorSolver`` and ``Trainer``, in its own process
(so that its peak memory is its own), with checkpoints in
``--work-dir/<setting>/<model>_<grid>_<tag>``, the tag a hash of the data, model and training
configurations (changed data never resumes a stale checkpoint): a rerun resumes where the last
one stopped, and ``--until-epoch`` splits a long run into parts (on a GPU, parts that fit in a
time limit; ``--models`` splits it too). Reported per model: held-out relative L2, parameters,
seconds per training epoch (the first epoch of each part excluded unless it is the only one;
its ratio to FNO's only where both were timed on the same one device) and peak memory of
training. Memory: ``torch.cuda.max_memory_allocated`` on a GPU (over its value before the
model was built), on the CPU the rise of the resident set size sampled every 5 ms during
``fit`` (over its value before), both *minus the bytes of the training split*, which the Trainer preloads on the device (so
the figure is the model's: parameters, optimizer state, activations). Every part of a split
run is recorded with its device, epochs, seconds and peak; a model trained on more than one
device is flagged ``mixed_devices``. On a GPU the TF32 settings are recorded too.

``--validate`` evaluates the test split after every epoch, so the checkpoint folder's
``history.json`` holds a validation history per epoch (``val_rel_l2``) even for a run cut short.

Results go to ``benchmarks/results/darcy_<device>_<setting>_<grid>.{json,md}`` (or ``--out-dir``);
rows are merged by model into an existing file, so a run of some models keeps the others' rows. The papers'
figures, and the verdict "met" or "short by", are given at 85² in the full setting only.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import multiprocessing
import platform
import resource
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("fno", "tfno", "mg_tfno", "lsm", "mgno")
PAPER = {"fno": 0.0108, "lsm": 0.0065}  # relative L2 at 85² reported by the FNO and the LSM papers
PAPER_GRID = 85
SEED = 0
REFERENCE_WEIGHT_DECAY = 1e-4  # Adam's, on a loss summed over the batch (module docstring)
FNO_PADDING = 5 / 85  # per side: 10 cells in all at 85², about the reference's 9 on one side

SETTINGS = {
    "full": {
        "data": dict(n=1100, n_test=100, resolution=85, solve_resolution=421),
        "train": dict(epochs=500, batch_size=20, lr=1e-3, step_size=100),
        "models": {
            # FNO paper: 12 modes per sign (neuralop counts both signs), width 32, 4 layers
            "fno": dict(n_modes=(24, 22), hidden_channels=32, domain_padding=FNO_PADDING),
            "tfno": dict(n_modes=(24, 22), hidden_channels=32, domain_padding=FNO_PADDING),
            "mg_tfno": dict(n_modes=(24, 22), hidden_channels=32, levels=1, padding_fraction=0.125),
            "lsm": dict(width=64, num_basis=12, num_token=4, patch_size=(6, 6)),  # LSM's PAPER_CONFIGS["darcy"]
            "mgno": dict(),  # the paper's Darcy configuration is the default
        },
    },
    "quick": {
        "data": dict(n=250, n_test=50, resolution=29, solve_resolution=57),
        "train": dict(epochs=15, batch_size=20, lr=5e-3, step_size=5),
        "models": {
            "fno": dict(n_modes=(12, 12), hidden_channels=16, domain_padding=FNO_PADDING),
            "tfno": dict(n_modes=(12, 12), hidden_channels=16, domain_padding=FNO_PADDING),
            "mg_tfno": dict(n_modes=(12, 12), hidden_channels=16, levels=1, padding_fraction=0.125),
            "lsm": dict(width=16, num_basis=12, num_token=4, patch_size=4, n_levels=2),
            "mgno": dict(hidden_channels=12, n_layers=3, pre_smoothing=(1, 1, 1, 2)),
        },
    },
}


def data_config(setting: str, resolution: int | None) -> dict:
    """The arguments of ``generate`` for a setting's data: sizes, grid and seed."""
    config = dict(SETTINGS[setting]["data"], seed=SEED)
    if resolution is not None:
        config["resolution"] = resolution
    return config


def recipe(setting: str) -> dict:
    """A setting's training recipe, with the weight decay for a batch-mean loss (module docstring)."""
    train = dict(SETTINGS[setting]["train"])
    train["weight_decay"] = REFERENCE_WEIGHT_DECAY / train["batch_size"]
    return train


def checkpoint_folder(work: str | Path, setting: str, name: str, data: dict) -> Path:
    """Where a model's checkpoints and ``history.json`` go; changed data, model or recipe get a
    fresh folder instead of resuming a stale one."""
    config = SETTINGS[setting]["models"][name]
    tag = hashlib.sha1(json.dumps([data, config, recipe(setting)], sort_keys=True).encode()).hexdigest()[:8]
    return Path(work) / setting / f"{name}_{data['resolution']}_{tag}"


def dataset(data: dict, work: Path) -> Path:
    """The Darcy file of a data configuration (generated once; an interrupted generation resumes)."""
    from sciml.datasets import generate

    work.mkdir(parents=True, exist_ok=True)
    return generate("darcy", out=str(work / f"darcy_{data['resolution']}.h5"), **data)


class _ResidentPeak:
    """Resident memory before a block and its peak during it, sampled every 5 ms (Linux).

    ``ru_maxrss`` cannot serve: a small model's training never rises above the high-water mark
    that imports and data loading left before it.
    """

    def __enter__(self):
        self.base = self.peak = _resident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _resident())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _resident())


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def device_name(device: str, threads: int) -> str:
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {threads} torch thread(s)"


def train_one(name: str, setting: str, data: dict, path: str, work: str, device: str, until: int | None,
              threads: int, validate: bool = False) -> dict:
    """Train (or resume) one model and evaluate it on the test split; runs in a child process."""
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset
    from sciml.operators import OPERATORS, build_operator
    from sciml.solvers import OperatorSolver

    importlib.import_module(OPERATORS[name][0])  # imports (neuraloperator's: ~100 MB) stay out of the peak
    torch.set_num_threads(threads)
    train_recipe, config = recipe(setting), SETTINGS[setting]["models"][name]
    checkpoints = checkpoint_folder(work, setting, name, data)
    train, test = H5Dataset(path, split="train"), H5Dataset(path, split="test")
    data_mib = sum(t.numel() * t.element_size() for t in train[0].values()) * len(train) / 2**20
    done = len(json.loads((checkpoints / "history.json").read_text())) if (checkpoints / "history.json").exists() else 0
    gpu = torch.device(device).type == "cuda"
    if gpu:
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    operator = build_operator(name, in_channels=train.in_channels, out_channels=train.out_channels, **config)
    solver = OperatorSolver(operator)
    epochs = min(train_recipe["epochs"], until) if until else train_recipe["epochs"]
    trainer = Trainer(solver, optimizer="adam", lr=train_recipe["lr"], weight_decay=train_recipe["weight_decay"],
                      epochs=epochs, batch_size=train_recipe["batch_size"], scheduler="step",
                      scheduler_options={"step_size": train_recipe["step_size"], "gamma": 0.5}, device=device,
                      preload=True, checkpoint_dir=checkpoints, progress=False)
    with _ResidentPeak() as resident:
        history = trainer.fit(train, test if validate else None)
    peak = torch.cuda.max_memory_allocated(device) if gpu else resident.peak
    base = base if gpu else resident.base
    metrics = trainer.evaluate(test)

    # this part of the run, appended to the earlier parts' record in the checkpoint folder
    part = {"device": device_name(device, threads), "epochs": [done, len(history)],
            "seconds": history["seconds"][done:],
            "peak_mib": (peak - base) / 2**20 - data_mib if len(history) > done else None}
    if gpu:
        part["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    parts_file = checkpoints / "parts.json"
    parts = json.loads(parts_file.read_text()) if parts_file.exists() else []
    parts.append(part)
    parts_file.write_text(json.dumps(parts, indent=1))
    trained = [p for p in parts if p["seconds"]]
    # the first epoch of each part warms up kernels and caches
    seconds = [t for p in trained for t in (p["seconds"][1:] or p["seconds"])]
    return {"model": name, "params": sum(p.numel() for p in operator.parameters()),
            "rel_l2": metrics["rel_l2"], "epochs": len(history), "of_epochs": train_recipe["epochs"],
            "s_per_epoch": sum(seconds) / len(seconds) if seconds else None,
            "peak_mib": max((p["peak_mib"] for p in trained), default=None),
            "devices": sorted({p["device"] for p in trained}),
            "mixed_devices": len({p["device"] for p in trained}) > 1, "parts": parts,
            "paper_rel_l2": PAPER.get(name) if setting == "full" and data["resolution"] == PAPER_GRID else None,
            "config": config}


def table(rows: list[dict]) -> str:
    fno = next((r for r in rows if r["model"] == "fno"), None)
    lines = ["| model | params | epochs | test rel. L2 | paper | s / epoch | ÷ FNO | peak MiB | device |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        paper = f"{r['paper_rel_l2']:.4f}" if r["paper_rel_l2"] else "—"
        # a time ratio only between rows timed on the same single device
        comparable = fno is not None and r["s_per_epoch"] and fno["s_per_epoch"] and not r["mixed_devices"] \
            and r["devices"] == fno["devices"]
        ratio = f"{r['s_per_epoch'] / fno['s_per_epoch']:.2f}" if comparable else "—"
        seconds = f"{r['s_per_epoch']:.2f}" if r["s_per_epoch"] else "—"
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "—"
        device = " + ".join(r["devices"]) + (" (mixed)" if r["mixed_devices"] else "")
        lines.append(f"| {r['model']} | {r['params']:,} | {r['epochs']}/{r['of_epochs']} | {r['rel_l2']:.4f} | "
                     f"{paper} | {seconds} | {ratio} | {peak} | {device} |")
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
    parser.add_argument("--validate", action="store_true",
                        help="evaluate the test split after every epoch (a validation history per epoch)")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the .json and .md go")
    args = parser.parse_args(argv)
    results = Path(args.out_dir)

    work = Path(args.work_dir)
    device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else torch.get_num_threads())
    data = data_config(args.setting, args.resolution)
    grid = data["resolution"]
    t0 = time.perf_counter()
    path = dataset(data, work)
    print(f"data {path} ready in {time.perf_counter() - t0:.0f} s", flush=True)

    stem = f"darcy_{device.type}_{args.setting}_{grid}"
    results.mkdir(parents=True, exist_ok=True)
    earlier = json.loads((results / f"{stem}.json").read_text()) if (results / f"{stem}.json").exists() else {}
    # merged by model: the other models' rows are kept, if they were trained on the same data and recipe
    same = json.dumps([earlier.get("data"), earlier.get("train")], sort_keys=True) == \
        json.dumps([data, recipe(args.setting)], sort_keys=True)
    rows = {r["model"]: r for r in earlier.get("rows", []) if same and
            json.dumps(r["config"]) == json.dumps(SETTINGS[args.setting]["models"][r["model"]])}
    if earlier and len(rows) < len(earlier["rows"]):
        print(f"dropped {len(earlier['rows']) - len(rows)} row(s) of {stem}.json trained on another configuration")
    for name in args.models:
        # a fresh process per model, so that its peak memory is its own; its errors are raised here
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows[name] = pool.submit(train_one, name, args.setting, data, str(path), str(work), args.device,
                                     args.until_epoch, threads, args.validate).result()
        print(table([rows[name]]).splitlines()[-1], flush=True)
    rows = [rows[m] for m in MODELS if m in rows]

    devices = sorted({d for r in rows for d in r["devices"]})
    memory = ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
              "rise of the resident set size (sampled every 5 ms)") + \
        " during training over its value before, minus the preloaded training split"
    out = {"setting": args.setting, "grid": grid, "devices": devices, "mixed_devices": len(devices) > 1,
           "torch": torch.__version__, "data": data, "train": recipe(args.setting), "peak_memory": memory,
           "rows": rows}
    if device.type == "cuda":  # as the training processes saw them (each part records its own)
        out["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    (results / f"{stem}.json").write_text(json.dumps(out, indent=1))
    paper_grid = args.setting == "full" and grid == PAPER_GRID
    header = (f"# Darcy benchmark, {args.setting} setting ({grid}², {', '.join(devices)}, "
              f"torch {torch.__version__})\n\n"
              f"Held-out relative L2 on {data['n_test']} test samples; seconds per training epoch (the first "
              f"epoch of each part excluded unless it is the only one) and its ratio to FNO's on the same device; peak memory: {memory}."
              + (" Paper figures are at 85² after 500 epochs." if paper_grid else
                 " The papers' figures are at 85² in the full setting and are not compared here.") + "\n\n")
    # against the papers' figures, at their grid only: met, or short by how much
    verdicts = "".join(f"- {r['model']}: {r['rel_l2']:.4f} against the paper's {r['paper_rel_l2']:.4f}: "
                       + ("met" if r["rel_l2"] <= r["paper_rel_l2"] else
                          f"short by {100 * (r['rel_l2'] / r['paper_rel_l2'] - 1):.0f}%")
                       + ("" if r["epochs"] == r["of_epochs"] else f" (after {r['epochs']} of {r['of_epochs']} epochs)")
                       + "\n" for r in rows if paper_grid and r["paper_rel_l2"])
    (results / f"{stem}.md").write_text(header + table(rows) + "\n" + (f"\n{verdicts}" if verdicts else ""))
    print("\n" + table(rows) + (f"\n\n{verdicts}" if verdicts else "") + f"\nwrote {results / stem}.{{json,md}}")
    return out


if __name__ == "__main__":
    main()
