"""INFWIDE (Zhang et al., IEEE TIP 2023): non-blind deblurring of noisy low-light photos.

Blurry noisy image + known PSF -> sharp image, through two Wiener deconvolutions that are not
learned (``lljax.nn.fft.wiener_deconv``):

* feature branch: ``FeatModule1`` (conv + 3 ResBlocks) -> Wiener deconvolution of every feature
  channel -> ``FSRefineModule`` (in-block, 2-level refine U-Net, out-blocks) -> 3-channel x2;
* image branch: the per-channel noise-to-signal map (``image_nsr``, constant planes) is
  concatenated to the image and ``DenoiseUnet`` (KAIR's ResUNet, bias-free) predicts the clean
  unsaturated blurry image y, which is Wiener-deconvolved -> x1;
* ``MergeRefineModule`` (XRF, cross-residual fusion) fuses x1 and x2 at half and full scale with
  one shared two-branch U-Net -> (out_half, out_full).

Module, parameter and Sequential-index names follow ``zhihongz/INFWIDE`` (``srcs/model/``) so
the converter maps keys by rule: a torch ``Conv`` wrapper ``name.i.body.0`` is our Conv2d
``name_i``, a ``ResBlock`` ``name.i`` our ``ResBlock`` ``name_i`` with ``conv0``/``conv1``.
All convs are 5x5 (padding 2) with bias except the ResUNet's (3x3, 2x2 stride-2 down, 2x2
stride-2 transposed up, no bias); no normalisation layers; ReLU everywhere. Initialisation is
torch's default (the official code does not override it).

Arrays are NHWC float in [0, 1]; PSFs are (B, kh, kw), normalised to unit sum inside. Outputs
are not clamped (the official tester scores the raw ``out_full``). Sizes: any H, W >= 2 (the
median filter reflects); the ResUNet replicate-pads to a multiple of 8 internally.

Differences from the official code (none changes a value beyond float32 rounding):

* the Wiener filters use real FFTs (``rfft2``/``irfft2``) where the official code takes the real
  part of a full complex inverse FFT: the same numbers, half the memory;
* the 3x3 median is a min/max selection network with a custom derivative (that of the selected
  neighbour, as torch's ``median``; on exact ties torch may pick another of the equal values);
* ``wiener_channels_at_once`` optionally deconvolves the feature planes sequentially (lower peak
  memory, same values); the official code loops over channels in Python;
* the NSR pixel-count quirk is kept by default (``nsr_count_quirk``) and can be switched off;
* ``enhance`` runs the network on the image as given (the synthetic-test path). The official
  real-capture path (``status=realexp``: input / 1.2 and symmetric padding by half the image
  size on each side) is not applied automatically: see ``real_capture_input``/``real_capture_crop``
  in ``lljax.models.infwide``.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.nn import Conv2d, ConvTranspose2d, pad2d, resize_bilinear
from lljax.nn.fft import image_nsr, wiener_deconv, wiener_nsrs
from lljax.nn.image_stats import shared_statistic
from lljax.nn.remat import remat_block

relu = nn.relu


class ResBlock(nn.Module):
  """x + conv1(relu(conv0(x))), same width (INFWIDE's and KAIR's ResBlock)."""

  kernel_size: int = 5
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    y = Conv2d(c, self.kernel_size, use_bias=self.use_bias, name="conv0")(x)
    y = Conv2d(c, self.kernel_size, use_bias=self.use_bias, name="conv1")(relu(y))
    return x + y


def conv_res_stack(x, features, prefix, n_res=3, kernel_size=5, stride=1):
  """Conv (stride) + ReLU, then ``n_res`` ResBlocks, named ``prefix_0 ... prefix_n``.

  Called inside a parent's compact method: the layers become the parent's children, as the
  entries of a torch Sequential attribute do.
  """
  x = relu(Conv2d(features, kernel_size, stride=stride, name=f"{prefix}_0")(x))
  for i in range(1, n_res + 1):
    x = remat_block(ResBlock)(kernel_size, name=f"{prefix}_{i}")(x)
  return x


def _pad_amounts(diff):
  """torch F.pad amounts of ``pad2same_size`` for a size difference (before, after)."""
  return (diff // 2, diff - diff // 2)


def _pad(x, top_bottom, left_right):
  return jnp.pad(x, ((0, 0), top_bottom, left_right, (0, 0)))


def pad2same_size(x1, x2):
  """Zero-pads the smaller of two NHWC maps to the larger's size (centred, extra after)."""
  dy, dx = x2.shape[1] - x1.shape[1], x2.shape[2] - x1.shape[2]
  if dy == 0 and dx == 0:
    return x1, x2
  if dx >= 0 and dy >= 0:
    return _pad(x1, _pad_amounts(dy), _pad_amounts(dx)), x2
  if dx < 0 and dy < 0:  # torch: (-d // 2, -d + d // 2), as in the official code
    return x1, _pad(x2, (-dy // 2, -dy + dy // 2), (-dx // 2, -dx + dx // 2))
  if dx >= 0:  # dy < 0
    return _pad(x1, (0, 0), _pad_amounts(dx)), _pad(x2, (-dy // 2, -dy + dy // 2), (0, 0))
  return _pad(x1, _pad_amounts(dy), (0, 0)), _pad(x2, (0, 0), (-dx // 2, -dx + dx // 2))


def _fit_axis(x, axis, size):
  diff = size - x.shape[axis]
  if diff > 0:
    pads = [(0, 0)] * x.ndim
    pads[axis] = _pad_amounts(diff)
    return jnp.pad(x, pads)
  if diff < 0:
    start = -diff // 2
    return jax.lax.slice_in_dim(x, start, start + size, axis=axis)
  return x


def pad2size(x, size):
  """Centre zero-pads or centre-crops NHWC x to ``size`` = (H, W) (official ``pad2size``)."""
  return _fit_axis(_fit_axis(x, 1, size[0]), 2, size[1])


class FeatModule(nn.Module):
  """Feature extractor: 5x5 conv 3 -> n_feats + ReLU, 3 ResBlocks."""

  n_feats: int = 16

  @nn.compact
  def __call__(self, x):
    return conv_res_stack(x, self.n_feats, "FeatureBlock")


class InBlock(nn.Module):
  n_feats: int = 32

  @nn.compact
  def __call__(self, x):
    return conv_res_stack(x, self.n_feats, "inBlock")


class OutBlockA(nn.Module):
  n_resblock: int = 3

  @nn.compact
  def __call__(self, x):
    for i in range(self.n_resblock):
      x = ResBlock(name=f"outLayers_{i}")(x)
    return x


class OutBlockB(nn.Module):
  """ResBlock, 5x5 conv (no activation), 5x5 conv to ``n_out`` channels."""

  n_out: int = 3

  @nn.compact
  def __call__(self, x):
    x = ResBlock(name="outLayers_0")(x)
    x = Conv2d(x.shape[-1], 5, name="outLayers_1")(x)
    return Conv2d(self.n_out, 5, name="outLayers_2")(x)


def _deconv(x, features, name):
  """3x3 stride-2 transposed conv (padding 1, output padding 1) + ReLU: exactly 2x the size."""
  return relu(ConvTranspose2d(features, 3, stride=2, padding=1, output_padding=1, name=name)(x))


class RefineUnet(nn.Module):
  """Two-level residual U-Net of the feature-space refine module."""

  n_resblock: int = 3

  @nn.compact
  def __call__(self, x):
    n = x.shape[-1]
    h, w = x.shape[1:3]
    e1 = conv_res_stack(x, 2 * n, "encoder_first", stride=2)
    e2 = conv_res_stack(e1, 4 * n, "encoder_second", stride=2)
    d2 = e2
    for i in range(self.n_resblock):
      d2 = ResBlock(name=f"decoder_second_{i}")(d2)
    d2 = _deconv(d2, 2 * n, f"decoder_second_{self.n_resblock}")
    e1, d2 = pad2same_size(e1, d2)
    d1 = e1 + d2
    for i in range(self.n_resblock):
      d1 = ResBlock(name=f"decoder_first_{i}")(d1)
    d1 = _deconv(d1, n, f"decoder_first_{self.n_resblock}")
    return pad2size(x, (h, w)) + pad2size(d1, (h, w))


class FSRModule(nn.Module):
  """Feature-space refine: in-block, refine U-Net, out-blocks -> ``n_colors`` channels."""

  n_colors: int = 3
  n_resblock: int = 3
  n_feats: int = 32

  @nn.compact
  def __call__(self, x):
    x = InBlock(self.n_feats, name="InBlock2")(x)
    x = RefineUnet(self.n_resblock, name="RefineUnet")(x)
    x = OutBlockA(self.n_resblock, name="OutBlock_a")(x)
    return OutBlockB(self.n_colors, name="OutBlock_b")(x)


class XResBlock(nn.Module):
  """Cross-residual down (stride-2 5x5 conv) or up (3x3 stride-2 transposed conv) block.

  Each branch: (n_conv - 2) conv + ReLU, one linear conv, plus the mean of the two inputs,
  ReLU, resampling conv + ReLU.
  """

  n_out: int
  n_conv: int = 3
  up: bool = False

  @nn.compact
  def __call__(self, x1, x2):
    n = x1.shape[-1]
    mean = (x1 + x2) / 2
    outs = []
    for branch, x, res_name in (("conv1", x1, "12"), ("conv2", x2, "21")):
      for i in range(self.n_conv - 2):
        x = relu(Conv2d(n, 5, name=f"{branch}_{i}")(x))
      x = Conv2d(n, 5, name=f"{branch}_{self.n_conv - 2}")(x)
      x = relu(x + mean)
      if self.up:
        x = _deconv(x, self.n_out, f"deconv{res_name}_1")
      else:
        x = relu(Conv2d(self.n_out, 5, stride=2, name=f"conv{res_name}_1")(x))
      outs.append(x)
    return tuple(outs)


class XRFUnet(nn.Module):
  n_conv: int = 3

  @nn.compact
  def __call__(self, in1, in2):
    n = in1.shape[-1]
    h, w = in1.shape[1:3]
    block = remat_block(XResBlock)
    e11, e12 = block(2 * n, self.n_conv, name="XRD1")(in1, in2)
    e21, e22 = block(4 * n, self.n_conv, name="XRD2")(e11, e12)
    d21, d22 = block(2 * n, self.n_conv, up=True, name="XRU2")(e21, e22)
    e11, d21 = pad2same_size(e11, d21)
    e12, d22 = pad2same_size(e12, d22)
    d11, d12 = block(n, self.n_conv, up=True, name="XRU1")(e11 + d21, e12 + d22)
    return in1 + pad2size(d11, (h, w)), in2 + pad2size(d12, (h, w))


def half_size(h, w):
  """(round(H / 2), round(W / 2)) with Python's round-half-to-even, as the official code."""
  return int(round(h / 2)), int(round(w / 2))


class XRFModule(nn.Module):
  """Two-scale cross-residual fusion of the image-branch (x1) and feature-branch (x2) estimates."""

  n_colors: int = 3
  n_resblock: int = 3
  n_conv: int = 3
  n_feats: int = 32

  @nn.compact
  def __call__(self, x1, x2):
    h, w = x2.shape[1:3]
    unet = XRFUnet(self.n_conv, name="XRFUnet")
    out_a1 = OutBlockA(self.n_resblock, name="OutBlock_a1")
    out_a2 = OutBlockA(self.n_resblock, name="OutBlock_a2")
    out_b = OutBlockB(self.n_colors, name="OutBlock_b")

    small = half_size(h, w)
    y11, y12 = unet(InBlock(self.n_feats, name="InBlock11")(resize_bilinear(x1, small)),
                    InBlock(self.n_feats, name="InBlock12")(resize_bilinear(x2, small)))
    a11, a12 = out_a1(y11), out_a2(y12)
    out_half = out_b(jnp.concatenate([a11, a12], -1))

    in21 = InBlock(self.n_feats, name="InBlock21")(jnp.concatenate([resize_bilinear(a11, (h, w)), x1], -1))
    in22 = InBlock(self.n_feats, name="InBlock22")(jnp.concatenate([resize_bilinear(a12, (h, w)), x2], -1))
    y21, y22 = unet(in21, in22)
    out_full = out_b(jnp.concatenate([out_a1(y21), out_a2(y22)], -1))
    return out_half, out_full


class ResUNet(nn.Module):
  """KAIR's ResUNet denoiser (USRNet): 4 levels, ``nb`` bias-free ResBlocks per level, 2x2
  stride-2 conv down / transposed conv up, additive skips; replicate-pads H and W to a multiple
  of 8 at the bottom/right and crops back."""

  out_nc: int = 3
  nc: Sequence[int] = (32, 64, 128, 256)
  nb: int = 2

  @nn.compact
  def __call__(self, x):
    h, w = x.shape[1:3]
    x = pad2d(x, (0, -h % 8, 0, -w % 8), "replicate")
    nc, nb = self.nc, self.nb
    res = lambda y, name: ResBlock(3, use_bias=False, name=name)(y)
    x1 = Conv2d(nc[0], 3, use_bias=False, name="m_head")(x)
    skips = [x1]
    y = x1
    for level in range(3):
      for i in range(nb):
        y = res(y, f"m_down{level + 1}_{i}")
      y = Conv2d(nc[level + 1], 2, stride=2, padding=0, use_bias=False, name=f"m_down{level + 1}_{nb}")(y)
      skips.append(y)
    for i in range(nb):
      y = res(y, f"m_body_{i}")
    for level in (3, 2, 1):
      y = ConvTranspose2d(nc[level - 1], 2, stride=2, use_bias=False, name=f"m_up{level}_0")(y + skips[level])
      for i in range(nb):
        y = res(y, f"m_up{level}_{i + 1}")
    y = Conv2d(self.out_nc, 3, use_bias=False, name="m_tail")(y + skips[0])
    return y[:, :h, :w]


class INFWIDE(nn.Module):
  """The full network.

  Attributes:
    n_colors: image channels (3).
    feat: FeatModule1 width (16).
    unet: ResUNet widths (32, 64, 128, 256); unet_nb: ResBlocks per level (2).
    fsr_feats / fsr_resblocks: FSRefineModule width (32) and decoder/out ResBlocks (3).
    xrf_feats / xrf_resblocks / xrf_convs: MergeRefineModule width (32), out ResBlocks (3),
      convs per cross-residual branch (3).
    nsr_count_quirk: the official feature/image Wiener NSR divides by height^2 instead of the
      pixel count of the padded map (``lljax.nn.fft.wiener_nsr``); the released weights were
      trained with it, so it is on by default. False uses H * W.
    wiener_channels_at_once: None deconvolves all channels of a branch at once; an int bounds
      how many feature planes are in flight (same values, lower peak memory).
  """

  n_colors: int = 3
  feat: int = 16
  unet: Sequence[int] = (32, 64, 128, 256)
  unet_nb: int = 2
  fsr_feats: int = 32
  fsr_resblocks: int = 3
  xrf_feats: int = 32
  xrf_resblocks: int = 3
  xrf_convs: int = 3
  nsr_count_quirk: bool = True
  wiener_channels_at_once: int | None = None

  def setup(self):
    self.FeatModule1 = FeatModule(self.feat)
    self.DenoiseUnet = ResUNet(self.n_colors, tuple(self.unet), self.unet_nb)
    self.FSRefineModule = FSRModule(self.n_colors, self.fsr_resblocks, self.fsr_feats)
    self.MergeRefineModule = XRFModule(self.n_colors, self.xrf_resblocks, self.xrf_convs, self.xrf_feats)

  def _wiener(self, x, kernel, name):
    """Wiener deconvolution with each channel's NSR, a whole-image statistic (``name``)."""
    nsr = shared_statistic(self, name, wiener_nsrs, x, kernel.shape[-2], self.nsr_count_quirk,
                           self.wiener_channels_at_once)
    return wiener_deconv(x, kernel, self.nsr_count_quirk, self.wiener_channels_at_once, nsr=nsr)

  def intermediates(self, low, kernel):
    """Every intermediate of the official forward, for parity tests: dict of NHWC arrays."""
    feat = self.FeatModule1(low)
    feat_wd = self._wiener(feat, kernel, "feature_nsr")
    feat_out = self.FSRefineModule(feat_wd)
    nsr = shared_statistic(self, "image_nsr", image_nsr, low)  # (B, C)
    planes = jnp.broadcast_to(nsr[:, None, None, :], low.shape)
    denoised = self.DenoiseUnet(jnp.concatenate([low, planes], -1))
    img_wd = self._wiener(denoised, kernel, "denoised_nsr")
    out_half, out_full = self.MergeRefineModule(img_wd, feat_out)
    return {"feat": feat, "feat_wd": feat_wd, "feat_out": feat_out, "nsr": nsr,
            "denoised": denoised, "img_wd": img_wd, "out_half": out_half, "out_full": out_full}

  def __call__(self, low, kernel):
    """low (B, H, W, 3) in [0, 1], kernel (B, kh, kw) -> {"half", "full", "denoised"}.

    ``half`` is (B, round(H/2), round(W/2), 3), ``full`` and ``denoised`` (B, H, W, 3).
    """
    out = self.intermediates(low, kernel)
    return {"half": out["out_half"], "full": out["out_full"], "denoised": out["denoised"]}

  def enhance(self, inputs, temperature=0.0, rng=None):
    """API hook: ``inputs`` {"low", "kernel"} -> the full-scale output (unclamped)."""
    del temperature, rng
    return self(inputs["low"], inputs["kernel"])["full"]
