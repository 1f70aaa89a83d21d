"""LEDNet's U-Net building blocks as SSFlow's ``models/ns_model2.py`` uses them (NHWC).

Names of submodules follow the official attributes, with torch's ``nn.Sequential`` indices
appended by ``_`` (torch ``body1.0`` -> ``body1_0``), so the converter's table reads like the
checkpoint. All convs use torch's default initialisation; PReLUs have one slope, init 0.25.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import Conv2d, ConvTranspose2d, PReLU, adaptive_avg_pool2d, resize_bilinear, resize_bilinear_dense
from lljax.nn import init as inits
from lljax.nn import precision
from lljax.nn.buffers import buffer
from lljax.nn.padding import pad2d

@dataclasses.dataclass(frozen=True)
class BinomialFilter(inits.Initializer):
  """(3, 3, 1, C) depthwise kernels, each [1, 2, 1]^T [1, 2, 1] / 16."""

  def sample(self, draw, shape):
    taps = draw.xp.asarray([1.0, 2.0, 1.0])
    kernel = draw.xp.outer(taps, taps) / 16.0
    return draw.xp.broadcast_to(kernel[:, :, None, None], shape) + draw.xp.zeros(shape)


class BlurPool(inits.ParamModule):
  """Official ``Downsample(filt_size=3, stride=2)``: reflect pad 1, depthwise 3x3 blur, stride 2.

  x: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), C). The filter is the torch buffer ``filt``
  ((C, 1, 3, 3), here HWIO (3, 3, 1, C)), [1,2,1]x[1,2,1]/16 for every channel when built; it
  is a buffer (``lljax.nn.buffers``), taken from the checkpoint when converting.
  """

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    kernel = buffer(self, "filt", BinomialFilter(), (3, 3, 1, c))
    x = pad2d(x, 1, "reflect")
    return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (2, 2), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c,
                                        precision=precision.dot_precision())


def _conv(features, k, name, bias=True):
  return Conv2d(features, k, use_bias=bias, name=name)


class ResidualDownSample(nn.Module):
  """top: 1x1, PReLU, 3x3, PReLU, blur-pool, 1x1 -> out; bot: blur-pool, 1x1 -> out. No biases."""

  features: int

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    top = PReLU(name="top_1")(_conv(c, 1, "top_0", bias=False)(x))
    top = PReLU(name="top_3")(_conv(c, 3, "top_2", bias=False)(top))
    top = _conv(self.features, 1, "top_5", bias=False)(BlurPool(name="top_4")(top))
    bot = _conv(self.features, 1, "bot_1", bias=False)(BlurPool(name="bot_0")(x))
    return top + bot


class ResidualUpSample(nn.Module):
  """top: 1x1, PReLU, 3x3 transposed conv (stride 2, exact 2x), PReLU, 1x1 -> out;
  bot: bilinear 2x (align_corners=False), 1x1 -> out. No biases."""

  features: int

  @nn.compact
  def __call__(self, x):
    h, w, c = x.shape[1:]
    top = PReLU(name="top_1")(_conv(c, 1, "top_0", bias=False)(x))
    top = ConvTranspose2d(c, 3, stride=2, padding=1, output_padding=1, use_bias=False, name="top_2")(top)
    top = _conv(self.features, 1, "top_4", bias=False)(PReLU(name="top_3")(top))
    bot = _conv(self.features, 1, "bot_1", bias=False)(resize_bilinear(x, (2 * h, 2 * w), align_corners=False))
    return top + bot


class BasicBlockE(nn.Module):
  """Encoder block: x + body1(x) -> body2 -> optional ResidualDownSample to ``features``.

  body1 = conv3x3, PReLU, conv3x3; body2 = conv3x3, PReLU (all with bias, width unchanged).
  """

  features: int
  down: bool = False

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    res = _conv(c, 3, "body1_2")(PReLU(name="body1_1")(_conv(c, 3, "body1_0")(x)))
    out = PReLU(name="body2_1")(_conv(c, 3, "body2_0")(res + x))
    if self.down:
      out = ResidualDownSample(self.features, name="reshape_conv")(out)
    return out


class BasicBlockD2Res(nn.Module):
  """Decoder block: optional ResidualUpSample to ``features``, then two residual units
  ``x + conv3x3(PReLU(conv3x3(x)))`` (official ``BasicBlock_D_2Res``)."""

  features: int
  up: bool = False

  @nn.compact
  def __call__(self, x):
    if self.up:
      x = ResidualUpSample(self.features, name="reshape_conv")(x)
    c = self.features
    for body in ("body1", "body2"):
      x = x + _conv(c, 3, f"{body}_2")(PReLU(name=f"{body}_1")(_conv(c, 3, f"{body}_0")(x)))
    return x


class PPM(nn.Module):
  """Pyramid pooling: per bin b, adaptive-avg-pool to b x b, 1x1 conv to ``reduction``, PReLU,
  bilinear back to H x W with ``align_corners=True``; concat [x, branches], 3x3 conv back to C,
  PReLU. Convs without bias."""

  reduction: int
  bins: tuple = (1, 2, 3, 6)

  @nn.compact
  def __call__(self, x):
    h, w, c = x.shape[1:]
    out = [x]
    for i, b in enumerate(self.bins):
      y = _conv(self.reduction, 1, f"features_{i}_1", bias=False)(adaptive_avg_pool2d(x, b))
      y = PReLU(name=f"features_{i}_2")(y)
      out.append(resize_bilinear_dense(y, (h, w), align_corners=True))
    fused = _conv(c, 3, "fuse_0", bias=False)(jnp.concatenate(out, axis=-1))
    return PReLU(name="fuse_1")(fused)


class KernelPredictor(nn.Module):
  """FAC kernel branch (official ``conv_fac_k*``): [conv3x3 + ReLU] x 3, conv1x1 to C * k * k."""

  kernel_size: int = 5

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    for i in (0, 2, 4):
      x = nn.relu(_conv(c, 3, f"layers_{i}")(x))
    return _conv(c * self.kernel_size**2, 1, "layers_6")(x)
