"""``torch.nn.Linear`` on the last axis, with torch's default initialisation."""

from typing import Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from lljax.nn import init as inits
from lljax.nn import precision


class Dense(inits.ParamModule):
  """y = x @ kernel + bias. ``kernel`` is (in, out) — the torch (out, in) weight transposed.

  Attributes:
    features: output width.
    use_bias: whether to add a bias.
    kernel_init / bias_init: default to torch's U(-1/sqrt(in), 1/sqrt(in)).
  """

  features: int
  use_bias: bool = True
  kernel_init: Optional[Callable] = None
  bias_init: Optional[Callable] = None

  @nn.compact
  def __call__(self, x):
    shape = (x.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init or inits.torch_default_kernel, shape)
    dtype = precision.compute_dtype(x)
    y = jnp.matmul(x.astype(dtype), kernel.astype(dtype), precision=precision.dot_precision())
    if self.use_bias:
      bias_init = self.bias_init or inits.torch_default_bias(inits.fan_in(shape))
      y = y + self.param("bias", bias_init, (self.features,)).astype(dtype)
    return y
