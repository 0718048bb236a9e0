"""benchmarks/trainer.py: the Trainer against a hand-written loop, at toy sizes.

What is checked is what makes the timing comparison fair: both loops start from the same weights,
go through the same batches with the same optimizer and schedule, and so end with the same
weights and losses; and the results land where the README's table is read from.
"""
import json

import pytest
import torch

from benchmarks import trainer as bench

TOY = ["--threads", "1", "--n", "40", "--n-test", "20", "--resolution", "16", "--width", "8", "--modes", "4",
       "--layers", "2", "--epochs", "2", "--rounds", "2", "--pinn-steps", "2", "--pinn-points", "200",
       "--pinn-depth", "2", "--no-progress"]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_both_cpu_cases_take_the_same_steps_as_the_plain_loop(tmp_path, restore_threads):
    out = tmp_path / "trainer_cpu.json"
    result = bench.main(["--case", "cpu", *TOY, "--out", str(out)])
    rows = {r["case"]: r for r in result["rows"]}
    assert set(rows) == {"fno_demo", "pinn_adam"}
    for r in rows.values():
        # same starting weights, batches, optimizer groups and schedule: the same arithmetic
        assert r["max_weight_difference"] == 0.0, r
        assert r["max_relative_loss_difference"] < 1e-12, r
        # one warm-up epoch per run is dropped; the rounds alternate which loop goes first
        assert len(r["trainer_seconds"]) == len(r["plain_seconds"]) == 2 * 1
        assert r["ratio"] > 0 and len(r["round_ratios"]) == 2
    assert json.loads(out.read_text())["rows"][0]["case"] == "fno_demo"
    table = out.with_suffix(".md").read_text()
    assert "| fno_demo" in table and "| pinn_adam" in table


def test_one_case_alone_and_the_original_table_still_run(tmp_path, restore_threads):
    result = bench.main(["--case", "pinn_adam", *TOY, "--out", str(tmp_path / "pinn.json")])
    assert [r["case"] for r in result["rows"]] == ["pinn_adam"]
    gpu_table = bench.main(["--case", "gpu", "--device", "cpu", "--n", "40", "--resolution", "16", "--width", "8",
                            "--modes", "4", "--epochs", "1", "--out", str(tmp_path / "loops.json")])
    assert gpu_table["rows"][0]["ratio"] == 1.0 and len(gpu_table["rows"]) == 4  # no torch.compile row on a CPU


def test_too_few_epochs_is_refused():
    with pytest.raises(SystemExit):
        bench.main(["--case", "fno_demo", "--epochs", "1"])
