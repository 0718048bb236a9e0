"""LSM, MgNO and MG-TFNO: shapes on awkward grids, the papers' parameter counts, the structure of
their building blocks, and learning on a small Darcy problem; FNO's zero-shot super-resolution."""
import pytest
import torch

from sciml import Trainer
from sciml.operators import LSM, MGTFNO, MgNO, build_operator
from sciml.operators.lsm import PAPER_CONFIGS, NeuralSpectralBlock2d
from sciml.operators.mgno import VCycle
from sciml.solvers import OperatorSolver

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {  # small configurations of every operator, fast on one CPU thread
    "fno": dict(n_modes=(8, 8), hidden_channels=16),
    "tfno": dict(n_modes=(8, 8), hidden_channels=16),
    "mg_tfno": dict(n_modes=(8, 8), hidden_channels=16, levels=1),
    "lsm": dict(width=8, patch_size=2, n_levels=2, n_heads=4, projection_channels=32),
    "mgno": dict(hidden_channels=12, n_layers=2, pre_smoothing=(1, 1, 2)),
}


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["lsm", "mgno", "mg_tfno"])
def test_any_grid_maps_to_the_same_grid(name):
    torch.manual_seed(0)
    model = build_operator(name, in_channels=2, out_channels=3, **SMALL[name])
    # 17, 23, 29: divisible neither by 2**levels nor by the patch size; non-square grids too
    for h, w in [(16, 16), (17, 17), (23, 29), (29, 20)]:
        out = model(torch.randn(2, 2, h, w))
        assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 2, H, W\)"):
        model(torch.randn(2, 1, 16, 16))


def test_paper_configurations_have_the_papers_parameter_counts():
    # LSM, public Darcy configuration (width 64, 12 bases, 4 tokens, 6×6 patches): about 19.2 M
    assert PAPER_CONFIGS["darcy"] == dict(width=64, patch_size=(6, 6))
    lsm = LSM(1, 1, num_basis=12, num_token=4, **PAPER_CONFIGS["darcy"])
    # 19,187,457 is also the count of the public code's model (models/LSM_2D.py) built with
    # scripts/darcy_lsm.sh, checked once by instantiating it (it cannot be imported here)
    assert count(lsm) == pytest.approx(19.2e6, rel=0.02) and count(lsm) == 19_187_457
    # MgNO, Darcy configuration (4 layers of 24 channels, 6 levels, smoothing 1,1,1,1,1,2): about 0.57 M
    model = MgNO(1, 1)
    assert count(model) == pytest.approx(0.57e6, rel=0.02)
    # and exactly the public code's layer list: per V-cycle one initial smoother S, one (A, S)
    # pair of 3×3 convs per further smoothing step (6 of them), Π and R per coarsening (5), and a
    # 4×4 transposed conv per prolongation (5); 1×1 convs with bias beside; a 1×1 read-out
    def vcycle(f, u=24):
        return 9 * f * u + 6 * 2 * 9 * u * f + 5 * 9 * (u * u + f * f) + 5 * 16 * u * u
    expected = vcycle(1) + 3 * vcycle(24) + (1 * 24 + 24) + 3 * (24 * 24 + 24) + 24
    assert count(model) == expected == 572_661


def test_lsm_spectral_block_acts_on_each_patch_alone():
    torch.manual_seed(0)
    block = NeuralSpectralBlock2d(width=8, num_basis=6, num_token=3, patch_size=(4, 4), n_heads=2)
    x = torch.randn(2, 8, 12, 16)
    y = block(x)
    x2 = x.clone()
    x2[:, :, 4:8, 8:12] += torch.randn(2, 8, 4, 4)  # change one patch
    changed = (block(x2) - y).abs().amax(dim=(0, 1)) > 1e-6
    inside = torch.zeros(12, 16, dtype=torch.bool)
    inside[4:8, 8:12] = True
    assert changed[inside].all() and not changed[~inside].any()


def test_vcycle_matches_the_multigrid_algorithm_unrolled():
    # three levels written out step by step with the module's own convolutions: smooth, restrict
    # the smoothed u and f, …, then correct with the prolongated coarse u and post-smooth
    torch.manual_seed(0)
    v = VCycle(2, 3, pre_smoothing=(2, 1, 2), post_smoothing=(1, 2))

    def smooth(u, f, steps):
        for a, s in steps:
            u = u + s(f - a(u))
        return u

    f0 = torch.randn(2, 2, 19, 22)
    u0 = smooth(v.init(f0), f0, v.pre[0])  # the first of the two steps starts from u = 0: u = S f
    f1 = v.restrict_f[0](f0)
    u1 = smooth(v.restrict_u[0](u0), f1, v.pre[1])
    f2 = v.restrict_f[1](f1)
    u2 = smooth(v.restrict_u[1](u1), f2, v.pre[2])
    assert u1.shape[-2:] == (10, 11) and u2.shape[-2:] == (5, 6)  # odd sizes round up
    u1 = smooth(u1 + v.prolong[1](u2, (10, 11)), f1, v.post[1])
    u0 = smooth(u0 + v.prolong[0](u1, (19, 22)), f0, v.post[0])
    assert len(v.pre[0]) == 1 and len(v.post[1]) == 2
    torch.testing.assert_close(v(f0), u0)


