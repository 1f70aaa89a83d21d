"""FCL-GAN's "LED" generator: a light 3-scale encoder-decoder (NHWC), with a choice of norm.

Structure (FCL-GAN ``src/models.py`` ``Generator``; ``b`` = base width, ``n`` = ``num_res``)::

  feat_extract_0  conv3x3 3->b            + norm + ReLU      -> Encoder_0 (n ResBlocks) = res1
  feat_extract_1  conv3x3/2 b->2b         + norm + ReLU      -> Encoder_1               = res2
  feat_extract_2  conv3x3/2 2b->4b        + norm + ReLU      -> Encoder_2 -> Decoder_0
  feat_extract_3  convT4x4/2 4b->2b       + norm + ReLU ; concat [., res2] ; Convs_0 1x1 4b->2b
                                                            -> Decoder_1
  feat_extract_4  convT4x4/2 2b->b        + norm + ReLU ; concat [., res1] ; Convs_1 1x1 2b->b
                                                            -> Decoder_2
  feat_extract_5  conv3x3 b->3 (bias, no norm)               -> z
  output          act(z + x) with the global shortcut, act(z) without

ResBlock = x + [conv3x3 + norm + ReLU, conv3x3 + norm](x). Every conv followed by a norm has no
bias (as FCL-GAN's ``BasicConv``); all padding is zero padding; H and W must be multiples of 4.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import BatchNorm2d, Conv2d, ConvTranspose2d, ParamModule, instance_norm
from lljax.nn.remat import remat_block

NORMS = ("batch", "instance", "none")
OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "none")


class BasicConv(ParamModule):
  """Conv (or 4x4/2 transposed conv) + optional norm + optional ReLU (FCL-GAN's ``BasicConv``)."""

  features: int
  kernel_size: int = 3
  stride: int = 1
  norm: str = "batch"
  relu: bool = True
  transpose: bool = False

  @nn.compact
  def __call__(self, x):
    use_bias = self.norm == "none"
    if self.transpose:
      x = ConvTranspose2d(self.features, self.kernel_size, self.stride, padding=self.kernel_size // 2 - 1,
                          use_bias=use_bias, name="conv")(x)
    else:
      x = Conv2d(self.features, self.kernel_size, self.stride, use_bias=use_bias, name="conv")(x)
    if self.norm == "batch":
      x = BatchNorm2d(self.features, name="bn")(x)
    elif self.norm == "instance":
      x = instance_norm(x, module=self)
    return nn.relu(x) if self.relu else x


class ResBlock(ParamModule):
  features: int
  norm: str = "batch"

  @nn.compact
  def __call__(self, x):
    y = BasicConv(self.features, norm=self.norm, name="main_0")(x)
    return BasicConv(self.features, norm=self.norm, relu=False, name="main_1")(y) + x


class ResStack(ParamModule):
  """FCL-GAN's ``EBlock``/``DBlock``: ``num_res`` ResBlocks (``layers_i``)."""

  features: int
  num_res: int
  norm: str = "batch"

  @nn.compact
  def __call__(self, x):
    for i in range(self.num_res):
      x = remat_block(ResBlock)(self.features, self.norm, name=f"layers_{i}")(x)
    return x


class LEDGenerator(ParamModule):
  """The LED encoder-decoder. ``(B, H, W, 3) -> (B, H, W, 3)``, H and W multiples of 4.

  Attributes:
    base: channels of the first scale (b, 2b, 4b); FCL-GAN uses 24.
    num_res: ResBlocks per encoder/decoder stage; FCL-GAN's BUM uses 6.
    norm: "batch" (FCL-GAN; torch BatchNorm2d), "instance" (InstanceNorm2d, affine off,
      eps 1e-5) or "none".
    shortcut: add the input to the last conv's output before the activation.
    out_act: "sigmoid" (FCL-GAN, [0, 1] data), "tanh" ([-1, 1] data) or "none".
  """

  base: int = 24
  num_res: int = 6
  norm: str = "batch"
  shortcut: bool = True
  out_act: str = "sigmoid"

  @nn.compact
  def __call__(self, x):
    if self.norm not in NORMS or self.out_act not in OUTPUT_ACTIVATIONS:
      raise ValueError(f"norm must be one of {NORMS} and out_act one of {OUTPUT_ACTIVATIONS}, "
                       f"got {self.norm!r}, {self.out_act!r}")
    if x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"LED generator needs H and W divisible by 4, got {x.shape[1]}x{x.shape[2]}")
    b, n, norm = self.base, self.num_res, self.norm
    conv = lambda f, i, **kw: BasicConv(f, norm=norm, name=f"feat_extract_{i}", **kw)
    stack = lambda f, name: ResStack(f, n, norm, name=name)
    res1 = stack(b, "Encoder_0")(conv(b, 0)(x))
    res2 = stack(2 * b, "Encoder_1")(conv(2 * b, 1, stride=2)(res1))
    z = stack(4 * b, "Encoder_2")(conv(4 * b, 2, stride=2)(res2))
    z = stack(4 * b, "Decoder_0")(z)
    z = conv(2 * b, 3, kernel_size=4, stride=2, transpose=True)(z)
    z = BasicConv(2 * b, 1, norm=norm, name="Convs_0")(jnp.concatenate([z, res2], axis=-1))
    z = stack(2 * b, "Decoder_1")(z)
    z = conv(b, 4, kernel_size=4, stride=2, transpose=True)(z)
    z = BasicConv(b, 1, norm=norm, name="Convs_1")(jnp.concatenate([z, res1], axis=-1))
    z = stack(b, "Decoder_2")(z)
    z = BasicConv(3, norm="none", relu=False, name="feat_extract_5")(z)
    if self.shortcut:
      z = z + x
    if self.out_act == "sigmoid":
      return jax.nn.sigmoid(z)
    return jnp.tanh(z) if self.out_act == "tanh" else z


class PatchDiscriminator(ParamModule):
  """FCL-GAN's PatchGAN discriminator: ``(B, H, W, 3) -> (B, H/16, W/16, 1)`` logits (LSGAN: no
  sigmoid), for H and W multiples of 16.

  Four conv4x4/2 (pad 1, bias) with widths base * (1, 2, 4, 8), InstanceNorm (affine off) after
  all but the first, LeakyReLU 0.2; then ``ZeroPad2d((1, 0, 1, 0))`` (left and top only) and a
  conv4x4 (pad 1) to one channel. Param names follow the torch ``model.<index>`` keys.
  """

  base: int = 24

  @nn.compact
  def __call__(self, x):
    for i, index in enumerate((0, 2, 5, 8)):
      x = Conv2d(self.base * 2**i, 4, 2, padding=1, name=f"model_{index}")(x)
      if i:
        x = instance_norm(x)
      x = nn.leaky_relu(x, 0.2)
    x = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
    return Conv2d(1, 4, 1, padding=1, name="model_12")(x)
