"""Training runs: one config format for every solver family, a run folder that records it, loading back.

A run is described by a config (YAML or JSON), the same shape for every family::

    family: operator               # operator | pinn | neural_ode | diffusion | rectified_flow
    data: darcy64.h5               # a file of `sciml generate`, or module:function returning a Dataset
    model: fno                     # a name of MODELS, or module:callable; pinn: none (the solver's MLP)
    model_options: {n_modes: [16, 16], hidden_channels: 32}
    solver_options: {loss: l2}     # keyword arguments of the family's solver class
    trainer: {optimizer: adamw, lr: 0.001, epochs: 100, scheduler: cosine}   # Trainer's arguments
    out: runs/fno64

A PINN names its problem instead of data (``problem: burgers`` or ``module:function``, with
``problem_options`` and the ``collocation`` arguments of :meth:`PINNSolver.collocation`).
``sciml train --config run.yaml`` trains it (flags after the file override it) and
``--print-config`` prints it with every default filled in. The run folder's ``config.json``
records the resolved config: every constructor argument of model and solver (defaults
included), the inferred shapes, a fingerprint of the data, and the sciml and torch versions.
:func:`load_run` rebuilds the trained solver from it, and ``sciml predict`` writes its
predictions.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["FAMILIES", "Run", "build_run", "load_run", "read_config", "check_resume", "predict", "UsageError",
           "RUN_FILES"]


class UsageError(ValueError):
    """Bad input to a run: the message names the key and what was expected."""


@dataclass(frozen=True)
class Family:
    solver: str                # "module:Class" of the Solver
    network_arg: str | None    # the solver's argument taking the network; None: the solver builds its own
    model: str | None          # the default model
    data: str                  # "dataset" (a file or module:function) or "problem" (PINN)


FAMILIES: dict[str, Family] = {
    "operator": Family("sciml.solvers.operator:OperatorSolver", "operator", "fno", "dataset"),
    "pinn": Family("sciml.solvers.pinn:PINNSolver", None, None, "problem"),
    "neural_ode": Family("sciml.solvers.neural_ode:NeuralODESolver", "func", "vector_field", "dataset"),
    "diffusion": Family("sciml.solvers.diffusion:DiffusionSolver", "model", "time_mlp", "dataset"),
    "rectified_flow": Family("sciml.solvers.diffusion:RectifiedFlowSolver", "model", "time_mlp", "dataset"),
}


def _models() -> dict[str, str]:
    """Model names and their "module:Class" (read when needed: the operators import neuraloperator)."""
    from sciml.operators import OPERATORS

    return {**{name: f"{module}:{cls}" for name, (module, cls) in OPERATORS.items()},
            "time_mlp": "sciml.solvers.diffusion.nets:TimeMLP",
            "vector_field": "sciml.solvers.neural_ode:VectorField"}


FNO_FAMILY = ("fno", "tfno", "mg_tfno")  # models given n_modes and hidden_channels by default
# Files a run folder holds; --overwrite removes these and nothing else.
RUN_FILES = ("config.json", "last.pt", "best.pt", "history.json", "metrics.csv", "loss.png", "tensorboard")
# Keys of the trainer section that do not change what a run computes (beyond rounding): a resume may change them.
_NOT_SETTINGS = frozenset({"device", "num_workers", "preload", "log_every", "checkpoint_every", "compile", "cuda_graph",
                           "max_skipped_steps"})
# Keys of the families that train on data, and of the PINN family (its problem instead of data).
_DATA_KEYS = ("data", "data_options", "include_unconverged", "model", "model_options")
_PINN_KEYS = ("problem", "problem_options", "collocation")
# Schedules that do not depend on the total number of epochs: only these may be extended.
_EXTENSIBLE = ("constant", "step")


@dataclass
class Run:
    solver: Any
    train: Any
    val: Any
    config: dict  # resolved: every default filled in, shapes inferred


def import_object(spec: str, what: str) -> Any:
    """``module:attribute`` imported, or a :class:`UsageError` naming ``what``."""
    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"{what} {spec!r} must be a known name or look like module:function")
    try:
        obj = import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"{what} {spec!r} cannot be imported: {exc}") from exc
    return obj


def _call(fn: Callable, options: dict, what: str) -> Any:
    """``fn(**options)``; an unknown, missing or ill-typed option becomes one line naming ``what``."""
    if not callable(fn):
        raise UsageError(f"{what} is a {type(fn).__name__}, not a function or class")
    try:
        inspect.signature(fn).bind(**options)
    except TypeError as exc:
        raise UsageError(f"{what}: {exc}; its arguments are {_arguments(fn)}") from exc
    except ValueError:  # no signature to check (a builtin): the call says what is wrong
        pass
    try:
        return fn(**options)
    except (TypeError, ValueError) as exc:  # e.g. an unknown option passed on through **kwargs, a bad value
        raise UsageError(f"{what}: {exc}; its arguments are {_arguments(fn)}") from exc
    except Exception as exc:  # a user's function failing in its own way
        raise UsageError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def _arguments(fn: Callable) -> str:
    try:
        signature = inspect.signature(fn)
    except ValueError:
        return "unknown"
    params = [p for p in signature.parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]
    return ", ".join(p.name if p.default is p.empty else f"{p.name}={_plain(p.default)!r}" for p in params)


def _plain(value: Any) -> Any:
    """A default as JSON can hold it (tuples as lists, dtypes as names); None where it cannot."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return None


