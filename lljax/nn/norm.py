"""Normalisation layers with PyTorch's numerics (NHWC): ``LayerNorm`` over the last axis,
``BatchNorm2d`` with running statistics and the parameter-free ``instance_norm``."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import init as inits
from lljax.nn.buffers import buffer, is_training, set_buffer
from lljax.nn.image_stats import shared_statistic


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


class BatchNorm2d(inits.ParamModule):
  """``torch.nn.BatchNorm2d`` (affine, tracking running statistics) on NHWC input.

  Params ``scale`` (torch ``weight``, init 1) and ``bias`` (init 0); buffers ``running_mean``
  (init 0) and ``running_var`` (init 1), see ``lljax.nn.buffers``.

  * eval (default): ``(x - running_mean) / sqrt(running_var + eps) * scale + bias``;
  * train (the ``"buffers"`` collection mutable): normalises with the batch mean and biased
    variance over (B, H, W) and updates ``running = (1 - momentum) * running + momentum * batch``
    with the *unbiased* batch variance, as torch does. Under a sharded ``jit`` the statistics
    are over the global batch (torch DataParallel: per device).
  """

  num_features: int
  eps: float = 1e-5
  momentum: float = 0.1

  @nn.compact
  def __call__(self, x):
    c = self.num_features
    scale = self.param("scale", inits.ones, (c,))
    bias = self.param("bias", inits.zeros, (c,))
    mean = buffer(self, "running_mean", inits.zeros, (c,))
    var = buffer(self, "running_var", inits.ones, (c,))
    if is_training(self):
      n = x.shape[0] * x.shape[1] * x.shape[2]
      batch_mean = jnp.mean(x, axis=(0, 1, 2))
      batch_var = jnp.mean(jnp.square(x - batch_mean), axis=(0, 1, 2))
      unbiased = batch_var * (n / max(n - 1, 1))
      set_buffer(self, "running_mean", (1 - self.momentum) * mean + self.momentum * batch_mean)
      set_buffer(self, "running_var", (1 - self.momentum) * var + self.momentum * unbiased)
      mean, var = batch_mean, batch_var
    return (x - mean) * (jnp.reciprocal(jnp.sqrt(var + self.eps)) * scale) + bias


def instance_moments(x):
  """Mean and biased variance of NHWC ``x`` over (H, W): two (B, 1, 1, C) arrays."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  return mean, jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)


def instance_norm(x, eps=1e-5, module=None, name="instance_moments"):
  """``torch.nn.InstanceNorm2d(C)`` with its defaults (affine off, no running statistics).

  x: (B, H, W, C). Each image and channel is normalised over (H, W) with its mean and biased
  variance, in train and eval mode alike: ``(x - mean) / sqrt(var + eps)``. (Flax's
  ``nn.InstanceNorm`` defaults differ: eps 1e-6 and learned scale/bias.) Given the calling
  ``module``, the moments are a whole-image statistic (``lljax.nn.image_stats``) under ``name``,
  which the tiles of a photo can share.
  """
  if module is None:
    mean, var = instance_moments(x)
  else:
    mean, var = shared_statistic(module, name, instance_moments, x)
  return (x - mean) * jax.lax.rsqrt(var + eps)
