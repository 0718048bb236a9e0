"""The ``sciml`` command line: ``generate``, ``train``, ``evaluate``, ``predict`` and ``demo``.

The one module that reaches across the sub-packages, with :mod:`sciml.runs` (DESIGN.md). Bad
input ends with exit status 2 and a one-line reason; ``--help`` on each command lists its
options and defaults. ``sciml train`` reads a run config (:mod:`sciml.runs`): its flags are the
config's keys (``--trainer.lr``), derived from the constructors' signatures, so its defaults are
the Python API's.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from sciml.runs import FAMILIES, UsageError, build_run, load_run, read_config, write_json

__all__ = ["main", "load_run"]

# keys of `sciml train` that steer the command rather than describe the run
_CONTROL = ("config", "print_config", "overwrite", "quiet")


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


def train_parser():
    """``sciml train``'s parser: the run config's keys as flags, the Trainer's derived from its signature."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from sciml.optim import OPTIMIZERS
    from sciml.solvers.pinn_problems import PROBLEMS
    from sciml.train import SCHEDULERS, Trainer

    families = ", ".join(f"{name} ({f.model or 'its own MLP'})" for name, f in FAMILIES.items())
    p = ArgumentParser(prog="sciml train", exit_on_error=False, print_config=None,
                       description="Train a solver of any family from a run config and flags (flags after --config "
                                   "override it). The run folder (--out) records the resolved config; running into "
                                   "it again resumes only with the same settings.")
    p.add_argument("--config", action=ActionConfigFile, help="a YAML or JSON run config, e.g. examples/configs/*.yaml")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (every default filled in, shapes read from the data) and exit")
    p.add_argument("--family", choices=tuple(FAMILIES), default="operator",
                   help=f"what is trained; the default model of each: {families}")
    p.add_argument("--data", type=Optional[str], default=None,
                   help="an HDF5 file of `sciml generate` (operator: its train and test splits), or module:function "
                        "returning a Dataset or (train, val), e.g. sciml.datasets.toy:noisy_ring")
    p.add_argument("--data_options", type=dict[str, Any], default={},
                   help="keyword arguments of a module:function data source (--data_options.n 1000)")
    p.add_argument("--include_unconverged", type=bool, default=False,
                   help="also train on samples whose solve missed the tolerance (left out by default)")
    p.add_argument("--model", type=Optional[str], default=None,
                   help="fno, tfno, mg_tfno, lsm, mgno, time_mlp, vector_field, or module:callable; default: the "
                        "family's")
    p.add_argument("--model_options", type=dict[str, Any], default={},
                   help="the model's constructor arguments (--model_options.hidden_channels 64); unset ones take "
                        "the constructor's defaults, channels and dimensions come from the data")
    p.add_argument("--problem", type=Optional[str], default=None,
                   help=f"pinn: {', '.join(PROBLEMS)}, or module:function returning a PDEProblem")
    p.add_argument("--problem_options", type=dict[str, Any], default={}, help="pinn: the problem's arguments")
    p.add_argument("--collocation", type=dict[str, Any], default={},
                   help="pinn: arguments of PINNSolver.collocation (default n_interior=2000, sampler=sobol)")
    p.add_argument("--solver_options", type=dict[str, Any], default={},
                   help="the family's solver arguments (operator: loss=l2, normalize=true; pinn: hidden, "
                        "activation, hard, dtype...; diffusion: schedule, prediction); --print-config lists all")
    # named optimizer, scheduler and device only (a config holds names); the rest as Trainer's signature has them
    p.add_argument("--trainer.optimizer", default="adamw", help=f"one of: {', '.join(OPTIMIZERS)}")
    p.add_argument("--trainer.scheduler", choices=SCHEDULERS, default="constant",
                   help="cosine: to zero over the epochs (or trainer.scheduler_options.T_max); step: by gamma every "
                        "step_size epochs")
    p.add_argument("--trainer.device", type=Optional[str], default=None, help="default: cuda if available, else cpu")
    p.add_argument("--trainer.optimizer_options", type=Optional[dict[str, Any]], default=None,
                   help="extra arguments of the optimizer (--trainer.optimizer_options.momentum 0.9)")
    p.add_argument("--trainer.scheduler_options", type=Optional[dict[str, Any]], default=None,
                   help="cosine: T_max, eta_min; step: step_size, gamma (--trainer.scheduler_options.T_max 100)")
    p.add_class_arguments(Trainer, "trainer", skip={"solver", "checkpoint_dir", "resume", "progress", "callbacks",
                                                    "optimizer", "scheduler", "device", "optimizer_options",
                                                    "scheduler_options"})
    p.add_argument("--init_from", type=Optional[str], default=None,
                   help="start from the best weights of this run folder (fine-tuning) instead of fresh ones")
    p.add_argument("--out", default="runs/train",
                   help="run folder: config.json, checkpoints, history.json, metrics.csv, loss.png")
    p.add_argument("--overwrite", action="store_true", help="start again in --out, removing its run files")
    p.add_argument("--quiet", action="store_true", help="no progress bar (epoch lines still print)")
    return p


