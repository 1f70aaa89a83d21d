"""Invertible 1x1 convolution (Glow) with a plain C x C weight, as LLFlow releases it."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn.init import Orthogonal, ParamModule
from lljax.nn.precision import logdet_dtype

_HIGHEST = jax.lax.Precision.HIGHEST


def stable_inverse(w):
  """W^-1 in float32, refined by one Newton step X <- X + X (I - W X).

  The official code inverts in float64; float32 LU followed by one refinement step recovers
  close to float64 accuracy for the well-conditioned weights of a trained flow, and works on
  TPUs, which lack float64.
  """
  x = jnp.linalg.inv(w)
  residual = jnp.eye(w.shape[0], dtype=w.dtype) - jnp.matmul(w, x, precision=_HIGHEST)
  return x + jnp.matmul(x, residual, precision=_HIGHEST)


def _apply_1x1(x, w):
  # out[..., c] = sum_d W[c, d] x[..., d], the torch conv with weight W.view(C, C, 1, 1).
  return jnp.einsum("bhwd,cd->bhwc", x, w.astype(x.dtype), precision=_HIGHEST)


class InvConv1x1(ParamModule):
  """y = W x per pixel; logdet = log|det W| * H * W. Param ``weight`` (C, C), torch layout."""

  num_channels: int

  def setup(self):
    self.weight = self.param("weight", Orthogonal(), (self.num_channels, self.num_channels))

  def _logdet(self, x):
    _, logabsdet = jnp.linalg.slogdet(self.weight.astype(logdet_dtype(self.weight)))
    return jnp.broadcast_to(logabsdet * x.shape[1] * x.shape[2], (x.shape[0],)).astype(logdet_dtype(x))

  def forward(self, x, cond=None):
    del cond
    return _apply_1x1(x, self.weight), self._logdet(x)

  def inverse(self, y, cond=None):
    del cond
    return _apply_1x1(y, stable_inverse(self.weight)), -self._logdet(y)