def test_vcycle_is_a_linear_operator_and_periodic_mgno_commutes_with_shifts():
    torch.manual_seed(0)
    vcycle = VCycle(2, 4, pre_smoothing=(2, 1, 1), post_smoothing=(1, 1))
    f1, f2 = torch.randn(2, 2, 19, 21), torch.randn(2, 2, 19, 21)
    torch.testing.assert_close(vcycle(2.0 * f1 - 3.0 * f2), 2.0 * vcycle(f1) - 3.0 * vcycle(f2), atol=1e-5, rtol=1e-5)
    # with periodic padding every convolution, restriction and prolongation wraps around, so a
    # circular shift by the coarsest spacing (2**(levels−1) = 4) commutes with the whole model
    x = torch.randn(1, 1, 16, 24)
    for boundary, commutes in (("periodic", True), ("dirichlet", False)):
        torch.manual_seed(0)
        model = MgNO(1, 1, hidden_channels=6, n_layers=2, pre_smoothing=(1, 1, 1), post_smoothing=(1, 1),
                     boundary=boundary)
        gap = (model(x.roll((4, 8), dims=(2, 3))) - model(x).roll((4, 8), dims=(2, 3))).abs().max()
        assert (gap < 1e-5) == commutes, (boundary, gap)


def test_mg_tfno_reuses_neuraloperator_patching_and_stitches_back():
    import neuralop.training.patching as patching

    model = MGTFNO(1, 1, n_modes=(6, 6), hidden_channels=8, levels=2, padding_fraction=0.1)
    assert isinstance(model.patching, patching.MultigridPatching2D)
    # the TFNO sees the patch and one coarser copy per level, each with the domain's coordinates
    assert model.tfno.in_channels == (1 + 2) * 3
    x = torch.randn(2, 1, 37, 37)
    assert model._admissible(37) == 64 and model._admissible(64) == 64  # multiples of 2**(2·levels+1)
    padded = torch.nn.functional.pad(x, [0, 27, 0, 27])
    patches = model.patching._make_mg_patches(padded)
    assert patches.shape[:2] == (2 * 16, 3)
    m = model.patching.padding_height
    # the finest channel of the patches, without its margins, stitches back into the field
    torch.testing.assert_close(model.patching._stitch(patches[:, :1, m:-m, m:-m]), padded)
    # levels=0 without the domain's coordinates is the plain TFNO on the whole field
    flat = MGTFNO(1, 1, n_modes=(6, 6), hidden_channels=8, levels=0, domain_coordinates=False)
    torch.testing.assert_close(flat(x), flat.tfno(x))


