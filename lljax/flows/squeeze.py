"""Squeeze layer: space-to-channel in torch's channel order; volume preserving."""

import flax.linen as nn
import jax.numpy as jnp

from lljax.nn import squeeze2d, unsqueeze2d


class Squeeze(nn.Module):
  """(B, H, W, C) <-> (B, H/f, W/f, C*f*f); logdet 0. No parameters."""

  factor: int = 2

  def forward(self, x, cond=None):
    del cond
    return squeeze2d(x, self.factor), jnp.zeros((x.shape[0],), x.dtype)

  def inverse(self, y, cond=None):
    del cond
    return unsqueeze2d(y, self.factor), jnp.zeros((y.shape[0],), y.dtype)
