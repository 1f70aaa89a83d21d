"""LLFlow converter: official ``wyf0912/LLFlow`` state_dicts -> ``lljax.models.llflow`` params.

The architecture is inferred from the checkpoint's shapes, so every LLFlow-family checkpoint
converts without flags: nf (``RRDB.conv_first``), nb and gc (the RRDB trunk), the flow layout
(levels from the ActNorm widths 12/48/192, steps with and without coupling per level), the
coupling width and the conditioning width nf * (1 + number of stacked blocks).

Which trunk blocks are stacked is NOT recorded in a checkpoint (only how many). Known released
layouts are recognised — (nb=24, 4 blocks) -> [1, 3, 5, 7] (LOL-pc/LOLv2-pc), (nb=4, 1 block) ->
[1] (LOL_smallNet) — and any other count defaults to the first blocks [0, 1, ...]; pass
``stack_blocks`` to override.

Dropped by name (built but never used by the official forward): ``RRDB.downconv3``,
``RRDB.HRconv``, ``RRDB.conv_last``, ``RRDB.awb_para`` and ``flowUpsamplerNet.f``.
"""

import collections
import math
import re

from lljax.convert.mapping import ConversionError, DROP, Rule, conv_kernel, per_channel, shape_of

MODEL = "llflow"
UNUSED_MODULES = ("RRDB.downconv3", "RRDB.HRconv", "RRDB.conv_last", "RRDB.awb_para", "flowUpsamplerNet.f")
KNOWN_STACKS = {(24, 4): (1, 3, 5, 7), (4, 1): (1,)}

_FLOW = r"flowUpsamplerNet\.layers\.(\d+)\."
_NET = {"0": "conv_in", "2": "conv_hidden", "4": "conv_out"}

# The flow's rules, shared by every LLFlow-family converter (SSFlow's flow is LLFlow's).
FLOW_RULES = [
    Rule(_FLOW + r"actnorm\.(bias|logs)", r"flowUpsamplerNet/layers_\1/actnorm/\2", per_channel),
    Rule(_FLOW + r"invconv\.weight", r"flowUpsamplerNet/layers_\1/invconv/weight"),
    *[
        rule
        for idx, name in _NET.items()
        for rule in (
            Rule(_FLOW + rf"affine\.(fAffine|fFeatures)\.{idx}\.weight",
                 rf"flowUpsamplerNet/layers_\1/affine/\2/{name}/conv/kernel", conv_kernel),
            Rule(_FLOW + rf"affine\.(fAffine|fFeatures)\.{idx}\.actnorm\.(bias|logs)",
                 rf"flowUpsamplerNet/layers_\1/affine/\2/{name}/actnorm/\3", per_channel),
        )
    ],
    Rule(_FLOW + r"affine\.(fAffine|fFeatures)\.4\.bias", r"flowUpsamplerNet/layers_\1/affine/\2/conv_out/conv/bias"),
    Rule(_FLOW + r"affine\.(fAffine|fFeatures)\.4\.logs", r"flowUpsamplerNet/layers_\1/affine/\2/conv_out/logs",
         per_channel),
]

RULES = [
    *[Rule(re.escape(m) + r"\..*", DROP) for m in UNUSED_MODULES],
    Rule(r"RRDB\.RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.weight", r"RRDB/RRDB_trunk_\1/RDB\2/conv\3/kernel", conv_kernel),
    Rule(r"RRDB\.RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.bias", r"RRDB/RRDB_trunk_\1/RDB\2/conv\3/bias"),
    Rule(r"RRDB\.fine_tune_color_map\.0\.weight", "RRDB/fine_tune_color_map/kernel", conv_kernel),
    Rule(r"RRDB\.fine_tune_color_map\.0\.bias", "RRDB/fine_tune_color_map/bias"),
    Rule(r"RRDB\.(\w+)\.weight", r"RRDB/\1/kernel", conv_kernel),
    Rule(r"RRDB\.(\w+)\.bias", r"RRDB/\1/bias"),
    *FLOW_RULES,
]



def _shape(state, key):
  return shape_of(state, key, "an LLFlow")


def _flow_layout(state, model):
  """Per flow layer index: (channels, has_coupling), from the actnorm/affine keys."""
  layers = {}
  for key in state:
    m = re.fullmatch(_FLOW + r"(actnorm\.bias|affine\..*)", key)
    if m:
      idx = int(m.group(1))
      channels, coupling = layers.get(idx, (None, False))
      if m.group(2) == "actnorm.bias":
        channels = int(math.prod(state[key].shape))
      layers[idx] = (channels, coupling or m.group(2).startswith("affine"))
  if not layers:
    raise ConversionError(f"not an {model} checkpoint: no flowUpsamplerNet.layers.*.actnorm keys")
  return dict(sorted(layers.items()))


def infer_config(state, stack_blocks=None):
  """Model kwargs for ``lljax.models.llflow.Model`` read off the checkpoint's shapes."""
  nf, in_ch = _shape(state, "RRDB.conv_first.weight")[:2]
  if in_ch != 12:
    raise ConversionError(f"RRDB.conv_first takes {in_ch} channels; lljax supports the released "
                          "12-channel encoder (log-low, histeq, colour map, noise map)")
  trunk = {int(m.group(1)) for k in state if (m := re.match(r"RRDB\.RRDB_trunk\.(\d+)\.", k))}
  nb = len(trunk)
  gc = _shape(state, "RRDB.RRDB_trunk.0.RDB1.conv1.weight")[0] if nb else 32

  flow, cond = flow_config(state)
  n_stack, rest = divmod(cond, nf)
  if rest or n_stack < 1:
    raise ConversionError(f"conditioning width {cond} is not a multiple of nf={nf}")
  n_stack -= 1
  if stack_blocks is None:
    stack_blocks = KNOWN_STACKS.get((nb, n_stack), tuple(range(n_stack)))
  if len(stack_blocks) != n_stack or any(not 0 <= b < nb for b in stack_blocks):
    raise ConversionError(f"stack_blocks {list(stack_blocks)} does not fit: the checkpoint stacks "
                          f"{n_stack} of {nb} trunk blocks")
  return dict(nf=int(nf), nb=nb, gc=int(gc), stack_blocks=tuple(int(b) for b in stack_blocks), **flow)


def flow_config(state, model="LLFlow"):
  """``FlowUpsamplerNet`` kwargs (K, L, n_noaffine, hidden) and the conditioning width, read off
  the shapes of the ``flowUpsamplerNet.layers.*`` keys."""
  per_level = collections.defaultdict(lambda: [0, 0])
  for channels, coupling in _flow_layout(state, model).values():
    level = round(math.log(channels / 3, 4))
    per_level[level][1 if coupling else 0] += 1
  levels = sorted(per_level)
  n_noaffine, k = per_level[levels[0]]
  if levels != list(range(1, len(levels) + 1)) or any(per_level[l] != [n_noaffine, k] for l in levels):
    raise ConversionError(f"unsupported flow layout (steps without/with coupling per level): {dict(per_level)}")

  first = next((key for key in state if key.endswith("affine.fFeatures.0.weight")), None)
  if first is None:
    raise ConversionError(f"not an {model} checkpoint: its flow has no coupling layers")
  hidden, cond = state[first].shape[:2]
  return dict(K=k, L=len(levels), n_noaffine=n_noaffine, hidden=int(hidden)), int(cond)

