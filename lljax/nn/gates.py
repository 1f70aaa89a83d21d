"""Attention gates that rescale a feature map: CBAM (channel + spatial) and ECA. NHWC.

* CBAM (Woo et al., 2018) as UPT-Flow's coupling nets use it: the channel gate passes the
  global average- and max-pooled features through one shared MLP (Linear C -> C/r, ReLU,
  Linear C/r -> C), sums the two and scales by their sigmoid; the spatial gate convolves the
  per-pixel [max over C, mean over C] (that order) with a bias-free 7x7 conv and scales by its
  sigmoid; CBAM returns ``gated + input`` (UPT-Flow's residual variant).
* ECA (Wang et al., 2020): global average pool, a bias-free 3-tap conv along the channel axis
  (zero padding), sigmoid, channel-wise scale.

The channel gates pool over the whole image: their (B, C) gates are whole-image statistics
(``lljax.nn.image_stats``) that the tiles of a photo can share.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import init as inits
from lljax.nn.conv import Conv2d
from lljax.nn.image_stats import shared_statistic
from lljax.nn.linear import Dense


class ChannelGate(nn.Module):
  """x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x))). Submodules ``fc1`` (C -> C/r), ``fc2``."""

  reduction: int = 16

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    fc1, fc2 = Dense(c // self.reduction, name="fc1"), Dense(c, name="fc2")
    mlp = lambda v: fc2(nn.relu(fc1(v)))
    gate = lambda v: jax.nn.sigmoid(mlp(jnp.mean(v, axis=(1, 2))) + mlp(jnp.max(v, axis=(1, 2))))
    return x * shared_statistic(self, "gate", gate, x)[:, None, None, :]


class SpatialGate(nn.Module):
  """x * sigmoid(conv7x7([max_c x, mean_c x])). Submodule ``conv`` (2 -> 1, no bias)."""

  kernel_size: int = 7

  @nn.compact
  def __call__(self, x):
    pooled = jnp.concatenate([jnp.max(x, axis=-1, keepdims=True), jnp.mean(x, axis=-1, keepdims=True)], -1)
    logits = Conv2d(1, self.kernel_size, use_bias=False, name="conv")(pooled)
    return x * jax.nn.sigmoid(logits)


class CBAM(nn.Module):
  """SpatialGate(ChannelGate(x)) + x. Submodules ``channel_gate`` and ``spatial_gate``."""

  reduction: int = 16

  @nn.compact
  def __call__(self, x):
    gated = ChannelGate(self.reduction, name="channel_gate")(x)
    return SpatialGate(name="spatial_gate")(gated) + x


class ECA(inits.ParamModule):
  """Efficient channel attention. Param ``kernel`` (k, 1, 1): torch's Conv1d(1, 1, k) weight
  (1, 1, k) transposed; y[c] = sum_j kernel[j] * mean(x)[c + j - k // 2] (zeros outside)."""

  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", inits.torch_default_kernel, (k, 1, 1))

    def gate(v):
      pooled = jnp.mean(v, axis=(1, 2))  # (B, C)
      padded = jnp.pad(pooled, ((0, 0), (k // 2, k // 2)))
      c = pooled.shape[-1]
      return jax.nn.sigmoid(sum(kernel[j, 0, 0] * padded[:, j : j + c] for j in range(k)))

    return x * shared_statistic(self, "gate", gate, x)[:, None, None, :]
