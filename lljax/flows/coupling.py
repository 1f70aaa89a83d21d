"""Conditional affine couplings and their conditioning networks (SRFlow/LLFlow family).

Conventions shared by the LLFlow-family couplings:

* ``split_cross``: a conditioning net's output h is split even/odd along channels —
  ``shift = h[..., 0::2]``, ``scale = sigmoid(h[..., 1::2] + 2) + eps`` (torch "cross" split).
* Halves are the first ``C // 2`` channels and the rest.
* Conditioning-net inputs are concatenated as ``[z_half, cond]`` (z first).
"""

import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.flows.actnorm import ActNorm
from lljax.nn import Conv2d
from lljax.nn import init as inits
from lljax.nn.precision import logdet_dtype


def split_cross(h, eps):
  """h: (..., 2C) -> (shift, scale), shift = h[..., 0::2], scale = sigmoid(h[..., 1::2] + 2) + eps."""
  return h[..., 0::2], jax.nn.sigmoid(h[..., 1::2] + 2.0) + eps


def _sum_log(scale):
  return jnp.sum(jnp.log(scale.astype(logdet_dtype(scale))), axis=(1, 2, 3))


class FlowConv2d(nn.Module):
  """Official ``flow.Conv2d``: bias-free conv ('same' zero padding, N(0, 0.05) init) + ActNorm.

  Params: ``kernel`` and ``actnorm/{bias,logs}``. The ActNorm's logdet is not counted.
  """

  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    x = Conv2d(self.features, self.kernel_size, use_bias=False,
               kernel_init=inits.normal(0.05), name="conv")(x)
    return ActNorm(self.features, name="actnorm")(x)


class Conv2dZeros(inits.ParamModule):
  """Official ``Conv2dZeros``: conv + bias, output times ``exp(logscale_factor * logs)``.

  Params ``kernel``, ``bias`` and ``logs`` (C,), all zero-initialised, so a fresh coupling
  starts from shift 0 and scale sigmoid(2) + eps.
  """

  features: int
  kernel_size: int = 3
  logscale_factor: float = 3.0

  @nn.compact
  def __call__(self, x):
    y = Conv2d(self.features, self.kernel_size, kernel_init=inits.zeros,
               bias_init=inits.zeros, name="conv")(x)
    logs = self.param("logs", inits.zeros, (self.features,))
    return y * jnp.exp(logs * self.logscale_factor)


class CouplingNet(nn.Module):
  """Conditioning net: FlowConv2d -> ReLU -> FlowConv2d -> ReLU -> [attention] -> Conv2dZeros.

  Attributes:
    hidden: hidden width.
    features: output channels.
    kernels: kernel sizes of the (first, hidden, last) convs. LLFlow uses (3, 1, 3).
    attention: optional module factory applied before the last conv (UPT-Flow's CBAM).
  """

  hidden: int
  features: int
  kernels: Sequence[int] = (3, 1, 3)
  attention: Optional[Callable[..., nn.Module]] = None

  @nn.compact
  def __call__(self, x):
    k_in, k_hidden, k_out = self.kernels
    x = nn.relu(FlowConv2d(self.hidden, k_in, name="conv_in")(x))
    x = nn.relu(FlowConv2d(self.hidden, k_hidden, name="conv_hidden")(x))
    if self.attention is not None:
      x = self.attention(name="attention")(x)
    return Conv2dZeros(self.features, k_out, name="conv_out")(x)


class CondAffineSeparatedAndCond(nn.Module):
  """LLFlow's coupling: a feature-conditional affine on all channels, then a self-conditional one.

  Encode: ``z = (z + shift_f) * scale_f`` with (shift_f, scale_f) from ``fFeatures(cond)``;
  then ``z2 = (z2 + shift) * scale`` with (shift, scale) from ``fAffine([z1, cond])``.
  The logdet sums log(scale) over both transforms. Decode undoes them in reverse order.

  Attributes:
    num_channels: C of z.
    hidden: conditioning-net width (64 in the released models).
    eps: added to the sigmoid scale (1e-4).
    kernels: conditioning-net kernel sizes.
  """

  num_channels: int
  hidden: int = 64
  eps: float = 1e-4
  kernels: Sequence[int] = (3, 1, 3)

  def setup(self):
    c = self.num_channels
    self.n_keep = c // 2
    net = functools.partial(CouplingNet, self.hidden, kernels=tuple(self.kernels))
    self.fAffine = net(2 * (c - self.n_keep))
    self.fFeatures = net(2 * c)

  def _self_params(self, z1, cond):
    return split_cross(self.fAffine(jnp.concatenate([z1, cond], axis=-1)), self.eps)

  def forward(self, z, cond):
    """z: (B, H, W, C), cond: (B, H, W, C_cond) -> (z', logdet [B])."""
    shift, scale = split_cross(self.fFeatures(cond), self.eps)
    z = (z + shift) * scale
    logdet = _sum_log(scale)
    z1, z2 = z[..., : self.n_keep], z[..., self.n_keep :]
    shift, scale = self._self_params(z1, cond)
    z2 = (z2 + shift) * scale
    return jnp.concatenate([z1, z2], axis=-1), logdet + _sum_log(scale)

  def inverse(self, z, cond):
    z1, z2 = z[..., : self.n_keep], z[..., self.n_keep :]
    shift, scale = self._self_params(z1, cond)
    z = jnp.concatenate([z1, z2 / scale - shift], axis=-1)
    logdet = -_sum_log(scale)
    shift, scale = split_cross(self.fFeatures(cond), self.eps)
    return z / scale - shift, logdet - _sum_log(scale)


