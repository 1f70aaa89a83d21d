"""LLFlow's conditional encoder (official ``ConEncoder1``): an RRDB network at half resolution.

Input: the 6-channel LQ tensor ``[log-low, histeq]`` (NHWC). Inside, two parameter-free maps
are appended (colour map and noise map), giving 12 channels in the official order
``[LQ (6), colour (3), noise (3)]``. Output: multi-scale features and the learned colour map. Note the official
``LeakyReLU(inplace=True)`` after ``downconv1``: it overwrites the H/4 feature that the
encoder returns, so ``fea_up1`` is the *activated* ``downconv1`` output (``fea_up0`` is not).
The official module also builds ``downconv3``, ``HRconv``, ``conv_last`` and ``awb_para``,
which its forward never uses; they are omitted here (the converter drops them by name).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import Conv2d, kaiming_normal, max_pool2d, resize_nearest, scale_bilinear, upsample_nearest, zeros
from lljax.nn.remat import remat_block


def lrelu(x):
  return jax.nn.leaky_relu(x, 0.2)


def colour_map(raw_low):
  """Chromaticity ``x / (sum_c x + 1e-4)`` of an NHWC image."""
  return raw_low / (jnp.sum(raw_low, axis=-1, keepdims=True) + 1e-4)


def noise_map(colour):
  """max(|d/dH|, |d/dW|) with official central differences 0.5*(x[i+1] - x[i-1]), zero outside."""
  pad_h = jnp.pad(colour, ((0, 0), (1, 1), (0, 0), (0, 0)))
  pad_w = jnp.pad(colour, ((0, 0), (0, 0), (1, 1), (0, 0)))
  grad_h = 0.5 * (pad_h[:, 2:] - pad_h[:, :-2])
  grad_w = 0.5 * (pad_w[:, :, 2:] - pad_w[:, :, :-2])
  return jnp.maximum(jnp.abs(grad_h), jnp.abs(grad_w))


class ResidualDenseBlock(nn.Module):
  """Official ``ResidualDenseBlock_5C``: 5 densely connected 3x3 convs, output * 0.2 + x."""

  nf: int
  gc: int = 32

  @nn.compact
  def __call__(self, x):
    conv = lambda f, name: Conv2d(f, 3, kernel_init=kaiming_normal(0.1), bias_init=zeros, name=name)
    feats = [x]
    for i in range(1, 5):
      feats.append(lrelu(conv(self.gc, f"conv{i}")(jnp.concatenate(feats, axis=-1))))
    out = conv(self.nf, "conv5")(jnp.concatenate(feats, axis=-1))
    return out * 0.2 + x


class RRDB(nn.Module):
  """Residual-in-residual dense block: three dense blocks, output * 0.2 + x."""

  nf: int
  gc: int = 32

  @nn.compact
  def __call__(self, x):
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.nf, self.gc, name=f"RDB{i}")(out)
    return out * 0.2 + x


class ConEncoder1(nn.Module):
  """RRDB conditional encoder.

  Attributes:
    nf: trunk width (64 released, 32 smallNet).
    nb: number of RRDB blocks (24 released, 4 smallNet).
    gc: dense-block growth channels (32, hard-coded officially).
    stack_blocks: indices of trunk blocks whose outputs are returned for stacking.
  """

  nf: int = 64
  nb: int = 24
  gc: int = 32
  stack_blocks: Sequence[int] = (1, 3, 5, 7)

  @nn.compact
  def __call__(self, lq):
    """lq: (B, H, W, 6) -> dict with ``fea_up2`` (H/2), ``fea_up1`` (H/4), ``fea_up0`` (H/8),
    ``color_map`` (B, H, W, 3) in (0, 1), ``block_{i}`` for i in stack_blocks, and the two
    parameter-free input maps ``input_color_map``/``input_noise_map``."""
    colour = colour_map(jnp.exp(lq[..., :3]))
    noise = noise_map(colour)
    conv = lambda name: Conv2d(self.nf, 3, name=name)
    fea = lrelu(conv("conv_first")(jnp.concatenate([lq, colour, noise], axis=-1)))
    fea_head = max_pool2d(conv("conv_second")(fea), 2)

    results = {"input_color_map": colour, "input_noise_map": noise}
    fea = fea_head
    for i in range(self.nb):
      fea = remat_block(RRDB)(self.nf, self.gc, name=f"RRDB_trunk_{i}")(fea)
      if i in self.stack_blocks:
        results[f"block_{i}"] = fea
    fea_down2 = fea_head + conv("trunk_conv")(fea)
    # The official LeakyReLU is in place, so the H/4 feature it returns is the activated one.
    fea_down4 = lrelu(conv("downconv1")(scale_bilinear(fea_down2, 0.5)))
    fea_down8 = conv("downconv2")(scale_bilinear(fea_down4, 0.5))
    colour_logits = Conv2d(3, 1, name="fine_tune_color_map")(upsample_nearest(fea_down2, 2))
    results.update(fea_up2=fea_down2, fea_up1=fea_down4, fea_up0=fea_down8,
                   color_map=jax.nn.sigmoid(colour_logits))
    return results


def stack_features(results, stack_blocks):
  """Official ``rrdbPreprocessing``: append the stacked block outputs, nearest-resized, to each level.

  Returns {"fea_up2", "fea_up1", "fea_up0"} with nf * (1 + len(stack_blocks)) channels each.
  """
  out = {}
  for key in ("fea_up2", "fea_up1", "fea_up0"):
    feature = results[key]
    if stack_blocks:
      stacked = jnp.concatenate([results[f"block_{i}"] for i in stack_blocks], axis=-1)
      stacked = resize_nearest(stacked, feature.shape[1:3])
      feature = jnp.concatenate([feature, stacked], axis=-1)
    out[key] = feature
  return out
