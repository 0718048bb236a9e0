"""InputFeatures: exact periodicity (Dong & Ni 2021) and random Fourier features (Tancik et al. 2020)."""
import dataclasses
import math

import pytest
import torch

from sciml import Trainer
from sciml.solvers.pinn import PINNSolver
from sciml.solvers.pinn_features import InputFeatures
from sciml.solvers.pinn_problems import allen_cahn, burgers, convection


def test_features_are_the_stated_maps():
    f = InputFeatures(3, periodic=(1,), fourier_scale=4.0, fourier_count=8, seed=3)
    z = torch.rand(50, 3, dtype=torch.float64) * 2 - 1
    out = f(z)
    assert f.out_features == out.shape[1] == 2 + 16
    assert torch.allclose(out[:, 0], torch.cos(math.pi * z[:, 1]), atol=1e-15)
    assert torch.allclose(out[:, 1], torch.sin(math.pi * z[:, 1]), atol=1e-15)
    proj = z[:, [0, 2]] @ f.B
    assert torch.allclose(out[:, 2:10], torch.cos(proj)) and torch.allclose(out[:, 10:], torch.sin(proj))
    # without Fourier features the other coordinates pass through
    plain = InputFeatures(3, periodic=(0,))
    assert torch.equal(plain(z)[:, 2:], z[:, 1:]) and plain.out_features == 4
    assert torch.equal(InputFeatures(2)(z[:, :2]), z[:, :2])


def _features_by_the_formula(f, z):
    """The maps written out the straightforward way: index every group of columns, then concatenate."""
    parts = []
    if f.periodic:
        angle = math.pi * z[:, list(f.periodic)]
        parts += [torch.cos(angle), torch.sin(angle)]
    if f.rest:
        rest = z[:, list(f.rest)]
        proj = rest @ f.B if f.B is not None else None
        parts += [rest] if f.B is None else [torch.cos(proj), torch.sin(proj)]
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("periodic, scale", [((), 4.0), ((0,), None), ((2,), None), ((1,), None), ((0, 2), None),
                                             ((0, 1), None), ((1,), 4.0), ((0, 1), 4.0), ((0, 2), 4.0)])
