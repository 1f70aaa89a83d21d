"""Normalisation layers with PyTorch's numerics (NHWC: normalised over the last axis)."""

import flax.linen as nn
import jax.numpy as jnp

from lljax.nn import init as inits


class LayerNorm(inits.ParamModule):
  """``torch.nn.LayerNorm(C)`` over the last axis, also Restormer's "WithBias" LayerNorm.

  ``(x - mean) / sqrt(var + eps) * scale + bias`` with the population variance. The default
  eps is torch's 1e-5 (Flax's own ``nn.LayerNorm`` uses 1e-6). Params ``scale`` and ``bias``
  (C,), initialised to ones and zeros as in torch.
  """

  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", inits.ones, (c,))
    bias = self.param("bias", inits.zeros, (c,))
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + self.eps) * scale + bias
