"""The ``sciml`` command line: ``generate``, ``train``, ``evaluate`` and ``demo``.

The one module that reaches across the sub-packages (DESIGN.md). Bad input ends with exit
status 2 and a one-line reason; ``--help`` on each command lists its options and defaults.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_solver", "load_run"]

FNO_FAMILY = ("fno", "tfno", "mg_tfno")  # models that take --modes, --width and --layers


class UsageError(ValueError):
    """Bad input caught by the command line itself."""


# ---------------------------------------------------------------------------- runs on disk
def build_solver(config: dict):
    """An OperatorSolver from a run configuration (what ``sciml train`` writes to config.json)."""
    from sciml.operators import build_operator
    from sciml.solvers import OperatorSolver

    try:
        operator = build_operator(config["model"], **config["model_options"])
    except TypeError as exc:  # an option the model does not take, or a value of the wrong type
        raise UsageError(f"model {config['model']!r} does not take its options: {exc}; check --model-option "
                         "(and --modes, --width, --layers)") from exc
    return OperatorSolver(operator, loss=config.get("loss", "l2"), normalize=config.get("normalize", True))


def load_run(run_dir: str | os.PathLike, which: str = "best", device: str = "cpu"):
    """The trained solver of a ``sciml train`` run folder (``which`` is ``"best"`` or ``"last"``)."""
    from sciml.checkpoint import load_checkpoint, load_weights

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UsageError(f"--run {str(run_dir)!r} is not a sciml run folder (no config.json)")
    if which not in ("best", "last"):
        raise UsageError(f"--checkpoint must be 'best' or 'last', got {which!r}")
    config = json.loads(config_path.read_text())
    solver = build_solver(config)
    path = run_dir / f"{which}.pt"
    load_weights(solver, load_checkpoint(path, map_location=device)["solver"], path,
                 f"{str(config_path)!r} describes another model; train the run again (sciml train --no-resume)")
    return solver.to(device).eval(), config


def _key_values(items, flag: str) -> dict:
    """``KEY=VALUE`` strings as a dict, each value parsed as JSON where it is JSON."""
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} must look like KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _model_options(args) -> dict:
    options = _key_values(args.model_option, "--model-option")
    flags = {"n_modes": args.modes, "hidden_channels": args.width, "n_layers": args.layers}
    if args.model.lower() in FNO_FAMILY:
        for key, value, default in zip(flags, flags.values(), ([12, 12], 32, 4)):
            options.setdefault(key, list(value or default) if key == "n_modes" else value or default)
    elif any(value is not None for value in flags.values()):
        raise UsageError(f"--modes, --width and --layers apply to {', '.join(FNO_FAMILY)}; for --model "
                         f"{args.model} pass its options as --model-option KEY=VALUE")
    return options


# ---------------------------------------------------------------------------- commands
def cmd_generate(args) -> int:
    from sciml.datasets import generate

    path = generate(args.pde, n=args.n, resolution=args.resolution, out=args.out, seed=args.seed,
                    n_test=args.n_test, solve_resolution=args.solve_resolution, chunk_size=args.chunk_size,
                    dtype=args.dtype, device=args.device, solver=args.solver, precond=args.precond,
                    order=args.order, batch=args.batch, rtol=args.rtol, maxiter=args.maxiter,
                    fallback=None if args.fallback == "none" else args.fallback,
                    compression=args.compression, overwrite=args.overwrite,
                    progress=not args.quiet, **_pde_options(args))
    print(f"wrote {path}")
    return 0


def _pde_options(args) -> dict:
    options = _key_values(args.pde_option, "--pde-option")
    if args.coefficient:
        options["coefficient"] = args.coefficient
    return options


def cmd_train(args) -> int:
    from sciml import Trainer
    from sciml.datasets import H5Dataset

    import torch

    train = H5Dataset(args.data, split="train", include_unconverged=args.include_unconverged)
    test = H5Dataset(args.data, split="test", include_unconverged=args.include_unconverged)
    config = {"model": args.model, "model_options": _model_options(args), "loss": args.loss, "normalize": True,
              "data": str(Path(args.data).resolve()), "data_fingerprint": _fingerprint(train),
              "training": {key: getattr(args, key) for key in RUN_SETTINGS},
              "versions": {"sciml": _version(), "torch": torch.__version__}}
    config["model_options"].setdefault("in_channels", train.in_channels)
    config["model_options"].setdefault("out_channels", train.out_channels)
    out = Path(args.out)
    previous = out / "config.json"
    if previous.is_file() and (out / "last.pt").is_file() and not args.no_resume:
        _check_resume(json.loads(previous.read_text()), config, out)
    torch.manual_seed(args.seed)  # before the model is built: the seed fixes the starting weights
    solver = build_solver(config)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(previous, config)
    trainer = Trainer(solver, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                      epochs=args.epochs, batch_size=args.batch_size, scheduler=args.scheduler,
                      grad_clip=args.grad_clip, precision=args.precision, compile=args.compile, device=args.device,
                      num_workers=args.num_workers, checkpoint_dir=out, resume=not args.no_resume, seed=args.seed,
                      progress=not args.quiet, log_every=args.log_every)
    history = trainer.fit(train, test)
    metrics = trainer.evaluate(test)
    if trainer.dist.is_main:
        history.plot(out / "loss.png")
        print(f"test {_metrics_line(metrics)}  ({len(history)} epochs, run folder {out})")
    return 0


# The settings that make a run; a resume must share them (the rest, like --device, does not
# change what is computed beyond rounding).
RUN_SETTINGS = ("optimizer", "lr", "weight_decay", "scheduler", "epochs", "batch_size", "grad_clip",
                "precision", "seed", "include_unconverged")
# Schedules that do not depend on the total number of epochs: only these may be extended.
_EXTENSIBLE = ("constant", "step")


def _fingerprint(data) -> str:
    """A digest of what defines a dataset file: its generator configuration and splits."""
    import hashlib

    attrs = data.attrs
    record = {key: attrs.get(key) for key in ("config", "seed", "n_train", "n_test")}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_resume(old: dict, new: dict, out: Path) -> None:
    """Refuse to resume a run whose settings differ from the stored ones, naming them."""
    def flat(config):
        values = {k: v for k, v in config.items() if k not in ("training", "versions")}
        values.update(config.get("training", {}))
        return values

    before, after = flat(old), flat(new)
    differing = [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    if differing == ["epochs"] and after["scheduler"] in _EXTENSIBLE:
        return  # the same run, continued (or stopped) at another epoch count
    if differing:
        changes = "; ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in differing)
        why = (" (--epochs sets the length of the cosine schedule, so it cannot be extended)"
               if "epochs" in differing and after["scheduler"] not in _EXTENSIBLE else "")
        raise UsageError(f"--out {str(out)!r} holds a run with other settings ({changes}){why}; pass "
                         f"--no-resume to start again there, or choose another --out")


def cmd_evaluate(args) -> int:
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    solver, _ = load_run(args.run, args.checkpoint, device=device)
    data = H5Dataset(args.data, split=args.split, include_unconverged=args.include_unconverged)
    metrics = Trainer(solver, device=device, batch_size=args.batch_size, progress=False).evaluate(data)
    print(f"{args.split} {_metrics_line(metrics)}  ({len(data)} samples)")
    if args.plot:
        _plot_sample(solver, data, args.plot, device)
        print(f"wrote {args.plot}")
    return 0


def cmd_demo(args) -> int:
    """Generate a small Darcy dataset, train an FNO on it, evaluate and plot."""
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset, generate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = args.device or "cpu"
    torch.manual_seed(args.seed)
    print(f"[1/4] generating {args.n} Darcy problems at {args.resolution}x{args.resolution} "
          f"(FNO-paper recipe)")
    data = generate("darcy", n=args.n, n_test=args.n_test, resolution=args.resolution,
                    out=out / f"darcy{args.resolution}.h5", seed=args.seed, progress=not args.quiet)
    train, test = H5Dataset(data, split="train"), H5Dataset(data, split="test")
    print(f"      solved by {train.attrs['config']['solver']} ({train.attrs['method']}), all to rtol "
          f"{train.attrs['config']['rtol']:g}" if not train.attrs["n_unconverged"] else
          f"      {train.attrs['n_unconverged']} samples did not converge ({train.attrs['method']})")
    config = {"model": "fno", "model_options": {"n_modes": [12, 12], "hidden_channels": args.width,
                                                "n_layers": 4, "in_channels": 1, "out_channels": 1},
              "loss": "l2", "normalize": True, "data": str(data.resolve())}
    run = out / "run"
    run.mkdir(exist_ok=True)
    _write_json(run / "config.json", config)
    solver = build_solver(config)
    n_params = sum(p.numel() for p in solver.parameters())
    print(f"[2/4] training an FNO ({n_params:,} parameters) for {args.epochs} epochs on {device}: "
          f"{len(train)} train / {len(test)} test samples")
    t0 = time.perf_counter()
    trainer = Trainer(solver, optimizer="adamw", lr=args.lr, weight_decay=1e-4, epochs=args.epochs, batch_size=20,
                      scheduler="cosine", device=device, checkpoint_dir=run, seed=args.seed,
                      progress=not args.quiet)
    history = trainer.fit(train, test)
    seconds = time.perf_counter() - t0
    metrics = trainer.evaluate(test)
    print(f"[3/4] held-out relative L2 error: {metrics['rel_l2']:.2%}  (relative H1 {metrics['rel_h1']:.2%}; "
          f"{seconds:.0f} s of training)")
    png = _plot_sample(solver, test, out / "demo.png", device, history)
    _write_json(out / "metrics.json", {**metrics, "train_seconds": seconds, "epochs": len(history),
                                       "parameters": n_params})
    print(f"[4/4] wrote {png} and {out / 'metrics.json'}")
    return 0


# ---------------------------------------------------------------------------- helpers
def _plot_sample(solver, data, path, device, history=None) -> Path:
    from sciml.plotting import plot_prediction

    item = data[0]
    pred = solver.sample(item["x"].to(device))
    return plot_prediction(item["x"], item["y"], pred, path, history=history)


def _metrics_line(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):  # "nan" and "inf" parse as floats
        raise argparse.ArgumentTypeError(f"expected a finite non-negative number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciml", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sciml {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = argparse.ArgumentDefaultsHelpFormatter

    g = sub.add_parser("generate", help="generate a PDE dataset into an HDF5 file", formatter_class=defaults)
    g.add_argument("pde", help="PDE family, e.g. darcy")
    g.add_argument("--out", required=True, help="HDF5 file to write (resumed if a run was interrupted)")
    g.add_argument("--n", type=_positive_int, default=1100, help="number of samples (train + test)")
    g.add_argument("--n-test", type=int, default=None, help="held-out samples at the end (default n // 10)")
    g.add_argument("--resolution", type=_positive_int, default=64, help="grid points per axis, boundary included")
    g.add_argument("--solve-resolution", type=_positive_int, default=None,
                   help="solve on this finer grid and subsample (resolution-1 must divide it minus 1)")
    g.add_argument("--coefficient", choices=("binary", "lognormal"), default=None,
                   help="Darcy coefficient: the FNO paper's two-valued field or exp(GRF)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--chunk-size", type=_positive_int, default=32, help="samples per resumable chunk")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="stored precision")
    g.add_argument("--pde-option", action="append", metavar="KEY=VALUE",
                   help="option of the PDE family (repeatable; VALUE parsed as JSON where it is JSON)")
    g.add_argument("--device", default="cpu", help="where parameters are sampled and systems assembled and solved")
    g.add_argument("--solver", default="auto",
                   help="auto (fastest measured for the family and device), skr (greedy order + GCRO-DR), "
                        "gcrodr, gmresdr, gmres, cg, amg or direct")
    g.add_argument("--precond", default="auto", help="auto, none, jacobi, chebyshev, mg, amg or ilu")
    g.add_argument("--order", default="auto", help="solve order within a chunk: auto, greedy (SKR) or identity")
    g.add_argument("--batch", type=_positive_int, default=None,
                   help="systems solved at once by the batched solvers (<= chunk size; default for multigrid CG: the chunk on a GPU, at most 32 on the CPU)")
    g.add_argument("--rtol", type=_positive_float, default=1e-8, help="relative tolerance of the true residual")
    g.add_argument("--maxiter", type=_positive_int, default=None, help="iteration cap of the iterative solvers")
    g.add_argument("--fallback", default="direct", help="solver retried when a solve misses rtol, or none")
    g.add_argument("--compression", default="auto",
                   help="auto (deflate-1 with shuffle where a chunk shrinks >= 2x, e.g. binary coefficients; raw "
                        "for smooth fields), none, lzf, gzip or gzip-0 ... gzip-9; each sample is compressed once")
    g.add_argument("--overwrite", action="store_true", help="replace an existing file of another configuration")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="train a neural operator on an HDF5 dataset", formatter_class=defaults)
    t.add_argument("--data", required=True, help="HDF5 file written by `sciml generate`")
    t.add_argument("--include-unconverged", action="store_true",
                   help="also train on samples whose solve missed the tolerance (left out by default)")
    t.add_argument("--model", default="fno", help="operator name (see sciml.operators.OPERATORS)")
    t.add_argument("--modes", type=_positive_int, nargs="+", default=None,
                   help="FNO/TFNO/MG-TFNO n_modes per axis (default 12 12)")
    t.add_argument("--width", type=_positive_int, default=None, help="FNO/TFNO/MG-TFNO hidden channels (default 32)")
    t.add_argument("--layers", type=_positive_int, default=None, help="FNO/TFNO/MG-TFNO Fourier layers (default 4)")
    t.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="any other constructor argument of the model (VALUE parsed as JSON); repeatable")
    t.add_argument("--loss", choices=("l2", "h1", "mse"), default="l2")
    t.add_argument("--optimizer", default="adamw")
    t.add_argument("--lr", type=_positive_float, default=1e-3)
    t.add_argument("--weight-decay", type=_nonnegative_float, default=1e-4)
    t.add_argument("--scheduler", choices=("constant", "cosine", "step"), default="cosine")
    t.add_argument("--epochs", type=_positive_int, default=100,
                   help="total epochs; a resumed run continues up to this number, and may raise it with the "
                        "constant or step scheduler (cosine's length is set by it)")
    t.add_argument("--batch-size", type=_positive_int, default=20)
    t.add_argument("--grad-clip", type=_positive_float, default=None)
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    t.add_argument("--compile", action="store_true", help="torch.compile the training objective")
    t.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    t.add_argument("--num-workers", type=_nonnegative_int, default=0)
    t.add_argument("--out", default="runs/train", help="run folder: config, checkpoints, history, loss plot")
    t.add_argument("--no-resume", action="store_true",
                   help="start afresh even if --out holds a checkpoint (a resume must share every setting)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=_nonnegative_int, default=10,
                   help="print an epoch summary every N epochs (0: never)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run on a dataset", formatter_class=defaults)
    e.add_argument("--run", required=True, help="run folder written by `sciml train`")
    e.add_argument("--data", required=True, help="HDF5 dataset")
    e.add_argument("--split", choices=("train", "test", "all"), default="test")
    e.add_argument("--include-unconverged", action="store_true",
                   help="also evaluate samples whose solve missed the tolerance (left out by default)")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best")
    e.add_argument("--batch-size", type=_positive_int, default=32)
    e.add_argument("--device", default=None)
    e.add_argument("--plot", default=None, help="write a PNG of the first sample's prediction here")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("demo", help="generate Darcy data, train an FNO, evaluate and plot (CPU, minutes)",
                       formatter_class=defaults)
    d.add_argument("--out", default="demo_output")
    d.add_argument("--n", type=_positive_int, default=1100, help="samples generated (train + test)")
    d.add_argument("--n-test", type=_positive_int, default=100)
    d.add_argument("--resolution", type=_positive_int, default=32)
    d.add_argument("--epochs", type=_positive_int, default=20)
    d.add_argument("--width", type=_positive_int, default=32)
    d.add_argument("--lr", type=_positive_float, default=3e-3)
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)
    return parser


def _version() -> str:
    from sciml import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:  # OSError: missing files, a full disk...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"sciml {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sciml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
