"""FCL-GAN ``BUM`` state_dicts (suiyizhao/FCL-GAN) -> ``lljax.models.devudp`` params.

DEvUDP published no code or weights; FCL-GAN (its generator's source) published code but no
weights either, so this converter exists for checkpoints users trained with the official FCL-GAN
code (``optimal_*.pkl``/``epoch_*.pkl``: plain state_dicts; ``latest.pkl`` wraps one under
``"model"`` — extract it first) and for parity tests against the official modules.

Mapping: ``G_B2S`` (blurry -> sharp, FCL-GAN's test-time network) -> ``G``; ``G_S2B`` ->
``G_inv``; ``D_S`` (judges sharp images) -> ``D``. DEvUDP has one discriminator, so FCL-GAN's
``D_B`` is dropped by name, as are BatchNorm's ``num_batches_tracked`` counters (momentum is 0.1).

The architecture is read off the shapes: the base width (``feat_extract.0``), ResBlocks per
stage (``Encoder.0.layers.*``), the discriminator's width and the norm (BatchNorm when the
generator has running statistics, else InstanceNorm, which has no keys). The output activation,
shortcut and data range cannot be seen in a state_dict: checkpoints with BatchNorm get FCL-GAN's
(``sigmoid(z + x)``, [0, 1]), instance-norm ones DEvUDP's (``tanh(z)``, [-1, 1]); pass
``shortcut=``, ``out_act=``, ``symmetric=`` to ``infer_config`` to override.
"""

import re

from lljax.convert.mapping import ConversionError, DROP, Rule, conv_kernel, shape_of
from lljax.convert.ssflow import conv_transpose_kernel

MODEL = "devudp"
GENERATORS = {"G_B2S": "G", "G_S2B": "G_inv"}


def _basic_conv_rules(torch_re, flax, transpose=False):
  """FCL-GAN ``BasicConv``: ``main.0`` conv (or transposed conv), ``main.1`` BatchNorm."""
  kernel = conv_transpose_kernel if transpose else conv_kernel
  return [
      Rule(torch_re + r"\.main\.0\.weight", flax + "/conv/kernel", kernel),
      Rule(torch_re + r"\.main\.0\.bias", flax + "/conv/bias"),
      Rule(torch_re + r"\.main\.1\.weight", flax + "/bn/scale"),
      *[Rule(torch_re + rf"\.main\.1\.{n}", flax + f"/bn/{n}") for n in ("bias", "running_mean", "running_var")],
  ]


def _generator_rules(torch_name, flax_name):
  t, f = re.escape(torch_name), flax_name
  return [
      *_basic_conv_rules(t + r"\.feat_extract\.(?P<i>[0125])", f + r"/feat_extract_\g<i>"),
      *_basic_conv_rules(t + r"\.feat_extract\.(?P<i>[34])", f + r"/feat_extract_\g<i>", transpose=True),
      *_basic_conv_rules(t + r"\.Convs\.(?P<i>[01])", f + r"/Convs_\g<i>"),
      *_basic_conv_rules(t + r"\.(?P<s>Encoder|Decoder)\.(?P<i>[012])\.layers\.(?P<j>\d+)\.main\.(?P<k>[01])",
                         f + r"/\g<s>_\g<i>/layers_\g<j>/main_\g<k>"),
  ]


RULES = [
    Rule(r".*\.num_batches_tracked", DROP),
    Rule(r"D_B\..*", DROP),
    *[rule for t, f in GENERATORS.items() for rule in _generator_rules(t, f)],
    Rule(r"D_S\.model\.(?P<i>0|2|5|8|12)\.weight", r"D/model_\g<i>/kernel", conv_kernel),
    Rule(r"D_S\.model\.(?P<i>0|2|5|8|12)\.bias", r"D/model_\g<i>/bias"),
]



def _shape(state, key):
  return shape_of(state, key, "an FCL-GAN/DEvUDP")


def infer_config(state, **overrides):
  """Model kwargs for ``lljax.models.devudp.Model`` read off the checkpoint's shapes."""
  base = _shape(state, "G_B2S.feat_extract.0.main.0.weight")[0]
  layers = {int(m.group(1)) for k in state if (m := re.fullmatch(r"G_B2S\.Encoder\.0\.layers\.(\d+)\..*", k))}
  if not layers or sorted(layers) != list(range(len(layers))):
    raise ConversionError(f"G_B2S.Encoder.0 has ResBlocks {sorted(layers)}; expected 0..n-1")
  d_base = _shape(state, "D_S.model.0.weight")[0]
  batch = "G_B2S.feat_extract.0.main.1.running_mean" in state
  config = dict(base=int(base), num_res=len(layers), d_base=int(d_base), norm="batch" if batch else "instance",
                shortcut=batch, out_act="sigmoid" if batch else "tanh", symmetric=not batch)
  config.update(overrides)
  return config
