"""OAtt-UNet: SSFlow's feature extractor (official ``models/ns_model2.SSFlow``, held as
``RRDB.denoise``), LEDNet's U-Net with one orthogonal channel-attention block.

Data flow (channels [c1, c2, c3, c4], released [32, 64, 128, 128]; x: (B, H, W, nf)):

    e1 = PPM1(attention(E_block1(x)))             c2 @ H/2   (E_block1 = conv, PReLU, BasicBlockE down)
    e2 = PPM2(E_block2(e1))                       c3 @ H/4
    e3 = PPM3(E_block3(e2))                       c4 @ H/8
    m  = M_block2(M_block1(e3))
    d3 = lrelu(FAC(D_block3(m), conv_fac_k3(e3)))     c4 @ H/8
    d2 = lrelu(FAC(D_block2(d3), conv_fac_k2(e2)))    c3 @ H/4
    d1 = lrelu(FAC(D_block1(d2), conv_fac_k1(e1)))    c2 @ H/2
    out = D_block0(d1)                                 3 @ H   (the "colour map")

and it returns ``out``, ``d1``, ``conv22(d2)`` and ``conv33(d3)`` (3x3 conv + LeakyReLU 0.2 to
``cond_channels``), the flow's conditioning at H/2, H/4 and H/8. FAC is the per-pixel 5x5
filtering of ``lljax.nn.filter_adaptive_conv`` with kernels predicted from the encoder feature.

Not built (constructed but never called by the official forward; the converter drops them by
name): LEDNet's curve layers ``conv_1c/2c/3c``, ``side_out``, the FFT attention blocks
``attn1-3``/``norm1-3`` and a whole OrthoNet-18 (``OrthoNet``).
"""

from typing import Sequence

import flax.linen as nn
import jax

from lljax.models.ssflow.attention import OrthoAttentionBlock
from lljax.models.ssflow.blocks import PPM, BasicBlockD2Res, BasicBlockE, KernelPredictor
from lljax.nn import Conv2d, PReLU, filter_adaptive_conv
from lljax.nn.remat import remat_block


def lrelu(x):
  return jax.nn.leaky_relu(x, 0.2)


class OAttUNet(nn.Module):
  """Attributes:
    channels: (c1, c2, c3, c4) widths of the four scales.
    cond_channels: width of conv22/conv33 (released 64; must equal c2 for the flow).
    attn_size: side of the attention's Gram-Schmidt filters (released 64).
    fac_kernel: FAC kernel size (5).
  """

  channels: Sequence[int] = (32, 64, 128, 128)
  cond_channels: int = 64
  attn_size: int = 64
  fac_kernel: int = 5

  @nn.compact
  def __call__(self, x):
    """x: (B, H, W, nf), H and W multiples of 8 -> (color_map (B,H,W,3), d1, c22, c33)."""
    c1, c2, c3, c4 = self.channels
    fac = lambda d, k: lrelu(filter_adaptive_conv(d, k, self.fac_kernel))

    enc_block, dec_block = remat_block(BasicBlockE), remat_block(BasicBlockD2Res)
    e1 = PReLU(name="E_block1_1")(Conv2d(c1, 3, name="E_block1_0")(x))
    e1 = enc_block(c2, down=True, name="E_block1_2")(e1)
    self.sow("intermediates", "E_block1", e1)
    e1 = OrthoAttentionBlock(self.attn_size, name="BasicBlock")(e1)
    self.sow("intermediates", "attention", e1)
    e1 = PPM(c2 // 4, name="PPM1")(e1)
    e2 = PPM(c3 // 4, name="PPM2")(enc_block(c3, down=True, name="E_block2")(e1))
    e3 = PPM(c4 // 4, name="PPM3")(enc_block(c4, down=True, name="E_block3")(e2))

    m = enc_block(c4, name="M_block2")(enc_block(c4, name="M_block1")(e3))
    kernels = lambda name, e: KernelPredictor(self.fac_kernel, name=name)(e)
    d3 = fac(dec_block(c4, name="D_block3")(m), kernels("conv_fac_k3", e3))
    d2 = fac(dec_block(c3, up=True, name="D_block2")(d3), kernels("conv_fac_k2", e2))
    d1 = fac(dec_block(c2, up=True, name="D_block1")(d2), kernels("conv_fac_k1", e1))
    out = Conv2d(3, 3, name="D_block0_1")(dec_block(c1, up=True, name="D_block0_0")(d1))
    cond = lambda name, d: lrelu(Conv2d(self.cond_channels, 3, name=name)(d))
    return out, d1, cond("conv22", d2), cond("conv33", d3)