def _train_config(argv: Sequence[str]) -> tuple[dict, dict]:
    """(the run config, the control flags) of ``sciml train``'s arguments."""
    from jsonargparse import ArgumentError

    parser = train_parser()
    try:
        namespace = parser.parse_args(_read_config_files(argv))
    except ArgumentError as exc:
        raise UsageError(" ".join(str(exc).split())) from exc
    values = namespace.as_dict()
    control = {key: values.pop(key, None) for key in _CONTROL}
    if not isinstance(values.get("trainer"), dict):
        raise UsageError(f"trainer must be a mapping of Trainer arguments, got {values.get('trainer')!r}")
    for key in ("data_options", "model_options", "problem_options", "collocation", "solver_options"):
        if not isinstance(values.get(key) or {}, dict):
            raise UsageError(f"{key} must be a mapping of arguments, got {values[key]!r}")
    out = values.get("out")
    if not isinstance(out, str) or not out.strip():
        raise UsageError(f"--out must name a run folder, got {out!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out!r} is a file; a run folder is a directory")
    return values, control


# keys a run folder's config.json records beside the config itself
_RECORD_ONLY = ("data_fingerprint", "versions")


def _read_config_files(argv: Sequence[str]) -> list[str]:
    """``argv`` with each ``--config FILE`` read here: a mapping is required, and a run's config.json
    is accepted as it is (its record-only keys dropped)."""
    import yaml

    argv, out = list(argv), []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name == "--config" and (eq or i + 1 < len(argv)):
            if not eq:
                i += 1
                value = argv[i]
            path = Path(value)
            if not path.is_file():
                raise UsageError(f"--config {value!r} is not a file")
            try:
                content = yaml.safe_load(path.read_text())
            except yaml.YAMLError as exc:
                raise UsageError(f"--config {value!r} is not YAML or JSON: {' '.join(str(exc).split())}") from exc
            if not isinstance(content, dict) or not content:
                raise UsageError(f"--config {value!r} must hold a mapping of run settings (family, data, model, "
                                 f"trainer...), got {type(content).__name__}")
            content = {k: v for k, v in content.items() if k not in _RECORD_ONLY}
            out += ["--config", json.dumps(content)]
        else:
            out.append(arg)
        i += 1
    return out


