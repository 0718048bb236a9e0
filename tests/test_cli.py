import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sciml
from sciml.cli import main
from sciml.runs import FAMILIES, read_config

CONFIGS = Path(__file__).parent.parent / "examples" / "configs"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def small_fno(data, out, *extra):
    """`sciml train` of a small FNO on ``data`` into ``out``."""
    return ["train", "--data", str(data), "--out", str(out), "--model_options.n_modes", "[4, 4]",
            "--model_options.hidden_channels", "6", "--trainer.batch_size", "8", "--quiet", *extra]


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.h5"
    assert main(["generate", "darcy", "--out", str(path), "--n", "24", "--n-test", "4", "--resolution", "17",
                 "--quiet"]) == 0
    return path


def test_every_command_has_help_with_its_defaults():
    for cmd in ([], ["generate"], ["train"], ["evaluate"], ["predict"], ["demo"]):
        proc = subprocess.run([sys.executable, "-m", "sciml.cli", *cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: sciml" in proc.stdout
    text = subprocess.run([sys.executable, "-m", "sciml.cli", "train", "--help"], capture_output=True,
                          text=True).stdout
    # every argument of the Trainer, with the default of its signature: the command line's are the Python API's
    import inspect

    from sciml.train import Trainer

    for name, param in inspect.signature(Trainer).parameters.items():
        if name in ("solver", "checkpoint_dir", "resume", "progress", "callbacks"):  # the run folder and --quiet
            continue
        flag = f"--trainer.{name}"
        help_text = text.split(flag + " ")[-1].split("\n  --")[0]
        default = {None: "null", True: "True", False: "False"}.get(param.default, str(param.default)) \
            if not isinstance(param.default, (int, float)) or isinstance(param.default, bool) else str(param.default)
        assert flag in text and f"default: {default}" in " ".join(help_text.split()), (flag, help_text)


@pytest.mark.parametrize("argv, message", [
    (["generate", "navier", "--out", "x.h5"], "unknown PDE 'navier'"),
    (["generate", "darcy", "--out", "x.h5", "--n", "10", "--n-test", "10"], "n_test"),
    (["generate", "darcy", "--out", "x.h5", "--resolution", "2"], "resolution"),
    (["generate", "darcy", "--out", "x.h5", "--solver", "magic"], "unknown linear solver 'magic'"),
    (["generate", "darcy", "--out", "x.h5", "--pde-option", "k0"], "--pde-option must look like KEY=VALUE"),
    (["generate", "helmholtz", "--out", "x.h5", "--pde-option", "k0=-1"], "k0"),
    (["train", "--data", "missing.h5"], "missing.h5"),
    (["train", "--trainer.lr", "nan", "--data", "missing.h5"], "trainer.lr"),
    (["train", "--family", "gan"], "invalid choice: 'gan'"),
    (["train", "--trainer.scheduler", "linear"], "invalid choice: 'linear'"),
    (["train", "--epochs", "3"], "unrecognized arguments: --epochs"),
    (["train", "--family", "pinn"], "needs a problem"),
    (["train", "--family", "pinn", "--problem", "navier"], "'navier' must be a known name or look like module:function"),
    (["train", "--family", "diffusion", "--data", "nosuch.module:fn"], "cannot be imported"),
    (["train", "--family", "diffusion", "--data", "sciml.datasets.toy:noisy_ring", "--data_options.m", "3"],
     "unexpected keyword argument 'm'"),
    (["train", "--config", "missing.yaml"], "missing.yaml"),
    (["evaluate", "--run", ".", "--data", "missing.h5"], "not a sciml run folder"),
    (["predict", "--run", ".", "--out", "p.h5"], "not a sciml run folder"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith(f"sciml {argv[0]}: error:"), err
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_model_option_and_a_missing_gpu_are_one_line(tmp_path, capsys, darcy):
    code, _, err = run(capsys, *small_fno(darcy, tmp_path / "a", "--model_options.widht", "16"))
    assert code == 2 and err.count("\n") == 1 and "widht" in err and "hidden_channels" in err, err
    if not torch.cuda.is_available():
        code, _, err = run(capsys, *small_fno(darcy, tmp_path / "b", "--trainer.device", "cuda"))
        assert code == 2 and err.count("\n") == 1 and "needs CUDA" in err and "device" in err, err
    assert not (tmp_path / "a" / "last.pt").exists()


def test_generate_train_evaluate_predict_end_to_end(tmp_path, capsys):
    data = tmp_path / "d.h5"
    assert run(capsys, "generate", "darcy", "--out", str(data), "--n", "48", "--n-test", "8",
               "--resolution", "17", "--quiet")[0] == 0
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", str(data), "--out", str(out_dir), "--model_options.n_modes",
                       "[6, 6]", "--model_options.hidden_channels", "8", "--trainer.epochs", "3",
                       "--trainer.batch_size", "8", "--quiet")
    assert code == 0 and "validation " in out and "rel_l2=" in out
    # a short quiet run prints every epoch, with the seconds of its phases
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert "(steps " in out and "validation " in out and "checkpoint " in out
    history = json.loads((out_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["val_rel_l2"] < history[0]["val_rel_l2"]
    assert (out_dir / "loss.png").stat().st_size > 0
    rows = (out_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss") and "val_rel_l2" in rows[0] and len(rows) == 4
    # every setting recorded: model and solver with all constructor arguments, data with its fingerprint
    config = read_config(out_dir)
    assert config["model_options"] == {"n_modes": [6, 6], "in_channels": 1, "out_channels": 1,
                                       "hidden_channels": 8, "n_layers": 4}
    assert config["solver_options"]["loss"] == "l2" and config["solver_options"]["normalize"] is True
    assert config["data"] == str(data.resolve()) and len(config["data_fingerprint"]) == 16
    assert config["trainer"]["epochs"] == 3 and config["versions"]["torch"] == torch.__version__

    png = tmp_path / "pred.png"
    code, out, _ = run(capsys, "evaluate", "--run", str(out_dir), "--data", str(data), "--checkpoint", "last",
                       "--plot", str(png))
    assert code == 0 and png.stat().st_size > 0
    reported = float(out.split("rel_l2=")[1].split()[0])
    assert reported == pytest.approx(history[-1]["val_rel_l2"], rel=1e-3)  # same weights, same test split

    # predictions in the layout of `generate`, read back by H5Dataset, agreeing with the metric
    from sciml.datasets import H5Dataset
    from sciml.losses import relative_l2

    pred = tmp_path / "pred.h5"
    code, out, _ = run(capsys, "predict", "--run", str(out_dir), "--out", str(pred), "--checkpoint", "last")
    assert code == 0 and str(pred) in out
    predicted, truth = H5Dataset(pred, split="test"), H5Dataset(data, split="test")
    assert len(predicted) == len(truth) == 8
    assert torch.equal(predicted[3]["x"], truth[3]["x"])
    y = torch.stack([predicted[i]["y"] for i in range(8)])
    target = torch.stack([truth[i]["y"] for i in range(8)])
    assert float(relative_l2(y, target)) == pytest.approx(history[-1]["val_rel_l2"], rel=1e-3)

    # load_run: public, the trained solver ready to sample; checkpoints load with plain torch.load
    solver = sciml.load_run(out_dir, "last")
    assert torch.allclose(solver.sample(truth[3]["x"]), predicted[3]["y"], atol=1e-6)
    assert set(torch.load(out_dir / "best.pt")) >= {"solver", "epoch", "best"}
    # run files are readable by the group, as any file the user writes (umask 022 here)
    for name in ("last.pt", "best.pt", "config.json", "metrics.csv", "history.json"):
        assert (out_dir / name).stat().st_mode & stat.S_IRGRP, name

    # a truncated data file is named, not a traceback
    broken = tmp_path / "broken.h5"
    broken.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    code, _, err = run(capsys, "evaluate", "--run", str(out_dir), "--data", str(broken))
    assert code == 2 and "broken.h5" in err


@pytest.mark.parametrize("model, options", [("mgno", ["--model_options.hidden_channels", "8"]),
                                            ("lsm", ["--model_options.width", "8", "--model_options.patch_size", "2",
                                                     "--model_options.n_levels", "2"])])
def test_train_and_evaluate_other_operators_by_name(tmp_path, capsys, darcy, model, options):
    out_dir = tmp_path / model
    code, out, _ = run(capsys, "train", "--data", str(darcy), "--out", str(out_dir), "--model", model, *options,
                       "--trainer.epochs", "2", "--trainer.batch_size", "8", "--quiet")
    assert code == 0 and read_config(out_dir)["model"] == model
    png = tmp_path / f"{model}.png"
    code, out, _ = run(capsys, "evaluate", "--run", str(out_dir), "--plot", str(png))  # data: the run's own
    assert code == 0 and png.stat().st_size > 0 and "rel_l2=" in out


def _weights(run_dir):
    from sciml.checkpoint import load_checkpoint
    return load_checkpoint(run_dir / "last.pt")["solver"]


def test_the_seed_fixes_the_starting_weights_and_the_run(tmp_path, capsys, darcy):
    args = [*small_fno(darcy, "x"), "--trainer.epochs", "2", "--trainer.seed", "5"]
    outputs = []
    for name in ("a", "b"):
        code, out, _ = run(capsys, *args, "--out", str(tmp_path / name))
        assert code == 0
        outputs.append([line for line in out.splitlines() if line.startswith("validation ")][0].split("(")[0])
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(a[key].equal(b[key]) for key in a) and outputs[0] == outputs[1]
    a_rows = [r["val_loss"] for r in json.loads((tmp_path / "a" / "history.json").read_text())]
    b_rows = [r["val_loss"] for r in json.loads((tmp_path / "b" / "history.json").read_text())]
    assert a_rows == b_rows
    code, _, _ = run(capsys, *args[:-1], "7", "--out", str(tmp_path / "c"))
    c = _weights(tmp_path / "c")
    assert code == 0 and not all(a[key].equal(c[key]) for key in a)


def test_a_rerun_with_other_settings_is_refused_by_name(tmp_path, capsys, darcy):
    other = tmp_path / "e.h5"
    assert run(capsys, "generate", "darcy", "--out", str(other), "--n", "24", "--n-test", "4",
               "--resolution", "17", "--seed", "1", "--quiet")[0] == 0
    out_dir = tmp_path / "run"
    base = [*small_fno(darcy, out_dir), "--trainer.scheduler", "cosine"]
    assert run(capsys, *base, "--trainer.epochs", "2")[0] == 0
    before = _weights(out_dir)
    for extra, words in ((["--trainer.epochs", "2", "--trainer.lr", "0.01"], "lr: 0.001 -> 0.01"),
                         (["--trainer.epochs", "2", "--data", str(other)], "data_fingerprint"),
                         (["--trainer.epochs", "2", "--trainer.optimizer", "sgd"], "optimizer: 'adamw' -> 'sgd'"),
                         (["--trainer.epochs", "2", "--model_options.hidden_channels", "8"], "model_options"),
                         (["--trainer.epochs", "3"], "cannot be extended")):
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and err.count("\n") == 1 and words in err and "--overwrite" in err, err
        assert "--init_from" in err
    after = _weights(out_dir)
    assert all(before[key].equal(after[key]) for key in before)  # the run is left as it was
    # settings that do not change the result may differ on a resume
    assert run(capsys, *base, "--trainer.epochs", "2", "--trainer.log_every", "0")[0] == 0
    # A schedule that does not depend on the epoch count may be extended; --overwrite restarts.
    const = tmp_path / "const"
    args = [*small_fno(darcy, const), "--trainer.scheduler", "constant"]
    assert run(capsys, *args, "--trainer.epochs", "1")[0] == 0
    assert run(capsys, *args, "--trainer.epochs", "2")[0] == 0
    assert [r["epoch"] for r in json.loads((const / "history.json").read_text())] == [1, 2]
    assert len((const / "metrics.csv").read_text().splitlines()) == 3
    assert run(capsys, *base, "--trainer.epochs", "1", "--trainer.lr", "0.01", "--overwrite")[0] == 0
    assert read_config(out_dir)["trainer"]["lr"] == 0.01
    assert [r["epoch"] for r in json.loads((out_dir / "history.json").read_text())] == [1]
    # --init_from continues from a run's weights in a new folder, with new settings
    tuned = tmp_path / "tuned"
    assert run(capsys, *small_fno(darcy, tuned), "--trainer.epochs", "1", "--trainer.lr", "1e-9",
               "--init_from", str(const))[0] == 0
    start = {k: v for k, v in _weights(tuned).items()}
    source = sciml.load_run(const).state_dict()
    assert all(torch.allclose(start[k], source[k], atol=1e-6) for k in source if "spectral" in k or "weight" in k)


def test_a_failed_run_does_not_block_the_corrected_command(tmp_path, capsys, darcy):
    base = [*small_fno(darcy, tmp_path / "run"), "--trainer.epochs", "1"]
    code, _, err = run(capsys, *base, "--trainer.optimizer", "nosuch")
    assert code == 2 and "nosuch" in err
    assert run(capsys, *base)[0] == 0


def test_a_config_file_gives_the_same_run_as_flags_and_flags_override_it(tmp_path, capsys, darcy):
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": str(darcy), "model_options": {"n_modes": [4, 4], "hidden_channels": 6},
                                      "trainer": {"epochs": 3, "batch_size": 8, "lr": 0.01}}))
    assert run(capsys, "train", "--config", str(config), "--out", str(tmp_path / "a"), "--quiet")[0] == 0
    assert run(capsys, *small_fno(darcy, tmp_path / "b"), "--trainer.epochs", "3", "--trainer.lr", "0.01")[0] == 0
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(a[key].equal(b[key]) for key in a)
    assert run(capsys, "train", "--config", str(config), "--trainer.epochs", "1", "--out", str(tmp_path / "c"),
               "--quiet")[0] == 0
    assert read_config(tmp_path / "c")["trainer"]["epochs"] == 1
    # --print-config: the resolved config, which trains the same run again
    code, out, _ = run(capsys, "train", "--config", str(config), "--print-config")
    printed = yaml.safe_load(out)
    assert code == 0 and printed["model_options"]["n_layers"] == 4 and printed["trainer"]["lr"] == 0.01
    assert printed["solver_options"] == {"loss": "l2", "normalize": True, "in_channels": None, "out_channels": None}
    (tmp_path / "printed.yaml").write_text(out)
    assert run(capsys, "train", "--config", str(tmp_path / "printed.yaml"), "--out", str(tmp_path / "d"),
               "--quiet")[0] == 0
    d = _weights(tmp_path / "d")
    assert all(a[key].equal(d[key]) for key in a)


def _shrunk(name: str, darcy) -> list[str]:
    """Overrides that make an example config a test-sized run."""
    return {"fno_darcy": ["--data", str(darcy), "--trainer.epochs", "2"],
            "pinn_burgers": ["--collocation.n_interior", "300", "--solver_options.hidden", "[12, 12]",
                             "--trainer.epochs", "3"],
            "neural_ode_spiral": ["--data_options.n", "32", "--trainer.epochs", "2"],
            "diffusion_ring": ["--data_options.n", "256", "--trainer.epochs", "2"],
            "rectified_flow_ring": ["--data_options.n", "256", "--trainer.epochs", "2"]}[name]


@pytest.mark.parametrize("name", ["fno_darcy", "pinn_burgers", "neural_ode_spiral", "diffusion_ring",
                                  "rectified_flow_ring"])
def test_every_example_config_trains_loads_back_and_predicts(tmp_path, capsys, darcy, name):
    import h5py

    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--config", str(CONFIGS / f"{name}.yaml"), *_shrunk(name, darcy),
                            "--out", str(out), "--quiet")
    assert code == 0, err
    config = read_config(out)
    assert config["family"] == {"fno_darcy": "operator", "pinn_burgers": "pinn", "neural_ode_spiral": "neural_ode",
                                "diffusion_ring": "diffusion", "rectified_flow_ring": "rectified_flow"}[name]
    history = json.loads((out / "history.json").read_text())
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in history)
    solver = sciml.load_run(out, "last")
    assert FAMILIES[config["family"]].solver.endswith(":" + type(solver).__name__) and not solver.training
    pred = tmp_path / "pred.h5"
    assert run(capsys, "predict", "--run", str(out), "--out", str(pred), "--n", "16")[0] == 0
    with h5py.File(pred) as f:
        outputs = torch.from_numpy(f["outputs"][()])
        assert torch.isfinite(outputs).all() and f.attrs["family"] == config["family"]
        if config["family"] in ("diffusion", "rectified_flow"):
            assert outputs.shape == (16, 2)
        if config["family"] == "neural_ode":
            assert outputs.shape == f["targets"].shape


def test_bad_settings_are_refused_before_the_run_folder_changes(tmp_path, capsys, darcy):
    keep = tmp_path / "keep"
    assert run(capsys, *small_fno(darcy, keep), "--trainer.epochs", "1")[0] == 0
    before = {p.name: p.read_bytes() for p in keep.iterdir() if p.is_file()}
    for extra, words in ((["--overwrite", "--trainer.epochs", "0"], "epochs must be a positive integer"),
                         (["--overwrite", "--init_from", str(tmp_path / "nope")], "does not exist"),
                         (["--overwrite", "--model_options.in_channels", "3"], "does not fit the data"),
                         (["--overwrite", "--trainer.optimizer", "adamx"], "unknown optimizer 'adamx'"),
                         (["--trainer.epochs", "1", "--data_options.n", "3"], "data_options apply to module:function"),
                         (["--overwrite", "--trainer.device", "gpu"], "device must be")):
        code, _, err = run(capsys, *small_fno(darcy, keep), *extra)
        assert code == 2 and err.count("\n") == 1 and words in err, (extra, err)
        assert {p.name: p.read_bytes() for p in keep.iterdir() if p.is_file()} == before, extra
    # the printed config is checked as the run would be
    code, _, err = run(capsys, *small_fno(darcy, keep), "--trainer.epochs", "-3", "--print-config")
    assert code == 2 and "epochs" in err
    # fewer epochs than the run has done would undo them
    code, _, err = run(capsys, *small_fno(darcy, tmp_path / "three"), "--trainer.epochs", "3")
    code, _, err = run(capsys, *small_fno(darcy, tmp_path / "three"), "--trainer.epochs", "2")
    assert code == 2 and "holds a run of 3 epochs already" in err
    for out in ("", str(darcy)):
        code, _, err = run(capsys, *small_fno(darcy, out))
        assert code == 2 and "--out" in err, err


def test_option_values_keep_their_types_and_defaults_merge(tmp_path, capsys, darcy):
    # numbers in nested options stay numbers; a cosine schedule with an explicit length may be extended
    run_dir = tmp_path / "cos"
    args = [*small_fno(darcy, run_dir), "--trainer.scheduler", "cosine", "--trainer.scheduler_options.T_max", "10",
            "--trainer.optimizer_options.eps", "1e-6"]
    assert run(capsys, *args, "--trainer.epochs", "1")[0] == 0
    assert run(capsys, *args, "--trainer.epochs", "2")[0] == 0
    assert read_config(run_dir)["trainer"]["scheduler_options"] == {"T_max": 10}
    # an operator run without model options takes the FNO paper's 12 modes per axis and width 32
    code, out, _ = run(capsys, "train", "--data", str(darcy), "--print-config")
    import yaml

    options = yaml.safe_load(out)["model_options"]
    assert code == 0 and options["n_modes"] == [12, 12] and options["hidden_channels"] == 32
    # one collocation option keeps the others' defaults; a misspelt one is named
    code, out, _ = run(capsys, "train", "--family", "pinn", "--problem", "burgers", "--collocation.sampler",
                       "uniform", "--print-config")
    assert code == 0 and yaml.safe_load(out)["collocation"]["n_interior"] == 2000
    code, _, err = run(capsys, "train", "--family", "pinn", "--problem", "burgers", "--collocation.n_interiour", "10")
    assert code == 2 and "n_interiour" in err and "n_interior" in err


def test_predict_never_replaces_a_file_unasked_nor_its_own_data(tmp_path, capsys, darcy):
    import shutil

    data = tmp_path / "d.h5"
    shutil.copy(darcy, data)
    run_dir = tmp_path / "run"
    assert run(capsys, *small_fno(data, run_dir), "--trainer.epochs", "1")[0] == 0
    before = data.read_bytes()
    for argv, words in ((["--out", str(data)], "the data the predictions are made from"),
                        (["--out", str(data), "--overwrite"], "the data the predictions are made from"),
                        (["--out", str(tmp_path / "nodir" / "p.h5")], "does not exist"),
                        (["--out", str(tmp_path / "p.txt")], "must be an .h5 file"),
                        (["--out", str(tmp_path / "p.h5"), "--device", "gpu"], "device must be")):
        code, _, err = run(capsys, "predict", "--run", str(run_dir), *argv)
        assert code == 2 and err.count("\n") == 1 and words in err, (argv, err)
    assert data.read_bytes() == before
    pred = tmp_path / "p.h5"
    assert run(capsys, "predict", "--run", str(run_dir), "--out", str(pred))[0] == 0
    code, _, err = run(capsys, "predict", "--run", str(run_dir), "--out", str(pred))
    assert code == 2 and "--overwrite" in err
    assert run(capsys, "predict", "--run", str(run_dir), "--out", str(pred), "--overwrite")[0] == 0
    # a run record that is not one is named, not a traceback
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("[1, 2]")
    code, _, err = run(capsys, "predict", "--run", str(tmp_path / "bad"), "--out", str(tmp_path / "q.h5"))
    assert code == 2 and "not a run record" in err


def test_a_run_record_trains_again_as_a_config_and_a_fine_tuned_run_resumes_without_its_source(tmp_path, capsys,
                                                                                               darcy):
    src, tuned = tmp_path / "src", tmp_path / "tuned"
    assert run(capsys, *small_fno(darcy, src), "--trainer.epochs", "1")[0] == 0
    assert run(capsys, "train", "--config", str(src / "config.json"), "--out", str(tmp_path / "again"),
               "--quiet")[0] == 0
    assert all(v.equal(_weights(tmp_path / "again")[k]) for k, v in _weights(src).items())
    assert run(capsys, *small_fno(darcy, tuned), "--trainer.epochs", "1", "--init_from", str(src))[0] == 0
    import shutil

    shutil.rmtree(src)
    assert run(capsys, *small_fno(darcy, tuned), "--trainer.epochs", "2", "--trainer.scheduler", "constant",
               "--init_from", str(src))[0] == 0
    assert [r["epoch"] for r in json.loads((tuned / "history.json").read_text())] == [1, 2]


@pytest.mark.parametrize("argv, message", [
    (["predict", "--run", ".", "--out", "p.h5", "--n", "0"], "--n: expected a positive integer"),
    (["evaluate", "--run", ".", "--split", "val"], "invalid choice: 'val'"),
    (["generate", "darcy"], "the following arguments are required: --out"),
])
def test_argument_errors_of_every_command_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err and err.startswith(f"sciml {argv[0]}: error:"), err


def test_pinn_train_reports_the_error_against_a_solution_and_the_coefficients(tmp_path, capsys, monkeypatch):
    import h5py

    from sciml.cli import train_parser
    from sciml.solvers.pinn_problems import PROBLEMS

    help_text = " ".join(train_parser().format_help().split())
    assert all(name in help_text for name in PROBLEMS)  # --problem lists every built-in problem
    small = ["--collocation.n_interior", "64", "--solver_options.hidden", "[8]", "--trainer.epochs", "2", "--quiet"]
    # poisson_lshape has an exact solution and no reference grid: the error against it is printed
    code, out, err = run(capsys, "train", "--family", "pinn", "--problem", "poisson_lshape", "--out",
                         str(tmp_path / "lshape"), *small)
    assert code == 0, err
    error = sciml.load_run(tmp_path / "lshape", "last").relative_error()
    assert out.splitlines()[-1].startswith(f"rel_l2={error:.4g}  (2 epochs")
    # an inverse problem: its trained coefficients are printed
    code, out, err = run(capsys, "train", "--family", "pinn", "--problem", "burgers_identification",
                         "--problem_options.n_data", "50", "--out", str(tmp_path / "ident"), *small)
    assert code == 0, err
    solver = sciml.load_run(tmp_path / "ident", "last")
    lam1, log_lam2 = (float(solver.coefficients[k].detach()) for k in ("lambda1", "log_lambda2"))
    assert out.splitlines()[-1].startswith(
        f"rel_l2={solver.relative_error():.4g}  lambda1={lam1:.6g}  log_lambda2={log_lam2:.6g}  (2 epochs")
    # a problem with neither solution nor reference on a disk: the loss is printed, and predict keeps to the disk
    (tmp_path / "diskproblem.py").write_text(
        "from sciml.solvers.pinn import Domain, PDEProblem\n"
        "from sciml.solvers.pinn_conditions import Dirichlet\n"
        "from sciml.solvers.pinn_geometry import Ball\n"
        "def make():\n"
        "    return PDEProblem(name='disk', domain=Domain(Ball([0.0, 0.0], 1.0)),\n"
        "                      residual=lambda p, d: -d.laplacian() - 1.0, conditions=(Dirichlet(0.0),))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(capsys, "train", "--family", "pinn", "--problem", "diskproblem:make", "--out",
                         str(tmp_path / "disk"), *small)
    assert code == 0 and out.splitlines()[-1].startswith("train_loss="), err
    assert run(capsys, "predict", "--run", str(tmp_path / "disk"), "--out", str(tmp_path / "p.h5"),
               "--resolution", "21")[0] == 0
    with h5py.File(tmp_path / "p.h5") as f:
        points = torch.from_numpy(f["points"][()])
    # the 21 × 21 grid over [-1, 1]² has 317 nodes in the closed unit disk (none of the 124 others)
    assert points.shape == (317, 2) and float(points.norm(dim=1).max()) <= 1 + 1e-12
