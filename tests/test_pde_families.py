"""PDE families: second-order convergence, matrix properties and the generator protocol."""
import json
import math

import numpy as np
import pytest
import torch

from sciml.datasets import PDES, ConvectionDiffusion, Darcy, Heat, Helmholtz, Poisson, \
    get_pde, solve_direct

pi = math.pi
# The 3-D families (dim = 3) have their own tests in test_pde_families_3d.py.
PDES_2D = {name: family for name, family in PDES.items() if getattr(family, "dim", 2) == 2}


def _direct(As, B, X0=None):
    return torch.stack([solve_direct(A, b, rtol=1e-10).x for A, b in zip(As, B)])


def _grid(n):
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    return torch.meshgrid(x, x, indexing="ij")


def _order(sizes, errors):
    return np.polyfit(np.log([1 / (n - 1) for n in sizes]), np.log(errors), 1)[0]


def _solve_one(A, b):
    result = solve_direct(A, b, rtol=1e-10)
    assert result.converged
    return result.x


def test_poisson_converges_at_second_order_with_boundary_data():
    # u = eˣ sin 2y + x²y: −Δu = 3 eˣ sin 2y − 2y, boundary values g = u.
    sizes, errors = [17, 33, 65], []
    for n in sizes:
        X, Y = _grid(n)
        u = torch.exp(X) * torch.sin(2 * Y) + X ** 2 * Y
        f = 3 * torch.exp(X) * torch.sin(2 * Y) - 2 * Y
        A, b = Poisson().assemble(f, u)
        x = _solve_one(A, b)
        errors.append(float((x.view(n - 2, n - 2) - u[1:-1, 1:-1]).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.1, errors


def test_helmholtz_converges_at_second_order_with_variable_wavenumber():
    # k = 8 + 2 sin(πx) cos(πy) (k² ≈ 64 > 2π²: indefinite), u = x sin(πx) sin(2πy).
    sizes, errors = [33, 65, 129], []
    for n in sizes:
        X, Y = _grid(n)
        k = 8 + 2 * torch.sin(pi * X) * torch.cos(pi * Y)
        u = X * torch.sin(pi * X) * torch.sin(2 * pi * Y)
        sx, cx = torch.sin(pi * X), torch.cos(pi * X)
        u_xx = (2 * pi * cx - pi ** 2 * X * sx) * torch.sin(2 * pi * Y)
        u_yy = -4 * pi ** 2 * u
        A, b = Helmholtz().assemble(k, -(u_xx + u_yy) - k ** 2 * u)
        x = _solve_one(A, b)
        errors.append(float((x.view(n - 2, n - 2) - u[1:-1, 1:-1]).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.2, errors


def test_heat_converges_at_second_order_in_space_and_time():
    # a = 1, u₀ = sin πx sin πy: u = exp(−2π² t) u₀. dt ∝ h, so the error is O(h²) overall.
    sizes, steps, t_end, errors = [9, 17, 33], [4, 8, 16], 0.1, []
    for n, T in zip(sizes, steps):
        heat = Heat(dt=t_end / T, time_steps=T)
        params = {"grf": torch.zeros(1, n, n, dtype=torch.float64),
                  "initial": torch.ones(1, n, n, dtype=torch.float64)}
        u = heat.solve(params, _direct)
        assert u.shape == (1, 1, T, n, n)
        X, Y = _grid(n)
        times = torch.arange(1, T + 1, dtype=torch.float64) * t_end / T
        mode = torch.sin(pi * X) * torch.sin(pi * Y)
        exact = torch.exp(-2 * pi ** 2 * times)[:, None, None] * mode
        errors.append(float((u[0, 0] - exact).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.1, errors


def _manufactured_convection(n, epsilon):
    """v = ∇^⊥(sin πx sin πy / π), u = x sin πx sin πy, f = −εΔu + v·∇u."""
    X, Y = _grid(n)
    sx, cx, sy, cy = torch.sin(pi * X), torch.cos(pi * X), torch.sin(pi * Y), torch.cos(pi * Y)
    v = torch.stack([sx * cy, -cx * sy])
    u = X * sx * sy
    u_x = (sx + pi * X * cx) * sy
    u_xx = (2 * pi * cx - pi ** 2 * X * sx) * sy
    u_y = pi * X * sx * cy
    u_yy = -pi ** 2 * u
    return v, u, -epsilon * (u_xx + u_yy) + v[0] * u_x + v[1] * u_y


def test_convection_diffusion_converges_at_second_order_when_resolved():
    sizes, errors = [17, 33, 65], []
    family = ConvectionDiffusion(epsilon=0.1)
    for n in sizes:
        v, u, f = _manufactured_convection(n, 0.1)
        assert float(v.abs().max()) / (n - 1) <= 2 * 0.1  # cell Péclet ≤ 1: central throughout
        A, b = family.assemble(v, f)
        x = _solve_one(A, b)
        errors.append(float((x.view(n - 2, n - 2) - u[1:-1, 1:-1]).abs().max()))
    assert 1.9 < _order(sizes, errors) < 2.1, errors


def test_convection_diffusion_is_an_m_matrix_where_convection_dominates():
    v, _, _ = _manufactured_convection(9, 0.01)
    A, _ = ConvectionDiffusion(epsilon=0.01).assemble(20 * v)   # cell Péclet up to 125
    dense = A.to_dense().numpy()
    off = dense - np.diag(np.diag(dense))
    assert np.abs(dense - dense.T).max() > 1.0                    # non-symmetric
    assert off.max() <= 0 and (dense.sum(1) >= -1e-9).all()       # Z-matrix, dominant rows
    assert np.linalg.inv(dense).min() >= -1e-12                   # monotone: A⁻¹ ≥ 0
    # Central differences alone would have positive off-diagonals here.
    h, vmax = 1 / 8, float((20 * v).abs().max())
    assert -0.01 / h ** 2 + vmax / (2 * h) > 0


def test_matrix_claims_hold_on_a_small_grid():
    g = torch.Generator().manual_seed(0)
    for name, family in PDES_2D.items():
        f = family()
        params = f.sample_params(2, 12, generator=g)   # k₀ = 20 resolved: h²k² < 8
        captured = []

        def record(As, B, X0=None):
            captured.append(As)
            return _direct(As, B)

        f.solve(params, record)
        dense = [A.to_dense().numpy() for A in captured[0]]
        for D in dense:
            eigenvalues = np.linalg.eigvals(D)
            symmetric = np.abs(D - D.T).max() <= 1e-12 * np.abs(D).max()
            if f.spd:
                assert symmetric and eigenvalues.real.min() > 0, name
            elif name == "helmholtz":
                assert symmetric and eigenvalues.real.min() < 0 < eigenvalues.real.max()
            else:
                assert not symmetric, name
        assert (captured[0][0] is captured[0][1]) == (not f.matrix_varies), name


@pytest.mark.parametrize("name", sorted(PDES_2D))
def test_protocol(name):
    family = get_pde(name)
    rebuilt = type(family)(**json.loads(json.dumps(family.to_dict())))
    assert rebuilt.to_dict() == family.to_dict()
    n, res = 3, 9
    params = family.sample_params(n, res, generator=torch.Generator().manual_seed(1))
    again = family.sample_params(n, res, generator=torch.Generator().manual_seed(1))
    other = family.sample_params(n, res, generator=torch.Generator().manual_seed(2))
    for key, value in params.items():
        assert value.dtype == torch.float64 and value.shape[0] == n
        assert torch.equal(value, again[key]) and not torch.equal(value, other[key])
    inputs = family.inputs(params)
    assert inputs.shape == (n, family.in_channels, res, res) and inputs.dtype == torch.float64
    features = family.sort_features(params)
    assert features.shape[0] == n and features.ndim == 2
    assert family.grid_shape(res) == (res - 2, res - 2)

    calls = []

    def record(As, B, X0=None):
        assert len(As) == n and B.shape == (n, (res - 2) ** 2)
        X = _direct(As, B)
        for A, b, x in zip(As, B, X):   # the solution the family returns is the solve's
            assert float(torch.linalg.norm(A @ x - b) / torch.linalg.norm(b)) < 1e-10
        calls.append((As, B, X0, X))
        return X

    u = family.solve(params, record)
    T = family.time_steps
    assert u.shape == ((n, family.out_channels, res, res) if T is None
                       else (n, family.out_channels, T, res, res))
    assert len(calls) == (1 if T is None else T)
    last = calls[-1][3].view(n, res - 2, res - 2)
    torch.testing.assert_close(u[:, 0, -1, 1:-1, 1:-1] if T else u[:, 0, 1:-1, 1:-1], last,
                               rtol=0, atol=0)
    if T is not None:   # each step starts from the last, with the same matrices
        for (As, _, X0, _), (As_prev, _, _, X_prev) in zip(calls[1:], calls[:-1]):
            assert all(a is b for a, b in zip(As, As_prev)) and torch.equal(X0, X_prev)


def test_heat_matrix_is_crank_nicolson_of_the_darcy_operator():
    a = torch.exp(Darcy().sample_fields(1, 7, torch.Generator().manual_seed(3))[0])
    A = Heat(dt=0.01).assemble(a).to_dense()
    L = Darcy().assemble(a)[0].to_dense()
    torch.testing.assert_close(A, torch.eye(25, dtype=torch.float64) + 0.005 * L, rtol=1e-14,
                               atol=0)


def test_poisson_inputs_and_boundary_values():
    poisson = Poisson(boundary_modes=3)
    params = poisson.sample_params(2, 9, generator=torch.Generator().manual_seed(4))
    u = poisson.solve(params, _direct)
    g = poisson.boundary_values(params["boundary"], 9)
    inputs = poisson.inputs(params)
    ring = torch.ones(9, 9, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    torch.testing.assert_close(u[:, 0][:, ring], g[:, ring], rtol=0, atol=0)
    torch.testing.assert_close(inputs[:, 1][:, ring], g[:, ring], rtol=0, atol=0)
    assert float(inputs[:, 1, 1:-1, 1:-1].abs().max()) == 0
    torch.testing.assert_close(inputs[:, 0], params["forcing"], rtol=0, atol=0)
    # g is smooth: its corner values agree along both edges by construction.
    X, Y = _grid(9)
    c = params["boundary"][0]
    expected = sum(c[i, j] * torch.cos(pi * i * X) * torch.cos(pi * j * Y)
                   for i in range(3) for j in range(3))
    torch.testing.assert_close(g[0], expected, rtol=0, atol=1e-13)


def test_convection_flow_is_divergence_free_and_second_order():
    # ψ = sin πx sin πy / π: v = (sin πx cos πy, −cos πx sin πy).
    errors = []
    for n in (17, 33, 65):
        X, Y = _grid(n)
        psi = (torch.sin(pi * X) * torch.sin(pi * Y) / pi)[None]
        v = ConvectionDiffusion(velocity=2.0).flow({"stream": psi})[0]
        exact = 2 * torch.stack([torch.sin(pi * X) * torch.cos(pi * Y),
                                 -torch.cos(pi * X) * torch.sin(pi * Y)])
        errors.append(float((v - exact).abs().max()))
        h = 1 / (n - 1)
        div = ((v[0, 2:, 1:-1] - v[0, :-2, 1:-1]) + (v[1, 1:-1, 2:] - v[1, 1:-1, :-2])) / (2 * h)
        assert float(div[1:-1, 1:-1].abs().max()) < 1e-10   # discrete curl is div-free inside
    assert _order([17, 33, 65], errors) > 1.9


@pytest.mark.parametrize("call, error, words", [
    (lambda: Helmholtz(k0=0.0), ValueError, "k0"),
    (lambda: Helmholtz(epsilon=-0.1), ValueError, "epsilon"),
    (lambda: Heat(dt=-1.0), ValueError, "dt"),
    (lambda: Heat(time_steps=0), ValueError, "time_steps"),
    (lambda: Heat(time_steps=2.5), TypeError, "time_steps"),
    (lambda: Poisson(boundary_modes=0), ValueError, "boundary_modes"),
    (lambda: Poisson(boundary_scale=-1.0), ValueError, "boundary_scale"),
    (lambda: ConvectionDiffusion(epsilon=0.0), ValueError, "epsilon"),
    (lambda: ConvectionDiffusion(velocity=-1.0), ValueError, "velocity"),
    (lambda: get_pde("heat", viscosity=1.0), ValueError, "viscosity"),
    (lambda: Poisson().sample_params(2, 2), ValueError, "resolution"),
    (lambda: Helmholtz().solve({"k": torch.ones(1, 5, 5)}, _direct), ValueError, "'grf'"),
    (lambda: Helmholtz().solve([1.0], _direct), TypeError, "params"),
    (lambda: Heat().inputs({"grf": torch.ones(2, 5, 5), "initial": torch.ones(3, 5, 5)}),
     ValueError, "params['initial']"),
    (lambda: Heat().inputs({"grf": torch.ones(2, 5, 5), "initial": torch.ones(2, 4, 4)}),
     ValueError, "(n, R, R)"),
    (lambda: Poisson().inputs({"forcing": torch.ones(1, 5, 5),
                               "boundary": torch.ones(1, 2, 2)}), ValueError, "(n, 4, 4)"),
    (lambda: Helmholtz().assemble(torch.ones(4, 5)), ValueError, "k must have shape"),
    (lambda: ConvectionDiffusion().assemble(torch.ones(5, 5)), ValueError, "(2, R, R)"),
    (lambda: Heat().assemble(-torch.ones(5, 5)), ValueError, "> 0"),
    (lambda: Poisson().assemble(torch.ones(5, 5), torch.ones(4, 4)), ValueError, "g must"),
    (lambda: Helmholtz().assemble(torch.ones(5, 5), torch.full((5, 5), math.nan)), ValueError,
     "f must be finite"),
    (lambda: Helmholtz().assemble(torch.ones(5, 5), torch.ones(5, 5, dtype=torch.long)),
     TypeError, "f must be a floating-point"),
    (lambda: Helmholtz().assemble(torch.ones(5, 5), torch.ones(4, 4)), ValueError,
     "f must have shape (5, 5) like k"),
    (lambda: ConvectionDiffusion().assemble(torch.ones(2, 5, 5), torch.full((5, 5), math.inf)),
     ValueError, "f must be finite"),
    (lambda: ConvectionDiffusion().assemble(torch.ones(2, 5, 5),
                                            torch.ones(5, 5, dtype=torch.int32)),
     TypeError, "f must be a floating-point"),
    (lambda: ConvectionDiffusion().assemble(torch.ones(2, 5, 5), math.nan), ValueError,
     "f must be"),
    (lambda: Darcy().assemble(torch.ones(5, 5), torch.full((5, 5), math.nan)), ValueError,
     "f must be finite"),
    (lambda: Poisson().assemble(torch.full((5, 5), math.nan), torch.ones(5, 5)), ValueError,
     "f must be finite"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(PDES_2D))
def test_cuda_assembly_matches_cpu(name):
    family = get_pde(name)
    params = family.sample_params(2, 17, generator=torch.Generator().manual_seed(5))
    on_gpu = {key: value.cuda() for key, value in params.items()}
    systems = {}

    def capture(device):
        def solve(As, B, X0=None):
            assert all(A.device.type == device for A in As) and B.device.type == device
            systems.setdefault(device, (As, B))
            return torch.zeros_like(B)
        return solve

    family.solve(params, capture("cpu"))
    family.solve(on_gpu, capture("cuda"))
    (A_cpu, B_cpu), (A_gpu, B_gpu) = systems["cpu"], systems["cuda"]
    for a, b in zip(A_cpu, A_gpu):
        torch.testing.assert_close(b.to_dense().cpu(), a.to_dense(), rtol=1e-14, atol=1e-12)
    torch.testing.assert_close(B_gpu.cpu(), B_cpu, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("family, field", [
    (Darcy(forcing=0.5), torch.ones(9, 9)),
    (Helmholtz(k0=3.0, forcing=0.5), torch.full((9, 9), 3.0)),
    (ConvectionDiffusion(forcing=0.5), torch.ones(2, 9, 9)),
])
def test_forcing_is_a_constant_or_a_nodal_field_alike_in_every_family(family, field):
    _, default = family.assemble(field)
    _, constant = family.assemble(field, 0.5)
    torch.testing.assert_close(default, torch.full((49,), 0.5, dtype=torch.float64),
                               rtol=0, atol=0)
    torch.testing.assert_close(constant, default, rtol=0, atol=0)
    X, Y = _grid(9)
    f = (torch.sin(pi * X) * Y).float()                # a float32 field is taken in float64
    _, nodal = family.assemble(field, f)
    assert nodal.dtype == torch.float64
    torch.testing.assert_close(nodal, f[1:-1, 1:-1].reshape(-1).double(), rtol=0, atol=0)