def cmd_train(argv: Sequence[str]) -> int:
    import torch

    from sciml import Trainer
    from sciml.checkpoint import load_checkpoint, load_weights
    from sciml.runs import check_resume, clear, fingerprint

    config, control = _train_config(argv)
    out = Path(config["out"])
    if config.get("init_from"):
        config["init_from"] = str(Path(config["init_from"]).resolve())
    seed = config["trainer"]["seed"]
    if isinstance(seed, int) and not isinstance(seed, bool):
        torch.manual_seed(seed)  # before anything random is built: the seed fixes the starting weights
    run = build_run(config)
    # every check before anything on disk changes: the Trainer's arguments, then one loss evaluation
    trainer = Trainer(run.solver, checkpoint_dir=out, progress=not control["quiet"], **config["trainer"])
    _dry_run(run)
    record = {**run.config, "data_fingerprint": fingerprint(run.config, run.train),
              "versions": {"sciml": _version(), "torch": torch.__version__}}
    if control["print_config"]:
        import yaml

        print(yaml.safe_dump(run.config, sort_keys=False), end="")
        return 0
    resuming = not control["overwrite"] and (out / "last.pt").is_file() and (out / "config.json").is_file()
    if resuming:
        check_resume(read_config(out), record, out)
        done = load_checkpoint(out / "last.pt")["epoch"]
        if config["trainer"]["epochs"] < done:
            raise UsageError(f"--out {str(out)!r} holds a run of {done} epochs already; --trainer.epochs "
                             f"{config['trainer']['epochs']} would undo them (pass --overwrite to start again)")
    elif config.get("init_from"):  # a fresh run from another run's weights (a resume has its own)
        source = Path(config["init_from"]) / "best.pt"
        load_weights(run.solver, load_checkpoint(source)["solver"], source,
                     "--init_from must name a run of the same family, model and options")
    if control["overwrite"]:
        clear(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", record)
    history = trainer.fit(run.train, run.val)
    if not trainer.dist.is_main:
        return 0
    history.plot(out / "loss.png")
    summary = f"({len(history)} epochs, run folder {out})"
    if run.val is not None:
        print(f"validation {_metrics_line(trainer.evaluate(run.val))}  {summary}")
    elif isinstance(getattr(run.solver, "coefficients", None), torch.nn.ParameterDict):  # a PINN
        print(f"{_pinn_line(run.solver, history)}  {summary}")
    else:
        print(f"train_loss={history.last['train_loss']:.4g}  {summary}")
    return 0


def _pinn_line(solver, history) -> str:
    """A trained PINN's result: its relative L2 error where the problem has a reference or an exact
    solution (else the training loss), and its trained coefficients (an inverse problem's answer)."""
    if getattr(solver, "ref_points", None) is not None:
        line = f"rel_l2={solver.relative_error():.4g}"
    else:
        line = f"train_loss={history.last['train_loss']:.4g}"
    coefficients = [f"{name}={float(value.detach()):.6g}" for name, value in solver.coefficients.items()]
    return "  ".join([line, *coefficients])


def _dry_run(run) -> None:
    """One loss evaluation of a copy of the solver on three samples, so that a model that does not fit
    the data fails here, in one line, before the run folder is touched."""
    import copy

    from torch.utils.data import Subset, default_collate

    few = Subset(run.train, range(min(3, len(run.train))))
    try:
        probe = copy.deepcopy(run.solver)
        probe.prepare(few)
        probe.loss(default_collate([few[i] for i in range(len(few))]))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the model does not fit the data ({first}); check model, model_options and "
                         "solver_options against the data (sciml train ... --print-config shows them)") from exc


