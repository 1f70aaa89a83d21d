"""DEvUDP: unsupervised deblurring that also brightens low-light images (model family hooks).

DEvUDP has no public code. The networks follow the paper's text and FCL-GAN's official modules
(suiyizhao/FCL-GAN ``src/models.py``, which the paper's "LED structure" cites): LED generators
G and G⁻¹ and FCL-GAN's PatchGAN discriminator, see ``led.py`` and ``model.py``.

Variants (``Model(variant)``):

* ``"in"`` — DEvUDP, Fig. 5(a): every norm is ``InstanceNorm2d`` with torch's defaults (affine
  off, eps 1e-5), no global shortcut, data in [-1, 1], output ``tanh(z)``.
* ``"dt"`` — DEvUDP-DT, Fig. 5(b): FCL-GAN's normalisation (BatchNorm2d, conv without bias)
  and the global shortcut, data in [-1, 1], output ``tanh(z + x)``.
* ``"fclgan"`` — FCL-GAN's own ``BUM`` networks, exactly: base 24, 6 ResBlocks, BatchNorm,
  ``sigmoid(z + x)`` on [0, 1] data; converted FCL-GAN checkpoints load into it
  (``lljax.convert.devudp``).
* ``"small"`` / ``"tiny"`` — narrow instance-norm models for quick CPU runs and tests.

Widths. The paper gives no width or depth, only "No.P", the parameters used at inference (G
alone): 6.95 M (DEvUDP) and 6.96 M (DEvUDP-DT). With the LED topology G has
``b²(260 + 756 n) + 54 b + 3`` parameters with IN (no affine, no conv bias before a norm) and
``26 b + 56 n b`` more with BatchNorm (weight and bias per channel). The only integer (base b,
ResBlocks per stage n) that gives both 6.95 M and 6.96 M is **b = 46, n = 4**: G = 6,951,431
(IN) and 6,962,931 (BN); FCL-GAN's own (24, 6) gives 2.76 M / 2.77 M. D = 391,657 (base 24, as
FCL-GAN), G⁻¹ = G. Our "in"/"dt" use (46, 4).

Assumptions (no code to check them against): the output activation tanh for [-1, 1] data
(CRNet, the same group's [-1, 1] CycleGAN, ends in tanh; FCL-GAN's sigmoid(z + x) becomes
tanh(z + x) for DT); DT's norm is FCL-GAN's BatchNorm (the issue's reading of "FCL-GAN's
normalization"); one D judging only the sharp domain (the paper's Fig. 3 has one D, on L).
"""

import jax.numpy as jnp

from lljax import models
from lljax.models.devudp.led import LEDGenerator, PatchDiscriminator
from lljax.models.devudp.model import DEvUDP, count_params

KIND = "gan"
CONVERTER = "lljax.convert.devudp"
PAD_MULTIPLE = 4  # the generators' two stride-2 stages (D needs 16, but inference uses G alone)

_PAPER = dict(base=46, num_res=4, d_base=24, symmetric=True)
VARIANTS = {
    "in": dict(_PAPER, norm="instance", shortcut=False, out_act="tanh"),
    "dt": dict(_PAPER, norm="batch", shortcut=True, out_act="tanh"),
    "fclgan": dict(base=24, num_res=6, d_base=24, symmetric=False, norm="batch", shortcut=True,
                   out_act="sigmoid"),
    # Quick CPU runs (benchmarks/devudp_claim.py) and tests.
    "small": dict(base=16, num_res=2, d_base=16, symmetric=True, norm="instance", shortcut=False,
                  out_act="tanh"),
    "tiny": dict(base=8, num_res=1, d_base=8, symmetric=True, norm="instance", shortcut=False,
                 out_act="tanh"),
}


def Model(variant=None, **overrides):  # pylint: disable=invalid-name
  """Builds a ``DEvUDP`` module (G, G⁻¹, D) from a variant name and/or explicit fields."""
  return models.build(DEvUDP, VARIANTS, "DEvUDP", variant, overrides)


def host_features(low_u8):
  """DEvUDP uses the image alone: no host features."""
  del low_u8
  return {}


def init_inputs(module, size=None):
  """``module.init`` arguments (only shapes matter): one image, a multiple of 16 for D."""
  del module
  side = size or 32
  return (jnp.zeros((1, side, side, 3), jnp.float32),)


__all__ = ["CONVERTER", "DEvUDP", "KIND", "LEDGenerator", "Model", "PAD_MULTIPLE", "PatchDiscriminator",
           "VARIANTS", "count_params", "host_features", "init_inputs"]
