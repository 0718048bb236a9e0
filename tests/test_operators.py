import pytest
import torch

from sciml import Trainer
from sciml.operators import FNO, TFNO, build_operator
from sciml.solvers import OperatorSolver


def fields(n=64, res=16, seed=0):
    """Pairs (a, u) with u = smoothing of a: a linear, translation-invariant operator FNO can learn."""
    g = torch.Generator().manual_seed(seed)
    a = 2.0 + torch.randn(n, 1, res, res, generator=g)
    k = torch.fft.fftfreq(res, d=1.0 / res)
    kernel = 1.0 / (1.0 + 0.1 * (k[:, None] ** 2 + k[None, :] ** 2))
    u = 5.0 + 3.0 * torch.fft.ifft2(torch.fft.fft2(a) * kernel).real
    return [{"x": a[i], "y": u[i]} for i in range(n)], a, u


def test_fno_and_tfno_come_from_neuraloperator_and_keep_shapes():
    import neuralop.models

    fno = FNO(n_modes=(8, 8), in_channels=2, out_channels=3, hidden_channels=8)
    tfno = TFNO(n_modes=(8, 8), in_channels=2, out_channels=3, hidden_channels=8)
    assert isinstance(fno, neuralop.models.FNO) and isinstance(tfno, neuralop.models.FNO)
    for res in (16, 17, 24):
        x = torch.randn(2, 2, res, res)
        assert fno(x).shape == (2, 3, res, res) and tfno(x).shape == (2, 3, res, res)
    # Tucker factorization: fewer spectral parameters than the dense FNO
    assert sum(p.numel() for p in tfno.parameters()) < sum(p.numel() for p in fno.parameters())
    assert isinstance(build_operator("tfno", n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4), TFNO)


def test_fno_bad_input_is_named():
    with pytest.raises(ValueError, match="n_modes"):
        FNO(n_modes=12, in_channels=1, out_channels=1, hidden_channels=8)
    with pytest.raises(ValueError, match="hidden_channels"):
        FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 1, \*grid\)"):
        FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4)(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown model 'fnox'"):
        build_operator("fnox")


def test_spectral_layers_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    fno = FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8)
    x = torch.randn(2, 1, 16, 16)
    ref = fno(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fno(x)
    # bf16 has 8 bits of mantissa: agreement to a few per cent, not garbage
    assert (out.float() - ref).norm() / ref.norm() < 0.05


def test_normalisation_is_fitted_saved_and_restored():
    data, a, u = fields()
    solver = OperatorSolver(FNO(n_modes=(6, 6), in_channels=1, out_channels=1, hidden_channels=8))
    with pytest.raises(RuntimeError, match="prepare"):
        solver.loss(data[0] | {"x": a[:2], "y": u[:2]})
    solver.prepare(data)
    assert solver.x_mean.item() == pytest.approx(a.mean().item(), abs=1e-6)
    assert solver.x_std.item() == pytest.approx(a.std(unbiased=False).item(), rel=1e-5)
    assert solver.y_mean.item() == pytest.approx(u.mean().item(), abs=1e-5)
    clone = OperatorSolver(FNO(n_modes=(6, 6), in_channels=1, out_channels=1, hidden_channels=8))
    clone.load_state_dict(solver.state_dict())
    assert torch.equal(clone.y_std, solver.y_std) and bool(clone.fitted)
    torch.testing.assert_close(clone.sample(a[:3]), solver.sample(a[:3]))


def test_operator_solver_learns_a_smoothing_operator_and_samples_any_batch_shape():
    torch.manual_seed(0)
    data, a, u = fields(n=96)
    solver = OperatorSolver(FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=16))
    history = Trainer(solver, lr=5e-3, epochs=15, batch_size=16, scheduler="cosine", device="cpu",
                      progress=False).fit(data[:80], data[80:])
    assert history.last["val_rel_l2"] < 0.03, history.last
    one = solver.sample(a[80])
    assert one.shape == (1, 16, 16)
    torch.testing.assert_close(solver.sample(a[80:84], batch_size=3)[0], one)
    with pytest.raises(ValueError, match="NaN"):
        solver.sample(torch.full((1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 1, \*grid\)"):
        solver.sample(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="keys 'x' and 'y'"):
        solver.loss({"a": a})


def test_h1_loss_trains_too():
    torch.manual_seed(0)
    data, _, _ = fields(n=48)
    solver = OperatorSolver(FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8), loss="h1")
    history = Trainer(solver, lr=5e-3, epochs=10, batch_size=16, device="cpu", progress=False).fit(data, data)
    assert history.last["val_rel_h1"] < 0.4 * history["val_rel_h1"][0]
    assert history.last["val_loss"] == history.last["val_rel_h1"]


@pytest.mark.cuda
def test_bf16_training_on_cuda_matches_fp32():
    torch.manual_seed(0)
    data, _, _ = fields(n=64)
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        solver = OperatorSolver(FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=16))
        h = Trainer(solver, lr=5e-3, epochs=10, batch_size=16, device="cuda", precision=precision,
                    progress=False).fit(data, data)
        results[precision] = h.last["val_rel_l2"]
    assert results["bf16"] < 0.05 and results["fp32"] < 0.05, results


CASTS = {"fno": dict(n_modes=(4, 4), hidden_channels=8, n_layers=2),
         "tfno": dict(n_modes=(4, 4), hidden_channels=8, n_layers=2),
         "mg_tfno": dict(n_modes=(4, 4), hidden_channels=8, n_layers=2),
         "lsm": dict(width=8, patch_size=2, n_levels=2),
         "mgno": dict(hidden_channels=8)}


@pytest.mark.parametrize("name", sorted(CASTS))
@pytest.mark.parametrize("cast", ["double", "to"])
def test_every_operator_runs_again_after_a_change_of_dtype(name, cast):
    # neuraloperator's models cache their positional grid on the first call and keep complex
    # spectral weights that torch's .double() skips and .to(float64) makes real: a model run
    # once and then cast must compute the same function in the new precision.
    torch.manual_seed(0)
    model = build_operator(name, in_channels=1, out_channels=1, **CASTS[name]).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        single = model(x)
        model = model.double() if cast == "double" else model.to(torch.float64)
        double = model(x.double())
        again = model.float()(x)
    assert double.dtype == torch.float64 and again.dtype == torch.float32
    assert all(p.dtype in (torch.float32, torch.complex64) for p in model.parameters())
    assert (double - single.double()).norm() / single.norm() < 1e-5
    assert (again - single).norm() / single.norm() < 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(CASTS))
def test_every_operator_runs_again_after_a_move_to_cuda(name):
    torch.manual_seed(0)
    model = build_operator(name, in_channels=1, out_channels=1, **CASTS[name]).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        ref = model(x)
        out = model.cuda()(x.cuda()).cpu()
    assert (out - ref).norm() / ref.norm() < 1e-2  # TF32 on the GPU: not bitwise