class _FinestPatch(torch.nn.Module):
    """Stands in for MG-TFNO's TFNO: returns the input channels of the finest patch."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, patches):
        return patches[:, :self.channels]


@pytest.mark.parametrize("levels", [1, 2])
def test_mg_tfno_pads_patches_crops_and_stitches_back_to_the_input(levels):
    # with a TFNO that returns its finest patch, the model must be the identity: the padding to
    # an admissible grid, the margins, the stitching and the crop all undo each other
    torch.manual_seed(0)
    model = MGTFNO(2, 2, n_modes=(4, 4), hidden_channels=4, levels=levels)
    model.tfno = _FinestPatch(2)
    for h, w in [(85, 85), (37, 50), (17, 17)]:
        x = torch.randn(3, 2, h, w)
        torch.testing.assert_close(model(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [1, 2])
def test_mg_tfno_coarse_copies_are_centred_on_their_patch_and_padding_has_true_coordinates(levels):
    # the coordinate channels are ramps over the padded grid (continued past 1 in the padding),
    # so the centre of each channel of a patch says where it lies; the coarse copy of level ℓ
    # must sit on its patch up to the subsampling's own offset, −(2**ℓ − 1)/2 fine points, for
    # every patch (with the grid padded to a multiple of 2**levels only, the copies of 86² drift
    # by up to 2.5 points at one level, 6.5 at two)
    model = MGTFNO(1, 1, n_modes=(4, 4), hidden_channels=4, levels=levels)
    for h, w in [(85, 85), (37, 50), (17, 17), (86, 86)]:
        patches = model._patches(torch.zeros(2, 1, h, w))
        assert patches.shape[:2] == (2 * 4 ** levels, 3 * (levels + 1))
        ph, pw = patches.shape[-2:]

        def centre(channel):  # mean of the four central points (the patches have even sides)
            return patches[:, channel, ph // 2 - 1:ph // 2 + 1, pw // 2 - 1:pw // 2 + 1].mean(dim=(-2, -1))

        for level in range(1, levels + 1):
            for axis, n in ((1, h), (2, w)):  # channel 1: y, 2: x, in every group of three
                offset = (centre(3 * level + axis) - centre(axis)) * (n - 1)  # in fine grid points
                torch.testing.assert_close(offset, torch.full_like(offset, -(2 ** level - 1) / 2), atol=1e-3, rtol=0)
    # and the padded strip carries the grid's coordinates continued past 1, not the corner's 0
    coords = model._patches(torch.zeros(1, 1, 17, 17))
    strip = model.patching._stitch(coords[:, :3, model.patching.padding_height:-model.patching.padding_height,
                                          model.patching.padding_width:-model.patching.padding_width])
    n = strip.shape[-1]
    torch.testing.assert_close(strip[0, 2, 0], torch.arange(n, dtype=torch.float32) / 16)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="width must be divisible by n_heads"):
        LSM(1, 1, width=12)
    with pytest.raises(ValueError, match="patch_size"):
        LSM(1, 1, patch_size=(2, 0))
    with pytest.raises(ValueError, match="pre_smoothing"):
        MgNO(1, 1, pre_smoothing=(0, 1))
    with pytest.raises(ValueError, match="post_smoothing must have one entry per level but the coarsest"):
        MgNO(1, 1, pre_smoothing=(1, 1), post_smoothing=(1, 1))
    with pytest.raises(ValueError, match="boundary"):
        MgNO(1, 1, boundary="neumann")
    with pytest.raises(ValueError, match="padding_fraction"):
        MGTFNO(1, 1, padding_fraction=0.5)
    # LSM's spectral block checks its own arguments (n_heads=0 was a ZeroDivisionError)
    for bad, message in ((dict(n_heads=0), "n_heads must be a positive integer, got 0"),
                         (dict(num_basis=0), "num_basis must be a positive integer"),
                         (dict(num_token=0), "num_token must be a positive integer"),
                         (dict(patch_size=(2, 2, 2)), "patch_size must be a positive int or a pair")):
        with pytest.raises(ValueError, match=message):
            NeuralSpectralBlock2d(**{**dict(width=8, num_basis=4, num_token=2, patch_size=2, n_heads=2), **bad})
    with pytest.raises(ValueError, match="unknown model 'lsmx'"):
        build_operator("lsmx")


# ---------------------------------------------------------------------------- learning Darcy
@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    """The FNO-paper Darcy problem, 140 samples solved on 65² and kept on 33² and 17²."""
    import h5py

    from sciml.datasets import generate

    path = generate("darcy", n=140, n_test=40, resolution=33, solve_resolution=65,
                    out=str(tmp_path_factory.mktemp("darcy") / "darcy.h5"), seed=0, progress=False)
    with h5py.File(path) as f:
        x, y = torch.as_tensor(f["inputs"][:]).float(), torch.as_tensor(f["outputs"][:]).float()
    data = torch.utils.data.TensorDataset
    coarse_x, coarse_y = x[..., ::2, ::2], y[..., ::2, ::2]
    return {"train": data(coarse_x[:100], coarse_y[:100]), "test": data(coarse_x[100:], coarse_y[100:]),
            "test_fine": data(x[100:], y[100:])}


def train(name, darcy, epochs=10):
    torch.manual_seed(0)
    solver = OperatorSolver(build_operator(name, in_channels=1, out_channels=1, **SMALL[name]))
    trainer = Trainer(solver, lr=5e-3, epochs=epochs, batch_size=10, scheduler="cosine", device="cpu",
                      progress=False)
    solver.prepare(darcy["train"])
    before = trainer.evaluate(darcy["test"])["rel_l2"]
    trainer.fit(darcy["train"])
    return trainer, before, trainer.evaluate(darcy["test"])["rel_l2"]


@pytest.mark.parametrize("name", list(SMALL))
def test_every_operator_learns_darcy_through_the_same_trainer(name, darcy):
    # the untrained model predicts about the mean field (relative L2 ≈ 0.6); ten epochs on 100
    # samples of 17² must cut the held-out error at least three times
    _, before, after = train(name, darcy)
    assert after < before / 3, (before, after)


def test_fno_zero_shot_super_resolution(darcy):
    # trained on 17², evaluated on the same test fields at 33² (finer interfaces of the binary
    # coefficient the model never saw): the error stays within 1.75× the training-resolution error
    trainer, _, coarse = train("fno", darcy, epochs=20)
    fine = trainer.evaluate(darcy["test_fine"])["rel_l2"]
    assert coarse < 0.15 and fine < 1.75 * coarse, (coarse, fine)


@pytest.mark.cuda
def test_operators_on_cuda_agree_with_cpu():
    x = torch.randn(2, 1, 29, 29)
    for name in ("lsm", "mgno", "mg_tfno"):
        torch.manual_seed(0)
        model = build_operator(name, in_channels=1, out_channels=1, **SMALL[name]).eval()
        with torch.no_grad():
            ref = model(x)
            out = model.cuda()(x.cuda()).cpu()
        # TF32 convolutions and matmuls on the GPU: agreement to about 1e-3, not bitwise
        assert (out - ref).norm() / ref.norm() < 1e-2, name