def cmd_evaluate(args) -> int:
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset

    config = read_config(args.run)
    if config.get("family", "operator") != "operator":
        raise UsageError(f"--run {args.run!r} is a {config['family']} run; `evaluate` measures operator runs on a "
                         "dataset (sciml predict writes any run's predictions)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    solver = load_run(args.run, args.checkpoint, device=device)
    data = H5Dataset(args.data or config["data"], split=args.split, include_unconverged=args.include_unconverged)
    metrics = Trainer(solver, device=device, batch_size=args.batch_size, progress=False).evaluate(data)
    print(f"{args.split} {_metrics_line(metrics)}  ({len(data)} samples)")
    if args.plot:
        _plot_sample(solver, data, args.plot, device)
        print(f"wrote {args.plot}")
    return 0


def cmd_predict(args) -> int:
    import torch

    from sciml.runs import predict

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = predict(args.run, args.out, data=args.data, split=args.split, n=args.n,
                   sampler_options=_key_values(args.sampler_option, "--sampler-option"), resolution=args.resolution,
                   which=args.checkpoint, device=device, batch_size=args.batch_size, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_demo(args) -> int:
    """Generate a small Darcy dataset, train an FNO on it, evaluate and plot."""
    import torch

    from sciml import Trainer
    from sciml.datasets import H5Dataset, generate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = args.device or "cpu"
    print(f"[1/4] generating {args.n} Darcy problems at {args.resolution}x{args.resolution} "
          f"(FNO-paper recipe)")
    data = generate("darcy", n=args.n, n_test=args.n_test, resolution=args.resolution,
                    out=out / f"darcy{args.resolution}.h5", seed=args.seed, progress=not args.quiet)
    train = H5Dataset(data, split="train")
    print(f"      solved by {train.attrs['config']['solver']} ({train.attrs['method']}), all to rtol "
          f"{train.attrs['config']['rtol']:g}" if not train.attrs["n_unconverged"] else
          f"      {train.attrs['n_unconverged']} samples did not converge ({train.attrs['method']})")
    trainer_options = {"optimizer": "adamw", "lr": args.lr, "weight_decay": 1e-4, "epochs": args.epochs,
                       "batch_size": 20, "scheduler": "cosine", "device": device, "seed": args.seed}
    config = {"family": "operator", "data": str(data.resolve()), "model": "fno",
              "model_options": {"n_modes": [12, 12], "hidden_channels": args.width, "n_layers": 4},
              "trainer": trainer_options}
    torch.manual_seed(args.seed)  # before the model is built
    run = build_run(config)
    record = {**run.config, "versions": {"sciml": _version(), "torch": torch.__version__}}
    run_dir = out / "run"
    run_dir.mkdir(exist_ok=True)
    write_json(run_dir / "config.json", record)
    n_params = sum(p.numel() for p in run.solver.parameters())
    print(f"[2/4] training an FNO ({n_params:,} parameters) for {args.epochs} epochs on {device}: "
          f"{len(run.train)} train / {len(run.val)} test samples")
    t0 = time.perf_counter()
    trainer = Trainer(run.solver, checkpoint_dir=run_dir, progress=not args.quiet, **trainer_options)
    history = trainer.fit(run.train, run.val)
    seconds = time.perf_counter() - t0
    metrics = trainer.evaluate(run.val)
    print(f"[3/4] held-out relative L2 error: {metrics['rel_l2']:.2%}  (relative H1 {metrics['rel_h1']:.2%}; "
          f"{seconds:.0f} s of training)")
    png = _plot_sample(run.solver, run.val, out / "demo.png", device, history)
    write_json(out / "metrics.json", {**metrics, "train_seconds": seconds, "epochs": len(history),
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, as every other error of the command line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sciml", description=__doc__.splitlines()[0])
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
                   help="auto (fastest measured for the family and device), skr (greedy order + GCRO-DR; with "
                        "--batch > 1 blocks solved at once, the recycled space carried block to block), gcrodr, "
                        "gmresdr, gmres, cg, amg, direct (SuperLU, CPU) or gpu_direct (cuDSS; CUDA builds only)")
    g.add_argument("--precond", default="auto",
                   help="auto, none, jacobi, chebyshev, mg (2-D), gsmg (Gauss-Seidel multigrid, 2-D/3-D), slmg "
                        "(shifted Laplacian, Helmholtz), gsmg32/slmg32 (float32 hierarchy), amg, ilu or lu")
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
    # parsed by train_parser (jsonargparse); listed here for `sciml --help`
    sub.add_parser("train", help="train any solver family from a run config and flags (see sciml train --help)",
                   add_help=False)

    e = sub.add_parser("evaluate", help="evaluate a trained operator run on a dataset", formatter_class=defaults)
    e.add_argument("--run", required=True, help="run folder written by `sciml train`")
    e.add_argument("--data", default=None, help="HDF5 dataset (default: the run's own)")
    e.add_argument("--split", choices=("train", "test", "all"), default="test")
    e.add_argument("--include-unconverged", action="store_true",
                   help="also evaluate samples whose solve missed the tolerance (left out by default)")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best")
    e.add_argument("--batch-size", type=_positive_int, default=32)
    e.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    e.add_argument("--plot", default=None, help="write a PNG of the first sample's prediction here")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="write a trained run's predictions to an HDF5 file", formatter_class=defaults)
    r.add_argument("--run", required=True, help="run folder written by `sciml train`")
    r.add_argument("--out", required=True, help="HDF5 file to write (operator runs: the layout of `generate`)")
    r.add_argument("--data", default=None, help="operator, neural_ode: the inputs (default: the run's own data)")
    r.add_argument("--split", choices=("train", "test", "all"), default="test", help="operator: which samples")
    r.add_argument("--n", type=_positive_int, default=100, help="diffusion, rectified_flow: samples to draw")
    r.add_argument("--sampler-option", action="append", metavar="KEY=VALUE",
                   help="diffusion, rectified_flow: an argument of solver.sample, e.g. sampler=ddim or steps=50")
    r.add_argument("--resolution", type=_positive_int, default=101,
                   help="pinn without reference points: grid points per axis")
    r.add_argument("--checkpoint", choices=("best", "last"), default="best")
    r.add_argument("--batch-size", type=_positive_int, default=32)
    r.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    r.set_defaults(func=cmd_predict)

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
    d.add_argument("--quiet", action="store_true", help="no progress bars (step and epoch lines still print)")
    d.set_defaults(func=cmd_demo)
    return parser


def _version() -> str:
    from sciml import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command == "train":  # its own parser: configs, and flags derived from signatures
            if "-h" in argv[1:] or "--help" in argv[1:]:
                train_parser().print_help()
                return 0
            return cmd_train(argv[1:])
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or a bad argument already reported in one line
            return int(exc.code or 0)
        return args.func(args)
    except (ValueError, TypeError, KeyError, OSError, FloatingPointError, ImportError, RuntimeError) as exc:
        # OSError: missing files, a full disk...; ImportError: a module:function that does not import;
        # RuntimeError: torch's, e.g. shapes that do not fit
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        message = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        print(f"sciml {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sciml {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