class CrossAffineCoupling(nn.Module):
  """UPT-Flow's cross coupling: two rounds of (feature affine, self affine), the second round
  transforming the *first* half from the second.

  Encode, with halves z1 = z[..., :C/2], z2 = z[..., C/2:] taken anew in each round:

  1. ``z = (z + shift) * scale`` from ``fFeatures_1(cond)``;
  2. ``z2 = (z2 + shift) * scale`` from ``fAffine_1([z1, cond])``;
  3. ``z = (z + shift) * scale`` from ``fFeatures_2(cond)``;
  4. ``z1 = (z1 + shift) * scale`` from ``fAffine_2([z2, cond])``.

  The logdet sums log(scale) of all four. Decode undoes them in reverse order.

  Attributes:
    num_channels: C of z (even).
    hidden: conditioning-net width (64 released).
    eps: added to the sigmoid scale (3e-4 in UPT-Flow).
    kernels: conditioning-net kernel sizes; UPT-Flow uses (1, 3, 1).
    attention: module factory applied before each net's last conv (UPT-Flow: ``CBAM``).
    official_inverse_logdet: reproduce the released decode log-det, which subtracts
      log(scale) of step 4 where step 2's belongs (the decoded image is unaffected). Off by
      default, so that the decode log-det is the negative of the encode log-det.
  """

  num_channels: int
  hidden: int = 64
  eps: float = 3e-4
  kernels: Sequence[int] = (1, 3, 1)
  attention: Optional[Callable[..., nn.Module]] = None
  official_inverse_logdet: bool = False

  def setup(self):
    c = self.num_channels
    if c % 2:
      raise ValueError(f"CrossAffineCoupling needs an even channel count, got {c}")
    self.n_half = c // 2
    net = functools.partial(CouplingNet, self.hidden, kernels=tuple(self.kernels), attention=self.attention)
    self.fAffine_1 = net(c)
    self.fAffine_2 = net(c)
    self.fFeatures_1 = net(2 * c)
    self.fFeatures_2 = net(2 * c)

  def _params(self, net, *inputs):
    return split_cross(net(jnp.concatenate(inputs, axis=-1)), self.eps)

  def _halves(self, z):
    return z[..., : self.n_half], z[..., self.n_half :]

  def forward(self, z, cond):
    """z: (B, H, W, C), cond: (B, H, W, C_cond) -> (z', logdet [B])."""
    shift, scale = self._params(self.fFeatures_1, cond)
    z = (z + shift) * scale
    logdet = _sum_log(scale)
    z1, z2 = self._halves(z)
    shift, scale = self._params(self.fAffine_1, z1, cond)
    z2 = (z2 + shift) * scale
    logdet += _sum_log(scale)
    shift, scale = self._params(self.fFeatures_2, cond)
    z = (jnp.concatenate([z1, z2], axis=-1) + shift) * scale
    logdet += _sum_log(scale)
    z1, z2 = self._halves(z)
    shift, scale = self._params(self.fAffine_2, z2, cond)
    z1 = (z1 + shift) * scale
    return jnp.concatenate([z1, z2], axis=-1), logdet + _sum_log(scale)

  def inverse(self, z, cond):
    z1, z2 = self._halves(z)
    shift, scale_2 = self._params(self.fAffine_2, z2, cond)
    z = jnp.concatenate([z1 / scale_2 - shift, z2], axis=-1)
    logdet = -_sum_log(scale_2)
    shift, scale = self._params(self.fFeatures_2, cond)
    z = z / scale - shift
    logdet -= _sum_log(scale)
    z1, z2 = self._halves(z)
    shift, scale = self._params(self.fAffine_1, z1, cond)
    z = jnp.concatenate([z1, z2 / scale - shift], axis=-1)
    logdet -= _sum_log(scale_2 if self.official_inverse_logdet else scale)
    shift, scale = self._params(self.fFeatures_1, cond)
    return z / scale - shift, logdet - _sum_log(scale)
