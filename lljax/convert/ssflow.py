"""SSFlow converter: official ``shibaoshun/SSFlow`` state_dicts -> ``lljax.models.ssflow`` params.

The released ``best_psnr_G.pth`` is a plain state_dict of the whole LLFlow-derived network
(807 entries, 24.97 M parameters), of which the forward pass uses 9.65 M. Everything else is
dropped BY NAME (a key that matches no rule is an error):

* never called by the forward (``UNUSED_MODULES``): a full OrthoNet-18, the RRDB trunk of
  LLFlow's encoder, LEDNet's curve layers, the FFT attention blocks, LLFlow's ``fine_tune``/
  ``awb``/``HRconv``/``conv_last``/``trunk_conv``/``conv_second``/``downconv3`` and the flow's ``f``;
* run, but their outputs never reach a returned tensor (``DISCARDED_MODULES``):
  ``RRDB.conv_fac_k3`` on the raw input, the ``downconv1/2`` pyramid, ``denoise.side_out``;
* BatchNorm's ``num_batches_tracked`` (only used when the momentum is None; it is 0.1).

The Gram-Schmidt filters (``F_C_A.constant_filter``), the blur-pool filters (``filt``, built as
[1,2,1]x[1,2,1]/16 but buffers of the checkpoint all the same) and the BatchNorm running
statistics are buffers the forward uses; they become lljax buffers (``lljax.nn.buffers``).

The architecture is read off the shapes, so reduced checkpoints convert without flags: nf
(``conv_first``), the four U-Net widths (``E_block1.0`` and the three down-sampling convs), the
conditioning width (``conv22``), the attention filter size (``constant_filter``), the FAC kernel
size (``conv_fac_k1``) and the flow (as for LLFlow).
"""

import math
import re

import numpy as np

from lljax.convert.llflow import FLOW_RULES, flow_config
from lljax.convert.mapping import ConversionError, DROP, Rule, conv_kernel, dense_kernel, identity, shape_of

MODEL = "ssflow"

UNUSED_MODULES = (
    "RRDB.denoise.OrthoNet", "RRDB.denoise.attn1", "RRDB.denoise.attn2", "RRDB.denoise.attn3",
    "RRDB.denoise.norm1", "RRDB.denoise.norm2", "RRDB.denoise.norm3", "RRDB.denoise.conv_1c",
    "RRDB.denoise.conv_2c", "RRDB.denoise.conv_3c", "RRDB.RRDB_trunk", "RRDB.conv_second",
    "RRDB.trunk_conv", "RRDB.downconv3", "RRDB.HRconv", "RRDB.conv_last", "RRDB.awb_para",
    "RRDB.fine_tune_color_map", "flowUpsamplerNet.f",
)
DISCARDED_MODULES = ("RRDB.conv_fac_k3", "RRDB.downconv1", "RRDB.downconv2", "RRDB.denoise.side_out")
UNUSED_BUFFERS = (r".*\.num_batches_tracked",)
_D, _F = r"RRDB\.denoise\.", "RRDB/denoise/"


def conv_transpose_kernel(w):
  """torch ConvTranspose2d weight (I, O, kh, kw) -> lljax (kh, kw, I, O) (unflipped)."""
  return np.transpose(w, (2, 3, 0, 1))


def _rules(torch_re, flax, kind):
  """Rules for one module: ``torch_re`` matches its torch prefix, ``flax`` is its path template."""
  if kind == "conv":
    return [Rule(torch_re + r"\.weight", flax + "/kernel", conv_kernel), Rule(torch_re + r"\.bias", flax + "/bias")]
  if kind == "conv_transpose":
    return [Rule(torch_re + r"\.weight", flax + "/kernel", conv_transpose_kernel)]
  if kind == "prelu":
    return [Rule(torch_re + r"\.weight", flax + "/weight")]
  if kind == "linear":
    return [Rule(torch_re + r"\.weight", flax + "/kernel", dense_kernel)]
  if kind == "batchnorm":
    return [Rule(torch_re + r"\.weight", flax + "/scale"),
            *[Rule(torch_re + rf"\.{n}", flax + f"/{n}") for n in ("bias", "running_mean", "running_var")]]
  raise ValueError(kind)


def _block_rules(torch_block, flax_block, resample):
  """BasicBlock_E (``resample="down"``) and BasicBlock_D_2Res (``"up"``) under one prefix."""
  t, f = _D + torch_block, _F + flax_block
  rules = [*_rules(t + r"\.body(?P<b>[12])\.(?P<i>[02])", f + r"/body\g<b>_\g<i>", "conv"),
           *_rules(t + r"\.body(?P<b>[12])\.1", f + r"/body\g<b>_1", "prelu"),
           *_rules(t + r"\.reshape_conv\.top\.(?P<i>[13])", f + r"/reshape_conv/top_\g<i>", "prelu"),
           *_rules(t + r"\.reshape_conv\.bot\.1", f + "/reshape_conv/bot_1", "conv"),
           Rule(t + r"\.reshape_conv\.top\.4\.filt", f + "/reshape_conv/top_4/filt", conv_kernel),
           Rule(t + r"\.reshape_conv\.bot\.0\.filt", f + "/reshape_conv/bot_0/filt", conv_kernel)]
  if resample == "down":
    rules += _rules(t + r"\.reshape_conv\.top\.(?P<i>[025])", f + r"/reshape_conv/top_\g<i>", "conv")
  else:
    rules += [*_rules(t + r"\.reshape_conv\.top\.(?P<i>[04])", f + r"/reshape_conv/top_\g<i>", "conv"),
              *_rules(t + r"\.reshape_conv\.top\.2", f + "/reshape_conv/top_2", "conv_transpose")]
  return rules


