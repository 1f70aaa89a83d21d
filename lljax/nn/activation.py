"""Activations with PyTorch's default numerics and parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import init as inits


def gelu(x):
  """``torch.nn.GELU()`` / ``F.gelu``: the exact erf form (``jax.nn.gelu`` defaults to tanh)."""
  return jax.nn.gelu(x, approximate=False)


class PReLU(inits.ParamModule):
  """``torch.nn.PReLU``: max(0, x) + a * min(0, x). Param ``weight`` (num_parameters,), init 0.25.

  With ``num_parameters`` > 1 there is one slope per channel (last axis); torch's default is a
  single slope shared by all channels (Flax's ``nn.PReLU`` initialises it to 0.01 instead).
  """

  num_parameters: int = 1
  init_value: float = 0.25

  @nn.compact
  def __call__(self, x):
    a = self.param("weight", inits.Constant(self.init_value), (self.num_parameters,)).astype(x.dtype)
    return jnp.where(x >= 0, x, a * x)
