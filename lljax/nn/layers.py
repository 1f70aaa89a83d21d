"""Small torch layers with torch's parameters and initialisation: ``PReLU`` and ``Linear``."""

import flax.linen as nn
import jax.numpy as jnp

from lljax.nn import init as inits


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


class Linear(inits.ParamModule):
  """``torch.nn.Linear`` on the last axis. Params ``kernel`` (in, out) = torch weight.T, ``bias``."""

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", inits.torch_default_kernel, (x.shape[-1], self.features))
    y = jnp.matmul(x, kernel.astype(x.dtype))
    if self.use_bias:
      y = y + self.param("bias", inits.torch_default_bias(x.shape[-1]), (self.features,)).astype(x.dtype)
    return y
