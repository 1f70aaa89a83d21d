"""UPT-Flow converter: official ``NJUPT-IPR-XuLintao/UPT-Flow`` state_dicts -> ``lljax.models.uptflow``.

The architecture is inferred from the checkpoint's shapes, so every checkpoint converts without
flags: ``dim`` (``RRDB.patch_embed``), the **window size** (rows of any
``relative_position_bias_table``: (2 ws - 1)^2, i.e. 81 -> 5, 225 -> 8), the Restormer heads
(``attn.temperature``), the Uformer heads (bias-table columns), the block counts, the GDFN and
LeFF widths, and the flow layout (levels from the ActNorm widths 12/48/192, steps with and
without coupling, the coupling width). Asserting a variant (``--variant lol``) with a checkpoint
of another window size fails with a message that names both window sizes.

The 14 int64 ``relative_position_index`` buffers are fully determined by the window size: they
are checked against ``lljax.nn.relative_position_index`` and then dropped. The released
checkpoints hold no module unused by the forward pass.
"""

import math
import re

import numpy as np

from lljax.convert.mapping import DROP, ConversionError, Rule, conv_kernel, dense_kernel, per_channel, shape_of
from lljax.nn import relative_position_index

MODEL = "uptflow"
RESTORMER_STAGES = ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3",
                    "decoder_level2", "decoder_level1")
UFORMER_STAGES = ("encoderlayer_1", "encoderlayer_2", "encoderlayer_3", "bottlen", "decoderlayer_1",
                  "decoderlayer_2", "decoderlayer_3")
# Restormer head index of each stage (official: heads[0..3] down, then heads[2], [1], [0]).
_STAGE_HEADS = (0, 1, 2, 3, 2, 1, 0)
_UFORMER_WIDTHS = (1, 2, 4, 8, 4, 4, 2)  # times dim
# MSFormer's defaults, used for stages without blocks (their heads leave no trace).
_DEFAULT_HEADS = (2, 2, 4, 8)
_DEFAULT_UFORMER_HEADS = (1, 2, 4, 8, 8, 4, 2)
FFN_EXPANSION = 2.66
CBAM_REDUCTION = 16

_RES = r"RRDB\.(\w+?)\.(\d+)\."  # Restormer stage block
_UF = r"RRDB\.(\w+)\.blocks\.(\d+)\."  # Uformer stage block
_FLOW = r"flowUpsamplerNet\.layers\.(\d+)\."
_NET = _FLOW + r"affine\.(fAffine_[12]|fFeatures_[12])\.model\."
_NET_CONVS = {"0": "conv_in", "2": "conv_hidden"}


def _eca_kernel(w):
  """torch Conv1d weight (1, 1, k) -> (k, 1, 1)."""
  return np.transpose(w, (2, 1, 0))


