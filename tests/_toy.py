"""Pieces shared by several test modules (not a test module): a small regression Solver and the
state_dict round-trip check of the optimizer tests."""
import copy

import torch
from torch import nn

from sciml.solver import Solver


class Regression(Solver):
    """Fit y = f(x) with a small MLP and mean-squared error; dropout exercises the RNG state."""

    def __init__(self, dim=4, width=32, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, 1))

    def loss(self, batch):
        x, y = batch
        return (self.net(x) - y).pow(2).mean()

    def evaluate(self, batch):
        x, y = batch
        return {"loss": self.loss(batch), "max_err": (self.net(x) - y).abs().max()}

    def sample(self, x):
        return self.net(x)


def regression_data(n=256, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.5 * x[:, :1]
    return torch.utils.data.TensorDataset(x, y)


def fno_data(n=16, size=16, seed=0):
    """A smoothing, saturating operator on random fields: ``(n, 1, size, size)`` pairs for FNO tests."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    y = torch.fft.irfft2(torch.fft.rfft2(x) * 0.5, s=(size, size)).tanh()
    return torch.utils.data.TensorDataset(x, y)


def train_resume_and_compare(make_model, make_optimizer, train, first, then):
    """Train ``first``, save, train ``then``; resume a fresh copy from the save, train ``then``.

    Asserts the two end states are bit-identical and returns ``(saved, final)`` model state dicts.
    """
    model = make_model()
    opt = make_optimizer(model)
    train(model, opt, first)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, then)

    resumed = make_model()
    resumed.load_state_dict(saved_model)
    opt2 = make_optimizer(resumed)
    opt2.load_state_dict(saved_opt)
    train(resumed, opt2, then)
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    return saved_model, model.state_dict()
