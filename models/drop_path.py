"""Stochastic depth (per-sample drop of a residual branch), as used by OFA's ResNet and layers."""
import torch
from torch import nn


class DropPath(nn.Module):
    """Zero a residual branch for a random subset of samples, rescaling the kept ones.

    `batch_dim` is the batch axis of the input: 0 for image tensors (B, C, H, W), 1 for the
    time-major transformer tensors (T, B, C). One mask value per sample, shared by every position.
    """

    def __init__(self, drop_prob: float = 0.0, batch_dim: int = 0):
        super().__init__()
        self.drop_prob = drop_prob
        self.batch_dim = batch_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1 - self.drop_prob
        shape = [1] * x.dim()
        shape[self.batch_dim] = x.shape[self.batch_dim]
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
        return x * mask / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


def drop_path_rates(max_rate: float, num: int) -> list:
    """Linearly increasing rates 0 .. max_rate (torch.linspace values, computed on the CPU so that
    models can be built on the meta device)."""
    return torch.linspace(0, max_rate, num, device="cpu").tolist()