RULES = [
    *[Rule(re.escape(m) + r"\..*", DROP) for m in UNUSED_MODULES + DISCARDED_MODULES],
    *[Rule(pattern, DROP) for pattern in UNUSED_BUFFERS],
    *_rules(r"RRDB\.conv_first", "RRDB/conv_first", "conv"),
    *_rules(_D + r"E_block1\.0", _F + "E_block1_0", "conv"),
    *_rules(_D + r"E_block1\.1", _F + "E_block1_1", "prelu"),
    *_block_rules(r"E_block1\.2", "E_block1_2", "down"),
    *_block_rules(r"(?P<blk>E_block[23]|M_block[12])", r"\g<blk>", "down"),
    *_block_rules(r"(?P<blk>D_block[123])", r"\g<blk>", "up"),
    *_block_rules(r"D_block0\.0", "D_block0_0", "up"),
    *_rules(_D + r"D_block0\.1", _F + "D_block0_1", "conv"),
    *_rules(_D + r"BasicBlock\._process\.(?P<i>[03])", _F + r"BasicBlock/_process_\g<i>", "conv"),
    *_rules(_D + r"BasicBlock\._process\.(?P<i>[14])", _F + r"BasicBlock/_process_\g<i>", "batchnorm"),
    *_rules(_D + r"BasicBlock\._excitation\.(?P<i>[02])", _F + r"BasicBlock/_excitation_\g<i>", "linear"),
    Rule(_D + r"BasicBlock\.F_C_A\.constant_filter", _F + "BasicBlock/constant_filter", identity),
    *_rules(_D + r"(?P<p>PPM[123])\.features\.(?P<i>\d)\.1", _F + r"\g<p>/features_\g<i>_1", "conv"),
    *_rules(_D + r"(?P<p>PPM[123])\.features\.(?P<i>\d)\.2", _F + r"\g<p>/features_\g<i>_2", "prelu"),
    *_rules(_D + r"(?P<p>PPM[123])\.fuse\.0", _F + r"\g<p>/fuse_0", "conv"),
    *_rules(_D + r"(?P<p>PPM[123])\.fuse\.1", _F + r"\g<p>/fuse_1", "prelu"),
    *_rules(_D + r"(?P<k>conv_fac_k[123])\.(?P<i>[0246])", _F + r"\g<k>/layers_\g<i>", "conv"),
    *_rules(_D + r"(?P<c>conv22|conv33)\.0\.conv\.0", _F + r"\g<c>", "conv"),
    *FLOW_RULES,
]



def _shape(state, key):
  return shape_of(state, key, "an SSFlow")


def infer_config(state):
  """Model kwargs for ``lljax.models.ssflow.Model`` read off the checkpoint's shapes."""
  channels = (_shape(state, "RRDB.denoise.E_block1.0.weight")[0],
              *(_shape(state, f"RRDB.denoise.{b}.reshape_conv.top.5.weight")[0]
                for b in ("E_block1.2", "E_block2", "E_block3")))
  nf, in_ch = _shape(state, "RRDB.conv_first.weight")[:2]
  if in_ch != 3:
    raise ConversionError(f"RRDB.conv_first takes {in_ch} channels; SSFlow's takes the 3-channel low image")
  cond = _shape(state, "RRDB.denoise.conv22.0.conv.0.weight")[0]
  filt_c, attn_size, _ = _shape(state, "RRDB.denoise.BasicBlock.F_C_A.constant_filter")
  taps = _shape(state, "RRDB.denoise.conv_fac_k1.6.weight")[0] // channels[1]
  fac_kernel = math.isqrt(taps)
  if fac_kernel**2 != taps or filt_c != channels[1]:
    raise ConversionError(f"inconsistent SSFlow encoder: {taps} FAC taps, {filt_c} attention filters "
                          f"for {channels[1]} channels")
  flow, flow_cond = flow_config(state, "SSFlow")
  if not flow_cond == cond == channels[1]:
    raise ConversionError(f"the flow is conditioned on {flow_cond} channels but the encoder gives "
                          f"{channels[1]} (H/2) and {cond} (H/4, H/8)")
  return dict(nf=int(nf), channels=tuple(int(c) for c in channels), cond_channels=int(cond),
              attn_size=int(attn_size), fac_kernel=int(fac_kernel), **flow)