RULES = [
    # MSFormer: stem, resampling and 1x1 channel reductions.
    Rule(r"RRDB\.patch_embed\.proj\.weight", "RRDB/patch_embed/kernel", conv_kernel),
    Rule(r"RRDB\.((?:down|up)\d_\d)\.body\.0\.weight", r"RRDB/\1/kernel", conv_kernel),
    Rule(r"RRDB\.(reduce_chan_level\d)\.weight", r"RRDB/\1/kernel", conv_kernel),
    # Restormer blocks.
    Rule(_RES + r"norm(\d)\.body\.weight", r"RRDB/\1_\2/norm\3/scale"),
    Rule(_RES + r"norm(\d)\.body\.bias", r"RRDB/\1_\2/norm\3/bias"),
    Rule(_RES + r"attn\.temperature", r"RRDB/\1_\2/attn/temperature", per_channel),
    Rule(_RES + r"(attn|ffn)\.(\w+)\.weight", r"RRDB/\1_\2/\3/\4/kernel", conv_kernel),
    # Uformer LeWin blocks.
    Rule(_UF + r"norm(\d)\.weight", r"RRDB/\1/blocks_\2/norm\3/scale"),
    Rule(_UF + r"norm(\d)\.bias", r"RRDB/\1/blocks_\2/norm\3/bias"),
    Rule(_UF + r"attn\.relative_position_index", DROP),  # checked by infer_config
    Rule(_UF + r"attn\.relative_position_bias_table", r"RRDB/\1/blocks_\2/attn/relative_position_bias_table"),
    Rule(_UF + r"attn\.temperature", r"RRDB/\1/blocks_\2/attn/temperature", per_channel),
    Rule(_UF + r"attn\.qkv\.(to_[qkv])\.weight", r"RRDB/\1/blocks_\2/attn/\3/kernel", conv_kernel),
    Rule(_UF + r"attn\.qkv\.(to_[qkv])\.bias", r"RRDB/\1/blocks_\2/attn/\3/bias"),
    Rule(_UF + r"attn\.proj\.weight", r"RRDB/\1/blocks_\2/attn/proj/kernel", dense_kernel),
    Rule(_UF + r"attn\.proj\.bias", r"RRDB/\1/blocks_\2/attn/proj/bias"),
    Rule(_UF + r"mlp\.(conv\d|dwconv)(?:\.0)?\.weight", r"RRDB/\1/blocks_\2/mlp/\3/kernel", conv_kernel),
    Rule(_UF + r"mlp\.(conv\d|dwconv)(?:\.0)?\.bias", r"RRDB/\1/blocks_\2/mlp/\3/bias"),
    Rule(_UF + r"mlp\.eca\.conv\.weight", r"RRDB/\1/blocks_\2/mlp/eca/kernel", _eca_kernel),
    # Flow: ActNorm + InvConv of every step.
    Rule(_FLOW + r"actnorm\.(bias|logs)", r"flowUpsamplerNet/layers_\1/actnorm/\2", per_channel),
    Rule(_FLOW + r"invconv\.weight", r"flowUpsamplerNet/layers_\1/invconv/weight"),
    # Flow: the four conditioning nets of each cross coupling (conv, conv, CBAM, Conv2dZeros).
    *[
        rule
        for idx, name in _NET_CONVS.items()
        for rule in (
            Rule(_NET + rf"{idx}\.weight", rf"flowUpsamplerNet/layers_\1/affine/\2/{name}/conv/kernel", conv_kernel),
            Rule(_NET + rf"{idx}\.actnorm\.(bias|logs)", rf"flowUpsamplerNet/layers_\1/affine/\2/{name}/actnorm/\3",
                 per_channel),
        )
    ],
    Rule(_NET + r"4\.ChannelGate\.mlp\.1\.weight", r"flowUpsamplerNet/layers_\1/affine/\2/attention/channel_gate/fc1/kernel",
         dense_kernel),
    Rule(_NET + r"4\.ChannelGate\.mlp\.1\.bias", r"flowUpsamplerNet/layers_\1/affine/\2/attention/channel_gate/fc1/bias"),
    Rule(_NET + r"4\.ChannelGate\.mlp\.3\.weight", r"flowUpsamplerNet/layers_\1/affine/\2/attention/channel_gate/fc2/kernel",
         dense_kernel),
    Rule(_NET + r"4\.ChannelGate\.mlp\.3\.bias", r"flowUpsamplerNet/layers_\1/affine/\2/attention/channel_gate/fc2/bias"),
    Rule(_NET + r"4\.SpatialGate\.spatial\.conv\.weight",
         r"flowUpsamplerNet/layers_\1/affine/\2/attention/spatial_gate/conv/kernel", conv_kernel),
    Rule(_NET + r"5\.weight", r"flowUpsamplerNet/layers_\1/affine/\2/conv_out/conv/kernel", conv_kernel),
    Rule(_NET + r"5\.bias", r"flowUpsamplerNet/layers_\1/affine/\2/conv_out/conv/bias"),
    Rule(_NET + r"5\.logs", r"flowUpsamplerNet/layers_\1/affine/\2/conv_out/logs", per_channel),
]


def _shape(state, key):
  return shape_of(state, key, "a UPT-Flow")


def _count(state, prefix):
  """Number of blocks ``{prefix}.{i}.`` in the checkpoint."""
  pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
  return len({m.group(1) for k in state if (m := pattern.match(k))})


def _window_size(state):
  """The window size from the bias tables; checks that all agree and that the index buffers fit."""
  tables = {k: v.shape for k, v in state.items() if k.endswith("attn.relative_position_bias_table")}
  if not tables:
    raise ConversionError("not a UPT-Flow checkpoint: no RRDB.*.attn.relative_position_bias_table")
  rows = sorted({shape[0] for shape in tables.values()})
  ws = (math.isqrt(rows[0]) + 1) // 2
  if len(rows) != 1 or (2 * ws - 1) ** 2 != rows[0]:
    raise ConversionError(f"relative_position_bias_table rows {rows} are not one (2 ws - 1)^2")
  expected = relative_position_index(ws)
  for key, value in state.items():
    if key.endswith("attn.relative_position_index") and not np.array_equal(np.asarray(value), expected):
      raise ConversionError(f"{key} is not the relative position index of window size {ws}")
  return ws


