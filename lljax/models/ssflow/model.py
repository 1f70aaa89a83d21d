"""SSFlow (Li et al., CSSP 2024): joint low-light enhancement and deblurring with a conditional flow.

The official code is a fork of LLFlow in which the conditional encoder is replaced by the
OAtt-UNet (``unet.OAttUNet``); the flow ("CCD flow") is LLFlow's ``FlowUpsamplerNet``
unchanged, reused here from ``lljax.models.llflow``. The flow maps a normally lit, sharp image
x (NHWC, [0, 1]) to a latent z with prior N(squeeze8(colour map), I), conditioned on the
OAtt-UNet's decoder features of the low-light blurry image:

    raw  = exp(log(max(low + 1e-3, 1e-3)))          # the official log input, undone
    feat = conv_first(raw)                          # 3 -> nf (32), 3x3
    colour_map, fea_up2, fea_up1, fea_up0 = OAttUNet(feat)
    enhance: x = flow^-1(squeeze8(colour_map) | fea_up*)

Faithfulness notes (port choices; the math is the official code's):
* The colour map is the raw 3-channel U-Net output (no sigmoid, no chromaticity).
* The alternative prior mean of the paired objective (probability ``train_gt_ratio``) is the
  target's chromaticity averaged over 7x7 windows with zero padding counted
  (``avg_pool2d(x / (sum_c x + 1e-4), 7, 1, 3)``): SSFlow's change to LLFlow.
* The latent mean is ONE factor-8 squeeze (``llflow.colour_flow.ColourMapFlow``, whose model
  methods LLFlow and SSFlow share: both take a whole-image ``prior_map`` for tiles).
* The official encoder also receives histogram-equalised channels, and computes LLFlow's
  colour/noise maps, a ``conv_fac_k3`` branch on the raw input and a ``downconv1/2`` pyramid,
  all discarded: none of them influences any output, so none is computed here
  (``host_features`` is empty). Its unused modules are not built (see ``unet`` and the
  converter, which drops every one by name).
* The orthogonal attention's BatchNorms use running statistics unless the ``"buffers"``
  collection is mutable (training), see ``lljax.nn.buffers``. The Gram-Schmidt filters are
  buffers too: stored with the params, never trained.
* Inputs must have H and W divisible by 8; the public API pads (reflect) and crops.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lljax.models.llflow.colour_flow import ColourMapFlow
from lljax.models.llflow.encoder import colour_map
from lljax.models.llflow.flow_net import FlowUpsamplerNet
from lljax.models.llflow.model import log_low
from lljax.models.ssflow.unet import OAttUNet
from lljax.nn import Conv2d, avg_pool2d


def smoothed_colour_map(image):
  """SSFlow's target colour map: 7x7 box average (zero padding counted) of x / (sum_c x + 1e-4)."""
  return avg_pool2d(colour_map(image), 7, stride=1, padding=3, count_include_pad=True)


class ConditionEncoder(nn.Module):
  """Official ``ConEncoder1`` as SSFlow uses it: ``conv_first`` then the OAtt-UNet (``denoise``)."""

  nf: int = 32
  channels: Sequence[int] = (32, 64, 128, 128)
  cond_channels: int = 64
  attn_size: int = 64
  fac_kernel: int = 5

  @nn.compact
  def __call__(self, raw_low):
    """raw_low: (B, H, W, 3) -> {fea_up2 (H/2), fea_up1 (H/4), fea_up0 (H/8), color_map (H)}."""
    fea = Conv2d(self.nf, 3, name="conv_first")(raw_low)
    unet = OAttUNet(tuple(self.channels), self.cond_channels, self.attn_size, self.fac_kernel, name="denoise")
    out, d1, c22, c33 = unet(fea)
    return {"fea_up2": d1, "fea_up1": c22, "fea_up0": c33, "color_map": out}


class SSFlow(ColourMapFlow):
  """Conditional flow with submodules ``RRDB`` (the encoder; official attribute name) and
  ``flowUpsamplerNet`` (the CCD flow).

  Attributes:
    nf, channels, cond_channels, attn_size, fac_kernel: encoder (see ``unet.OAttUNet``).
    K, L, n_noaffine, hidden, affine_eps: flow (see ``llflow.flow_net.FlowUpsamplerNet``).

  Inputs everywhere are dicts with ``low`` (B, H, W, 3) in [0, 1].
  """

  nf: int = 32
  channels: Sequence[int] = (32, 64, 128, 128)
  cond_channels: int = 64
  attn_size: int = 64
  fac_kernel: int = 5
  K: int = 4
  L: int = 3
  n_noaffine: int = 2
  hidden: int = 64
  affine_eps: float = 1e-4

  def setup(self):
    self.RRDB = ConditionEncoder(self.nf, tuple(self.channels), self.cond_channels, self.attn_size, self.fac_kernel)
    self.flowUpsamplerNet = FlowUpsamplerNet(self.K, self.L, self.n_noaffine, self.hidden, self.affine_eps)

  def condition(self, inputs):
    """Runs the encoder: the flow's conditioning features and ``color_map``."""
    features = self.RRDB(jnp.exp(log_low(inputs["low"])))
    self.sow("intermediates", "encoder", features)
    return features

  def target_colour_map(self, target):
    """SSFlow's alternative prior mean's map: the target's 7x7-smoothed chromaticity."""
    return smoothed_colour_map(target)
