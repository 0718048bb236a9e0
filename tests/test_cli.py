import json
import subprocess
import sys

import pytest

from sciml.cli import load_run, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help():
    for cmd in ([], ["generate"], ["train"], ["evaluate"], ["demo"]):
        proc = subprocess.run([sys.executable, "-m", "sciml.cli", *cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: sciml" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["generate", "navier", "--out", "x.h5"], "unknown PDE 'navier'"),
    (["generate", "darcy", "--out", "x.h5", "--n", "10", "--n-test", "10"], "n_test"),
    (["generate", "darcy", "--out", "x.h5", "--resolution", "2"], "resolution"),
    (["generate", "darcy", "--out", "x.h5", "--solver", "magic"], "unknown linear solver 'magic'"),
    (["generate", "darcy", "--out", "x.h5", "--pde-option", "k0"], "--pde-option must look like KEY=VALUE"),
    (["generate", "helmholtz", "--out", "x.h5", "--pde-option", "k0=-1"], "k0"),
    (["train", "--data", "missing.h5"], "missing.h5"),
    (["evaluate", "--run", ".", "--data", "missing.h5"], "not a sciml run folder"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith(f"sciml {argv[0]}: error:")
    assert list(tmp_path.iterdir()) == []


def test_generate_train_evaluate_end_to_end(tmp_path, capsys):
    data = tmp_path / "d.h5"
    assert run(capsys, "generate", "darcy", "--out", str(data), "--n", "48", "--n-test", "8",
               "--resolution", "17", "--quiet")[0] == 0
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", str(data), "--out", str(out_dir), "--modes", "6", "6",
                       "--width", "8", "--epochs", "3", "--batch-size", "8", "--quiet")
    assert code == 0 and "test " in out and "rel_l2=" in out
    history = json.loads((out_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["val_rel_l2"] < history[0]["val_rel_l2"]
    assert (out_dir / "loss.png").stat().st_size > 0

    png = tmp_path / "pred.png"
    code, out, _ = run(capsys, "evaluate", "--run", str(out_dir), "--data", str(data), "--checkpoint", "last",
                       "--plot", str(png))
    assert code == 0 and png.stat().st_size > 0
    reported = float(out.split("rel_l2=")[1].split()[0])
    assert reported == pytest.approx(history[-1]["val_rel_l2"], rel=1e-3)  # same weights, same test split

    # flags of the FNO family are refused for other models, before anything is written
    code, _, err = run(capsys, "train", "--data", str(data), "--out", str(tmp_path / "x"), "--model", "mgno",
                       "--width", "16", "--quiet")
    assert code == 2 and "--model-option" in err and not (tmp_path / "x").exists()

    # a second `train` into the same folder with another model is refused, the run left intact
    code, _, err = run(capsys, "train", "--data", str(data), "--out", str(out_dir), "--width", "16", "--quiet")
    assert code == 2 and "other settings" in err and "model_options" in err and "--no-resume" in err
    solver, config = load_run(out_dir, "last")
    assert config["model_options"]["hidden_channels"] == 8

    # a truncated data file is named, not a traceback
    broken = tmp_path / "broken.h5"
    broken.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    code, _, err = run(capsys, "evaluate", "--run", str(out_dir), "--data", str(broken))
    assert code == 2 and "broken.h5" in err


def test_generate_with_a_forced_solver_records_it(tmp_path, capsys):
    import h5py

    data = tmp_path / "h.h5"
    code, out, _ = run(capsys, "generate", "helmholtz", "--out", str(data), "--n", "4", "--resolution", "17",
                       "--solver", "skr", "--pde-option", "k0=12", "--chunk-size", "4", "--quiet")
    assert code == 0 and str(data) in out
    with h5py.File(data, "r") as f:
        config = json.loads(f.attrs["config"])
        assert (config["solver"], config["order"], config["pde_options"]["k0"]) == ("gcrodr", "greedy", 12.0)
        assert "SKR" in f.attrs["method"] and f["solver/converged"][()].all()
        assert sorted(f["solver/position"][()]) == [0, 1, 2, 3]


@pytest.mark.parametrize("model, options", [("mgno", ["--model-option", "hidden_channels=8"]),
                                            ("lsm", ["--model-option", "width=8", "--model-option", "patch_size=2",
                                                     "--model-option", "n_levels=2"])])
def test_train_and_evaluate_other_operators_by_name(tmp_path, capsys, model, options):
    data = tmp_path / "d.h5"
    assert run(capsys, "generate", "darcy", "--out", str(data), "--n", "24", "--n-test", "4",
               "--resolution", "17", "--quiet")[0] == 0
    out_dir = tmp_path / model
    code, out, _ = run(capsys, "train", "--data", str(data), "--out", str(out_dir), "--model", model, *options,
                       "--epochs", "2", "--batch-size", "8", "--quiet")
    assert code == 0 and json.loads((out_dir / "config.json").read_text())["model"] == model
    png = tmp_path / f"{model}.png"
    code, out, _ = run(capsys, "evaluate", "--run", str(out_dir), "--data", str(data), "--plot", str(png))
    assert code == 0 and png.stat().st_size > 0 and "rel_l2=" in out


def _weights(run_dir):
    from sciml.checkpoint import load_checkpoint
    return load_checkpoint(run_dir / "last.pt")["solver"]


def test_the_seed_fixes_the_starting_weights_and_the_run(tmp_path, capsys):
    data = tmp_path / "d.h5"
    assert run(capsys, "generate", "darcy", "--out", str(data), "--n", "24", "--n-test", "4",
               "--resolution", "17", "--quiet")[0] == 0
    args = ["train", "--data", str(data), "--modes", "4", "4", "--width", "6", "--epochs", "2",
            "--batch-size", "8", "--quiet", "--seed", "5"]
    outputs = []
    for name in ("a", "b"):
        code, out, _ = run(capsys, *args, "--out", str(tmp_path / name))
        assert code == 0
        outputs.append(out.split("(")[0])
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(a[key].equal(b[key]) for key in a) and outputs[0] == outputs[1]
    code, _, _ = run(capsys, *args[:-1], "7", "--out", str(tmp_path / "c"))
    c = _weights(tmp_path / "c")
    assert code == 0 and not all(a[key].equal(c[key]) for key in a)


def test_a_rerun_with_other_settings_is_refused_by_name(tmp_path, capsys):
    data, other = tmp_path / "d.h5", tmp_path / "e.h5"
    for path, seed in ((data, "0"), (other, "1")):
        assert run(capsys, "generate", "darcy", "--out", str(path), "--n", "24", "--n-test", "4",
                   "--resolution", "17", "--seed", seed, "--quiet")[0] == 0
    out_dir = tmp_path / "run"
    base = ["train", "--out", str(out_dir), "--modes", "4", "4", "--width", "6", "--batch-size", "8",
            "--quiet"]
    assert run(capsys, *base, "--data", str(data), "--epochs", "2")[0] == 0
    before = _weights(out_dir)
    for extra, words in ((["--data", str(data), "--epochs", "2", "--lr", "0.01"], "lr: 0.001 -> 0.01"),
                         (["--data", str(other), "--epochs", "2"], "data_fingerprint"),
                         (["--data", str(data), "--epochs", "2", "--optimizer", "sgd"], "optimizer"),
                         (["--data", str(data), "--epochs", "3"], "cannot be extended")):
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and err.count("\n") == 1 and words in err and "--no-resume" in err, err
    after = _weights(out_dir)
    assert all(before[key].equal(after[key]) for key in before)  # the run is left as it was
    # A schedule that does not depend on the epoch count may be extended; --no-resume restarts.
    const = tmp_path / "const"
    args = ["train", "--out", str(const), "--modes", "4", "4", "--width", "6", "--batch-size", "8",
            "--quiet", "--data", str(data), "--scheduler", "constant"]
    assert run(capsys, *args, "--epochs", "1")[0] == 0
    assert run(capsys, *args, "--epochs", "2")[0] == 0
    assert [r["epoch"] for r in json.loads((const / "history.json").read_text())] == [1, 2]
    assert run(capsys, *base, "--data", str(data), "--epochs", "1", "--lr", "0.01", "--no-resume")[0] == 0
    assert json.loads((out_dir / "config.json").read_text())["training"]["lr"] == 0.01


def test_a_failed_run_does_not_block_the_corrected_command(tmp_path, capsys):
    data = tmp_path / "d.h5"
    assert run(capsys, "generate", "darcy", "--out", str(data), "--n", "24", "--n-test", "4",
               "--resolution", "17", "--quiet")[0] == 0
    base = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--modes", "4", "4",
            "--width", "6", "--epochs", "1", "--batch-size", "8", "--quiet"]
    code, _, err = run(capsys, *base, "--optimizer", "nosuch")
    assert code == 2 and "nosuch" in err
    assert run(capsys, *base)[0] == 0
