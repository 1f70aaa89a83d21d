"""INFWIDE converter: official ``zhihongz/INFWIDE`` checkpoints -> ``lljax.models.infwide`` params.

The released ``model_infwide.pth`` is the trainer's pickled dict ``{arch, epoch, state_dict,
optimizer, config}`` whose ``config`` is an OmegaConf ``DictConfig``. ``read_state`` takes only
``state_dict`` out of it with ``lljax.convert.torch_io`` (no code from the file runs): the
OmegaConf classes, and the ``typing``/``builtins`` names OmegaConf's metadata pickles, are
stubbed as inert objects, allow-listed by name (``OMEGACONF_STUBS``); anything else a pickle
names is refused. omegaconf need not be installed. Plain state_dicts are read as well.

All 276 release keys map (no key is dropped): torch ``Conv`` wrappers ``<seq>.<i>.body.0`` ->
Conv2d ``<seq>_<i>``, ``ResBlock`` ``<seq>.<i>.body.{0,2}.body.0`` -> ``<seq>_<i>/conv{0,1}``, KAIR
ResBlocks ``.res.{0,2}`` likewise, transposed convs (``Deconv``, KAIR ``m_up*.0``) with their
(in, out, kh, kw) weights. The architecture (widths, ResBlock and conv counts) is read off the
shapes, so reduced checkpoints convert without flags.
"""

import re

import numpy as np

from lljax.convert import torch_io
from lljax.convert.mapping import ConversionError, Rule, conv_kernel, shape_of

MODEL = "infwide"

# (module, qualname) of everything a pickled OmegaConf 2.x DictConfig names: its node and
# container classes, its metadata dataclasses and the type objects the metadata refers to.
OMEGACONF_STUBS = (
    ("omegaconf.dictconfig", "DictConfig"),
    ("omegaconf.listconfig", "ListConfig"),
    ("omegaconf.nodes", "AnyNode"),
    ("omegaconf.nodes", "StringNode"),
    ("omegaconf.nodes", "IntegerNode"),
    ("omegaconf.nodes", "FloatNode"),
    ("omegaconf.nodes", "BooleanNode"),
    ("omegaconf.nodes", "EnumNode"),
    ("omegaconf.nodes", "ValueNode"),
    ("omegaconf.base", "Metadata"),
    ("omegaconf.base", "ContainerMetadata"),
    ("omegaconf.base", "Container"),
    ("omegaconf.base", "Node"),
    ("typing", "Any"),
    ("collections", "defaultdict"),
    # Type objects in the metadata; protocol-2 pickles spell builtins as ``__builtin__``.
    *((module, name) for module in ("builtins", "__builtin__")
      for name in ("dict", "list", "str", "int", "long", "float", "bool", "bytes")),
)


def read_state(path):
  """The state_dict of an INFWIDE checkpoint (release dict or plain state_dict), as numpy."""
  return torch_io.read_state_dict(path, stubs=OMEGACONF_STUBS)


def conv_transpose_kernel(w):
  """torch ConvTranspose2d weight (I, O, kh, kw) -> lljax (kh, kw, I, O) (unflipped)."""
  return np.transpose(w, (2, 3, 0, 1))


def _conv(torch_re, flax, bias=True):
  rules = [Rule(torch_re + r"\.weight", flax + "/kernel", conv_kernel)]
  return rules + ([Rule(torch_re + r"\.bias", flax + "/bias")] if bias else [])


def _res(torch_re, flax):
  """A ResBlock ``torch_re`` with convs ``.body.0.body.0`` and ``.body.2.body.0``."""
  return [*_conv(torch_re + r"\.body\.0\.body\.0", flax + "/conv0"),
          *_conv(torch_re + r"\.body\.2\.body\.0", flax + "/conv1")]


def _deconv(torch_re, flax):
  return [Rule(torch_re + r"\.weight", flax + "/kernel", conv_transpose_kernel),
          Rule(torch_re + r"\.bias", flax + "/bias")]


# Sequential stacks of 5x5 conv wrappers and ResBlocks, at the top level or one module down.
_SEQ_NAMES = r"(?P<s>FeatureBlock|inBlock|outLayers|encoder_first|encoder_second|decoder_first|decoder_second)"
_SEQS = (
    (r"(?P<m>FeatModule1)\." + _SEQ_NAMES + r"\.(?P<i>\d+)", r"\g<m>/\g<s>_\g<i>"),
    (r"(?P<m>FSRefineModule|MergeRefineModule)\.(?P<b>InBlock\d+|OutBlock_a\d?|OutBlock_b|RefineUnet)\."
     + _SEQ_NAMES + r"\.(?P<i>\d+)", r"\g<m>/\g<b>/\g<s>_\g<i>"),
)
_XRF = r"MergeRefineModule\.XRFUnet\.(?P<b>XR[DU][12])"
_XRF_FLAX = r"MergeRefineModule/XRFUnet/\g<b>"
_UNET = r"DenoiseUnet\.(?P<m>m_down[123]|m_body|m_up[123])\.(?P<i>\d+)"
_UNET_FLAX = r"DenoiseUnet/\g<m>_\g<i>"