def _with_defaults(fn: Callable, options: dict, skip: tuple[str, ...] = ()) -> dict:
    """``options`` with every other keyword argument of ``fn`` at its default (as JSON holds it)."""
    full = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        if p.name in options:
            full[p.name] = options[p.name]
        elif p.default is not p.empty:
            full[p.name] = _plain(p.default)
    full.update({k: v for k, v in options.items() if k not in full})  # let the call name unknown ones
    return full


def _dtypes(options: dict) -> dict:
    """Dtype names of a config (``dtype: float64``) as torch dtypes."""
    out = dict(options)
    if isinstance(out.get("dtype"), str):
        dtype = getattr(torch, out["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise UsageError(f"dtype {out['dtype']!r} is not a torch dtype; e.g. float32 or float64")
        out["dtype"] = dtype
    return out


# ---------------------------------------------------------------------------- data
def _load_data(config: dict) -> tuple[Any, Any]:
    """(train, val) of the config's ``data``: an HDF5 file's splits, or what module:function returns."""
    from torch.utils.data import Dataset

    spec = config.get("data")
    if not spec:
        raise UsageError(f"family {config['family']!r} needs data: an HDF5 file of `sciml generate` or "
                         "module:function returning a Dataset (--data)")
    if not isinstance(spec, str):
        raise UsageError(f"data must be a path or module:function, got {spec!r}")
    path = Path(spec)
    if path.is_dir():
        raise UsageError(f"data {spec!r} is a folder; expected an HDF5 file of `sciml generate` or module:function")
    if path.suffix in (".h5", ".hdf5") or path.exists():
        if config.get("data_options"):
            raise UsageError("data_options apply to module:function data, not to an HDF5 file")
        if config["family"] != "operator":
            raise UsageError(f"data {spec!r}: an HDF5 file of `sciml generate` holds (input, solution) pairs for "
                             f"the operator family; family {config['family']!r} takes module:function data")
        from sciml.datasets import H5Dataset

        keep = bool(config.get("include_unconverged", False))
        return (H5Dataset(path, split="train", include_unconverged=keep),
                H5Dataset(path, split="test", include_unconverged=keep))
    made = _call(import_object(spec, "data"), dict(config.get("data_options") or {}), f"data {spec!r}")
    train, val = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    for name, part in (("train", train), ("validation", val)):
        if (part is not None or name == "train") and not isinstance(part, Dataset):
            raise UsageError(f"data {spec!r} must return a Dataset or a (train, val) pair of them; its {name} part "
                             f"is a {type(part).__name__}")
        if part is not None and len(part) == 0:
            raise UsageError(f"data {spec!r} returned an empty {name} dataset")
    return train, val


def _first_tensor(item: Any) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, dict):
        return _first_tensor(item.get("y", item.get("x", next(iter(item.values())))))
    return _first_tensor(item[0])


def fingerprint(config: dict, train: Any) -> str:
    """A digest of what defines the data: an HDF5 file's generator configuration and splits, or a
    function's name and options and the bytes of its first and last samples."""
    if train is None:  # a PINN: its problem and collocation are in the config itself
        return ""
    if hasattr(train, "attrs"):
        attrs = train.attrs
        record: Any = {key: attrs.get(key) for key in ("config", "seed", "n_train", "n_test")}
    else:
        ends = [_first_tensor(train[i]) for i in (0, len(train) - 1)]
        record = [config.get("data"), config.get("data_options"), len(train),
                  [hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for t in ends]]
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- building
def build_run(config: dict, data: bool = True) -> Run:
    """The solver of ``config`` (and its train and validation data, with ``data=True``).

    ``config`` holds the keys of the module docstring; missing model and solver arguments take
    their defaults, and shapes a model needs (channels, dimensions) are read from the data.
    The returned ``Run.config`` is the resolved config, as ``config.json`` records it. With
    ``data=False`` (loading a trained run) the shapes must already be in ``config``.
    """
    config = json.loads(json.dumps(config))  # a copy, and JSON-plain from here on
    family_name = config.get("family", "operator")
    if family_name not in FAMILIES:
        raise UsageError(f"family must be one of {', '.join(FAMILIES)}, got {family_name!r}")
    family = FAMILIES[family_name]
    config["family"] = family_name
    foreign = _PINN_KEYS if family.data == "dataset" else _DATA_KEYS
    for key in foreign:  # keys of other families, at their defaults from the command line
        if config.get(key):
            hint = ("; it builds its own MLP: give hidden and activation in solver_options"
                    if key.startswith("model") else "")
            raise UsageError(f"{key} does not apply to family {family_name!r}{hint}")
        config.pop(key, None)
    train = val = None
    if family.data == "problem":
        if config.get("data"):
            raise UsageError("family 'pinn' takes no data: it trains on collocation points of its problem "
                             "(--problem, --collocation)")
    elif data:
        train, val = _load_data(config)
        if hasattr(train, "attrs"):  # a file: recorded by its absolute path
            config["data"] = str(Path(config["data"]).resolve())

    solver_cls = import_object(family.solver, "solver")
    solver_options = dict(config.get("solver_options") or {})
    if family.network_arg is None:
        problem = _problem(config)
        config["solver_options"] = _with_defaults(solver_cls, solver_options, skip=("problem", "network"))
        solver = _call(solver_cls, {"problem": problem, **_dtypes(solver_options)}, "PINNSolver")
        if data:
            collocation = {"n_interior": 2000, **(config.get("collocation") or {})}
            config["collocation"] = _with_defaults(solver.collocation, collocation)
            train = _call(solver.collocation, collocation, "collocation")
        return Run(solver, train, None, config)

    model_name = config.get("model") or family.model
    models = _models()
    factory = import_object(models[model_name] if model_name in models else model_name, "model")
    model_options = dict(config.get("model_options") or {})
    if data:
        _infer_shapes(family_name, model_name, model_options, solver_options, train)
    config["model"] = model_name
    config["model_options"] = _with_defaults(factory, model_options)
    network = _call(factory, _dtypes(model_options), f"model {model_name!r}")
    config["solver_options"] = _with_defaults(solver_cls, solver_options, skip=(family.network_arg,))
    solver = _call(solver_cls, {family.network_arg: network, **solver_options}, solver_cls.__name__)
    return Run(solver, train, val, config)


def _problem(config: dict):
    from sciml.solvers.pinn_problems import PROBLEMS

    name = config.get("problem")
    if not name:
        raise UsageError(f"family 'pinn' needs a problem: one of {', '.join(PROBLEMS)} or module:function "
                         "returning a PDEProblem (--problem)")
    factory = PROBLEMS[name] if name in PROBLEMS else import_object(name, "problem")
    options = dict(config.get("problem_options") or {})
    config["problem_options"] = _with_defaults(factory, options)
    return _call(factory, options, f"problem {name!r}")


def _infer_shapes(family: str, model: str, model_options: dict, solver_options: dict, train: Any) -> None:
    """Fill in the sizes a model and solver need from one training sample (given ones are kept)."""
    if family == "operator" and hasattr(train, "in_channels"):
        model_options.setdefault("in_channels", train.in_channels)
        model_options.setdefault("out_channels", train.out_channels)
        if model in FNO_FAMILY:  # the FNO paper's 12 modes per axis and width 32
            model_options.setdefault("n_modes", [12] * len(train.grid_shape))
            model_options.setdefault("hidden_channels", 32)
        return
    sample = _first_tensor(train[0])
    if model == "time_mlp":
        if sample.dim() != 1:
            raise UsageError(f"model 'time_mlp' takes vectors, but the data's samples have shape "
                             f"{tuple(sample.shape)}; give a model for fields (module:callable)")
        model_options.setdefault("dim", sample.numel())
    elif model == "vector_field":
        model_options.setdefault("dim", sample.shape[-1])
    if family in ("diffusion", "rectified_flow"):
        shape = solver_options.setdefault("data_shape", list(sample.shape))
        if list(shape) != list(sample.shape):
            raise UsageError(f"solver_options.data_shape {shape} differs from the data's sample shape "
                             f"{list(sample.shape)}; leave it out to take the data's")


# ---------------------------------------------------------------------------- resume
def _settings(config: dict) -> dict:
    """The keys that make a run, flat (``trainer.lr`` as ``lr``); ``init_from`` counts at the start only."""
    values = {k: v for k, v in config.items() if k not in ("trainer", "versions", "out", "init_from")}
    values.update({k: v for k, v in (config.get("trainer") or {}).items() if k not in _NOT_SETTINGS})
    return values


def check_resume(old: dict, new: dict, out: Path) -> None:
    """Refuse to resume a run whose settings differ from the recorded ones, naming each."""
    before, after = _settings(old), _settings(new)
    differing = [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    trainer = new.get("trainer") or {}
    # a cosine schedule with an explicit T_max does not depend on the epoch count either
    extensible = trainer.get("scheduler") in _EXTENSIBLE or "T_max" in (trainer.get("scheduler_options") or {})
    if differing == ["epochs"] and extensible:
        return  # the same run, continued (or stopped) at another epoch count
    if differing:
        changes = "; ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in differing)
        why = (" (epochs sets the length of the cosine schedule, so it cannot be extended)"
               if "epochs" in differing and not extensible else "")
        raise UsageError(f"--out {str(out)!r} holds a run with other settings ({changes}){why}; pass --overwrite "
                         f"to start again there, or --init_from {str(out)!r} with another --out to continue from "
                         "its weights")


# ---------------------------------------------------------------------------- run folders
def read_config(run_dir: str | os.PathLike) -> dict:
    """The resolved config a ``sciml train`` run folder records (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r} is not a sciml run folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{str(path)!r} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("family", "operator") not in FAMILIES:
        raise UsageError(f"{str(path)!r} is not a run record of `sciml train` (no family); train the run again")
    config.setdefault("family", "operator")
    return config


def load_run(run_dir: str | os.PathLike, which: str = "best", device: str | torch.device = "cpu"):
    """The trained solver of a ``sciml train`` run folder, in eval mode on ``device``, ready to ``sample``.

    ``which`` is ``"best"`` (the weights of the best validation loss) or ``"last"`` (the latest
    checkpoint). The solver is rebuilt from ``config.json`` (plain JSON) and the weights are
    loaded with ``weights_only=True``: nothing in the folder can run code.
    """
    from sciml.checkpoint import load_checkpoint, load_weights
    from sciml.validation import check_device

    device = check_device("device", device)
    if which not in ("best", "last"):
        raise UsageError(f"which (--checkpoint) must be 'best' or 'last', got {which!r}")
    config = read_config(run_dir)
    run = build_run(config, data=False)
    path = Path(run_dir) / f"{which}.pt"
    load_weights(run.solver, load_checkpoint(path, map_location=device)["solver"], path,
                 f"{str(Path(run_dir) / 'config.json')!r} describes another model; train the run again "
                 "(sciml train --overwrite)")
    return run.solver.to(device).eval()


def clear(out: Path) -> None:
    """Remove a run folder's own files (``--overwrite``), nothing else a user may keep there."""
    for name in RUN_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- predict
def predict(run_dir: str | os.PathLike, out: str | os.PathLike, *, data: str | None = None, split: str = "test",
            n: int = 100, sampler_options: dict | None = None, resolution: int = 101, which: str = "best",
            device: str = "cpu", batch_size: int = 32, overwrite: bool = False) -> Path:
    """Write the predictions of a trained run to the HDF5 file ``out``; returns its path.

    - operator: the prediction for every input of ``data`` (an HDF5 file; default the run's own)
      over ``split``, as ``outputs``, beside ``inputs``, the true ``targets`` and the grid: the
      layout of ``sciml generate``, so :class:`~sciml.datasets.H5Dataset` reads it (split
      ``"test"`` holds every row);
    - diffusion, rectified_flow: ``n`` samples (``sampler_options`` go to ``solver.sample``);
    - pinn: u on the problem's reference points, or on a grid of ``resolution`` points per axis;
    - neural_ode: the trajectories from the initial states of ``data`` (default the run's own).

    An existing ``out`` is replaced only with ``overwrite=True``, and never when it is the data read.
    """
    import h5py

    import sciml
    from sciml.datasets.hdf5 import FORMAT_VERSION

    config = read_config(run_dir)
    family = config["family"]
    out = Path(out)
    source = data or config.get("data")
    if out.suffix not in (".h5", ".hdf5"):
        raise UsageError(f"--out {str(out)!r} must be an .h5 file")
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a folder; name an .h5 file")
    if isinstance(source, str) and out.exists() and Path(source).exists() and out.resolve() == Path(source).resolve():
        raise UsageError(f"--out {str(out)!r} is the data the predictions are made from; write elsewhere")
    if out.exists() and not overwrite:
        raise UsageError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist")
    solver = load_run(run_dir, which, device)
    fields: dict[str, Any] = {}
    attrs: dict[str, Any] = {"run": str(Path(run_dir).resolve()), "checkpoint": which, "family": family}
    with torch.no_grad():
        if family == "operator":
            from sciml.datasets import H5Dataset

            dataset = H5Dataset(source, split=split, include_unconverged=True)
            xs, ys, preds = [], [], []
            for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
                xs.append(batch["x"])
                ys.append(batch["y"])
                preds.append(solver.sample(batch["x"].to(device)).cpu())
            fields = {"inputs": torch.cat(xs), "outputs": torch.cat(preds), "targets": torch.cat(ys)}
            attrs.update(data=str(Path(source).resolve()), split=split)
            with h5py.File(dataset.path, "r") as f:
                grid = {name: f["grid"][name][()] for name in f["grid"]} if "grid" in f else {}
        elif family in ("diffusion", "rectified_flow"):
            options = dict(sampler_options or {})
            fields = {"outputs": solver.sample(n, **options).cpu()}
            attrs.update(n=n, sampler_options=json.dumps(options))
            grid = {}
        elif family == "pinn":
            points = solver.ref_points if getattr(solver, "ref_points", None) is not None else \
                _grid_points(solver.problem.domain, resolution)
            fields = {"points": points.cpu(), "outputs": solver.sample(points.to(device)).cpu()}
            grid = {}
        else:  # neural_ode
            train, val = _load_data({**config, "data": source})
            trajectories = val if val is not None else train
            batch = torch.utils.data.default_collate([trajectories[i] for i in range(len(trajectories))])
            t, y = batch["t"][0], batch["y"]
            fields = {"t": t, "outputs": solver.sample(y[:, 0].to(device), t.to(device)).cpu(), "targets": y}
            grid = {}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for name, value in fields.items():
                f.create_dataset(name, data=value.numpy(), chunks=(1, *value.shape[1:]) if value.dim() > 1 else None)
            for name, value in grid.items():
                f.create_dataset(f"grid/{name}", data=value)
            total = fields["outputs"].shape[0]
            f.attrs.update({"format_version": FORMAT_VERSION, "sciml_version": sciml.__version__, "n_train": 0,
                            "n_test": total, "config": json.dumps({"predictions_of": config}), **attrs})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _grid_points(domain, resolution: int) -> torch.Tensor:
    """The points of a uniform grid of ``resolution`` points per axis over a PINN domain's bounding box
    (space, then time) that lie in the domain (a disk or an L-shape leaves out the rest)."""
    points = domain.grid(*(resolution,) * domain.dim)
    return points[domain.inside(points)]
