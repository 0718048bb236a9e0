"""A small regression Solver shared by the Trainer tests (not a test module)."""
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