RULES = [
    # Transposed convs first: the refine decoders' last entries, the XRF up blocks, KAIR's up convs.
    *_deconv(r"FSRefineModule\.RefineUnet\.(?P<s>decoder_first|decoder_second)\.(?P<i>\d+)\.body\.0",
             r"FSRefineModule/RefineUnet/\g<s>_\g<i>"),
    *_deconv(_XRF + r"\.(?P<d>deconv12|deconv21)\.1\.body\.0", _XRF_FLAX + r"/\g<d>_1"),
    Rule(r"DenoiseUnet\.(?P<m>m_up[123])\.0\.weight", r"DenoiseUnet/\g<m>_0/kernel", conv_transpose_kernel),
    # 5x5 conv wrappers (``.body.0``) and ResBlocks inside the Sequential stacks.
    *[rule for torch_re, flax in _SEQS for rule in (*_conv(torch_re + r"\.body\.0", flax), *_res(torch_re, flax))],
    # Cross-residual blocks.
    *_conv(_XRF + r"\.(?P<c>conv1|conv2)\.(?P<i>\d+)\.body\.0", _XRF_FLAX + r"/\g<c>_\g<i>"),
    *_conv(_XRF + r"\.(?P<c>conv12|conv21)\.1\.body\.0", _XRF_FLAX + r"/\g<c>_1"),
    # KAIR ResUNet (bias-free).
    Rule(r"DenoiseUnet\.(?P<m>m_head|m_tail)\.weight", r"DenoiseUnet/\g<m>/kernel", conv_kernel),
    Rule(_UNET + r"\.res\.0\.weight", _UNET_FLAX + "/conv0/kernel", conv_kernel),
    Rule(_UNET + r"\.res\.2\.weight", _UNET_FLAX + "/conv1/kernel", conv_kernel),
    Rule(_UNET + r"\.weight", _UNET_FLAX + "/kernel", conv_kernel),  # the 2x2 stride-2 down convs
]



def _shape(state, key):
  return shape_of(state, key, "an INFWIDE")


def _count(state, pattern):
  """Number of distinct indices i of keys matching ``pattern`` (with one group for i)."""
  rx = re.compile(pattern)
  return len({m.group(1) for k in state if (m := rx.fullmatch(k))})


def infer_config(state):
  """Model kwargs for ``lljax.models.infwide.Model`` read off the checkpoint's shapes."""
  feat, n_colors = _shape(state, "FeatModule1.FeatureBlock.0.body.0.weight")[:2]
  down = lambda i: _count(state, r"DenoiseUnet\.m_down%d\.(\d+)\..*" % i) - 1  # index of the down conv
  unet = (_shape(state, "DenoiseUnet.m_head.weight")[0],
          *(_shape(state, f"DenoiseUnet.m_down{i}.{down(i)}.weight")[0] for i in (1, 2, 3)))
  unet_in = _shape(state, "DenoiseUnet.m_head.weight")[1]
  if unet_in != 2 * n_colors:
    raise ConversionError(f"DenoiseUnet takes {unet_in} channels; INFWIDE's takes image + NSR map "
                          f"({2 * n_colors})")
  unet_nb = _count(state, r"DenoiseUnet\.m_body\.(\d+)\..*")
  fsr_feats, fsr_in = _shape(state, "FSRefineModule.InBlock2.inBlock.0.body.0.weight")[:2]
  if fsr_in != feat:
    raise ConversionError(f"FSRefineModule takes {fsr_in} channels but FeatModule1 gives {feat}")
  fsr_resblocks = _count(state, r"FSRefineModule\.OutBlock_a\.outLayers\.(\d+)\..*")
  xrf_feats = _shape(state, "MergeRefineModule.InBlock11.inBlock.0.body.0.weight")[0]
  xrf_resblocks = _count(state, r"MergeRefineModule\.OutBlock_a1\.outLayers\.(\d+)\..*")
  xrf_convs = _count(state, r"MergeRefineModule\.XRFUnet\.XRD1\.conv1\.(\d+)\..*") + 1
  return dict(n_colors=int(n_colors), feat=int(feat), unet=tuple(int(u) for u in unet),
              unet_nb=int(unet_nb), fsr_feats=int(fsr_feats), fsr_resblocks=int(fsr_resblocks),
              xrf_feats=int(xrf_feats), xrf_resblocks=int(xrf_resblocks), xrf_convs=int(xrf_convs))