def test_features_are_bit_identical_to_the_formula_with_their_derivatives(periodic, scale):
    f = InputFeatures(3, periodic=periodic, fourier_scale=scale, fourier_count=8, seed=1)
    z = (torch.rand(64, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    out, ref = f(z), _features_by_the_formula(f, z)
    assert torch.equal(out, ref)
    w = torch.randn_like(out)  # first and second derivatives in z, as a PINN residual takes them
    g, = torch.autograd.grad((out * w).sum(), z, create_graph=True)
    g_ref, = torch.autograd.grad((ref * w).sum(), z, create_graph=True)
    assert torch.equal(g, g_ref)
    if g.requires_grad:  # the periodic and Fourier maps are not linear
        assert torch.equal(torch.autograd.grad(g.pow(2).sum(), z)[0], torch.autograd.grad(g_ref.pow(2).sum(), z)[0])


def test_no_feature_hands_the_coordinates_on_without_a_copy():
    """Burgers with hard=True asks for no feature: the network gets z itself (a copy and a one-tensor
    cat cost ~15% of its loss evaluation through the second derivatives)."""
    z = torch.rand(32, 2, dtype=torch.float64, requires_grad=True)
    assert InputFeatures(2)(z) is z
    solver = PINNSolver(burgers(), hidden=(8, 8), hard=True, dtype=torch.float64)
    assert solver.features(z) is z


def test_fourier_frequencies_are_gaussian_with_the_scale_and_follow_the_seed():
    f = InputFeatures(2, fourier_scale=7.0, fourier_count=20000, seed=0)
    assert abs(float(f.B.mean())) < 0.05 * 7.0 and abs(float(f.B.std()) / 7.0 - 1) < 0.02
    assert torch.equal(InputFeatures(2, fourier_scale=7.0, seed=5).B, InputFeatures(2, fourier_scale=7.0, seed=5).B)
    assert not torch.equal(InputFeatures(2, fourier_scale=7.0, seed=5).B, InputFeatures(2, fourier_scale=7.0, seed=6).B)


def test_frequencies_are_saved_with_the_solver():
    """B is a buffer: a checkpoint restores the same features even where the seed differs."""
    a = PINNSolver(convection(), hard=True, seed=1, fourier_scale=10.0, dtype=torch.float64)
    b = PINNSolver(convection(), hard=True, seed=2, fourier_scale=10.0, dtype=torch.float64)
    assert "features.B" in a.state_dict()
    b.load_state_dict(a.state_dict())
    pts = convection().domain.interior(64, seed=0)
    assert torch.equal(a.sample(pts), b.sample(pts))


def test_fourier_features_learn_what_the_raw_coordinates_do_not():
    """Spectral bias (Wang, Wang & Perdikaris 2021): convection at β = 20 has about 3 periods in t;
    the same network, points and 300 L-BFGS iterations on (cos x, sin x, t) stay near the trivial
    error (measured 0.87), on Fourier features of t (σ = 5) get 0.25."""
    errors = {}
    for scale in (None, 5.0):
        solver = PINNSolver(convection(20.0), hidden=(20, 20), hard=True, dtype=torch.float64, seed=0,
                            fourier_scale=scale, fourier_count=16)
        Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, device="cpu", progress=False,
                optimizer_options={"max_iter": 300}).fit(solver.collocation(512, 32, 32))
        errors[scale] = solver.relative_error()
    assert errors[5.0] < 0.35 and errors[5.0] < 0.4 * errors[None], errors


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="periodic"):
        InputFeatures(2, periodic=(2,))
    with pytest.raises(ValueError, match="periodic"):
        InputFeatures(2, periodic=(0, 0))
    with pytest.raises(ValueError, match="fourier_scale"):
        InputFeatures(2, fourier_scale=0.0)
    with pytest.raises(ValueError, match="fourier_scale"):
        InputFeatures(2, fourier_scale=True)
    with pytest.raises(ValueError, match="not periodic"):
        InputFeatures(1, periodic=(0,), fourier_scale=1.0)
    with pytest.raises(ValueError, match="fourier_count"):
        InputFeatures(2, fourier_scale=1.0, fourier_count=0)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        InputFeatures(2)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="input features"):  # a custom network sized for the raw coordinates
        PINNSolver(convection(), network=torch.nn.Linear(2, 1), hard=True, fourier_scale=3.0)


def test_hard_periodicity_needs_a_periodic_lift_and_no_lift_without_initial_terms():
    # periodic boundary alone made hard: no lift needed, u = N is periodic and the initial term stays
    only_periodic = dataclasses.replace(convection(), lift=None, distance=None, hard_terms=("boundary",))
    s = PINNSolver(only_periodic, hard=True, dtype=torch.float64)
    assert s.terms == ("residual", "initial")
    pairs = only_periodic.domain.periodic_pairs(32, seed=1)
    assert (s.sample(pairs[:, 0]) - s.sample(pairs[:, 1])).abs().max() < 1e-12
    with pytest.raises(ValueError, match="lift"):  # an initial hard term needs its lift
        PINNSolver(dataclasses.replace(only_periodic, hard_terms=("boundary", "initial")), hard=True)
    # Allen–Cahn's u0 = x² cos πx has u0_x(±1) = ∓2: periodic features cannot make u = u0 + tN periodic in u_x
    ac = dataclasses.replace(allen_cahn(t_end=0.25), hard_terms=("boundary", "initial"))
    with pytest.raises(ValueError, match="lift .* must be periodic and its gradient"):
        PINNSolver(ac, hard=True)
    # a lift periodic in value only is enough where derivatives are not matched
    PINNSolver(dataclasses.replace(ac, periodic_derivatives=False), hard=True)