def _flow_layout(state):
  """{level: [steps without coupling, steps with coupling]} from the actnorm/affine keys."""
  layers = {}
  for key in state:
    m = re.fullmatch(_FLOW + r"(actnorm\.bias|affine\..*)", key)
    if m:
      channels, coupling = layers.get(int(m.group(1)), (None, False))
      if m.group(2) == "actnorm.bias":
        channels = int(math.prod(state[key].shape))
      layers[int(m.group(1))] = (channels, coupling or m.group(2).startswith("affine"))
  if not layers:
    raise ConversionError("not a UPT-Flow checkpoint: no flowUpsamplerNet.layers.*.actnorm keys")
  per_level = {}
  for channels, coupling in layers.values():
    per_level.setdefault(round(math.log(channels / 3, 4)), [0, 0])[int(coupling)] += 1
  return per_level


def _restormer_heads(state):
  """heads[0..3] from the MDTA temperatures of the stages that have blocks."""
  heads = {}
  for stage, j in zip(RESTORMER_STAGES, _STAGE_HEADS):
    key = f"RRDB.{stage}.0.attn.temperature"
    if key in state and heads.setdefault(j, state[key].shape[0]) != state[key].shape[0]:
      raise ConversionError(f"{key} has {state[key].shape[0]} heads; MSFormer shares heads[{j}] = {heads[j]} "
                            "between encoder and decoder")
  return tuple(heads.get(j, default) for j, default in enumerate(_DEFAULT_HEADS))


def infer_config(state):
  """Model kwargs for ``lljax.models.uptflow.Model`` read off the checkpoint's shapes."""
  dim, in_ch = _shape(state, "RRDB.patch_embed.proj.weight")[:2]
  if in_ch != 3:
    raise ConversionError(f"RRDB.patch_embed takes {in_ch} channels; UPT-Flow's encoder takes RGB (3)")
  depths = tuple(_count(state, f"RRDB.{s}") for s in RESTORMER_STAGES)
  uformer_depths = tuple(_count(state, f"RRDB.{s}.blocks") for s in UFORMER_STAGES)
  if depths != uformer_depths:
    raise ConversionError(f"Restormer depths {depths} differ from Uformer depths {uformer_depths}; the "
                          "official MSFormer uses one depth list for both")
  heads = _restormer_heads(state)
  num_heads = tuple(state[k].shape[1] if (k := f"RRDB.{s}.blocks.0.attn.relative_position_bias_table") in state
                    else default for s, default in zip(UFORMER_STAGES, _DEFAULT_UFORMER_HEADS))
  for stage, c in zip(RESTORMER_STAGES[:4], (dim, 2 * dim, 4 * dim, 8 * dim)):
    key = f"RRDB.{stage}.0.ffn.project_out.weight"
    if key in state and state[key].shape[1] != int(c * FFN_EXPANSION):
      raise ConversionError(f"{key} has {state[key].shape[1]} hidden channels, not int({c} * {FFN_EXPANSION})")
  mlp_ratio = next((state[k].shape[0] / (dim * f) for s, f in zip(UFORMER_STAGES, _UFORMER_WIDTHS)
                    if (k := f"RRDB.{s}.blocks.0.mlp.conv1.weight") in state), 4.0)

  per_level = _flow_layout(state)
  levels = sorted(per_level)
  n_noaffine, k = per_level[levels[0]]
  if levels != [1, 2, 3] or any(per_level[l] != [n_noaffine, k] for l in levels):
    raise ConversionError(f"unsupported flow layout (steps without/with coupling per level): {per_level}")
  first = next((key for key in state if re.fullmatch(_NET + r"0\.weight", key) and "fFeatures_1" in key), None)
  if first is None:
    raise ConversionError("not a UPT-Flow checkpoint: no flow step has an fFeatures_1 coupling net")
  hidden, cond = _shape(state, first)[:2]
  if cond != 6 * dim:
    raise ConversionError(f"the couplings take {cond} conditioning channels; MSFormer(dim={dim}) gives {6 * dim}")
  gate = first.replace("model.0.weight", "model.4.ChannelGate.mlp.1.weight")
  if _shape(state, gate)[0] != hidden // CBAM_REDUCTION:
    raise ConversionError(f"{gate} has shape {_shape(state, gate)}; expected CBAM reduction {CBAM_REDUCTION}")
  return dict(dim=int(dim), heads=heads, depths=depths, num_heads=num_heads,
              num_refinement=_count(state, "RRDB.refinement"), ffn_expansion_factor=FFN_EXPANSION,
              mlp_ratio=float(mlp_ratio), win_size=_window_size(state), K=k, L=3, n_noaffine=n_noaffine,
              hidden=int(hidden))
