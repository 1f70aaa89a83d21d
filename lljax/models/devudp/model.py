"""DEvUDP ("Individual/Joint Deblurring and Low-Light Image Enhancement in One Go via
Unsupervised Deblurring Paradigm", an anonymous submission under review): two LED generators
and one PatchGAN discriminator. Widths, parameter counts and assumptions: see
``lljax.models.devudp``.

* ``G`` maps blurry (domain A) to sharp (domain B); it is the only network used at inference.
* ``G_inv`` maps sharp back to blurry (the T-branch's reconstruction A -> L -> Ã and the
  S-branch's self-regression on A).
* ``D`` judges whether an image belongs to the sharp domain (LSGAN logits map).

Images at the module boundary of ``enhance`` are NHWC float in [0, 1]; the networks themselves
work in the model's data range (``symmetric=True``: [-1, 1], the paper's step 3, where the median
0 lies in the normal-light range; ``False``: [0, 1], FCL-GAN). ``to_model``/``from_model`` map.
"""

import flax
import numpy as np

from lljax.models.devudp.led import LEDGenerator, PatchDiscriminator
from lljax.nn import ParamModule


class DEvUDP(ParamModule):
  """G, G⁻¹ (LED generators) and D (PatchGAN). See ``lljax.models.devudp`` for the variants.

  Attributes:
    base, num_res, norm, shortcut, out_act: of both generators (see ``LEDGenerator``).
    symmetric: data in [-1, 1] (True) or [0, 1] (False).
    d_base: the discriminator's base width.
  """

  base: int = 46
  num_res: int = 4
  norm: str = "instance"
  shortcut: bool = False
  out_act: str = "tanh"
  symmetric: bool = True
  d_base: int = 24

  def setup(self):
    make = lambda: LEDGenerator(self.base, self.num_res, self.norm, self.shortcut, self.out_act)
    self.G = make()
    self.G_inv = make()
    self.D = PatchDiscriminator(self.d_base)

  def to_model(self, x):
    """[0, 1] images -> the networks' data range."""
    return x * 2.0 - 1.0 if self.symmetric else x

  def from_model(self, y):
    """The networks' data range -> [0, 1] (unclipped)."""
    return (y + 1.0) * 0.5 if self.symmetric else y

  def generate(self, x):
    """G: blurry -> sharp, in the model's data range. (B, H, W, 3), H, W multiples of 4."""
    return self.G(x)

  def degrade(self, x):
    """G⁻¹: sharp -> blurry, in the model's data range."""
    return self.G_inv(x)

  def discriminate(self, x):
    """D: (B, H, W, 3) in the model's range -> (B, H/16, W/16, 1) LSGAN logits."""
    return self.D(x)

  def enhance(self, inputs, temperature=0.0, rng=None):
    """G alone on ``inputs["low"]`` (NHWC, [0, 1]) -> NHWC in [0, 1] (unclipped).

    ``temperature`` and ``rng`` are accepted for the API's uniform signature and ignored.
    """
    del temperature, rng
    return self.from_model(self.G(self.to_model(inputs["low"])))

  def __call__(self, x):
    """Runs every network once (for ``init``): (G(x), G⁻¹(x), D(x))."""
    return self.G(x), self.G_inv(x), self.D(x)


def count_params(params, net=None):
  """Number of trainable values of the params tree (or of one net: "G", "G_inv", "D");
  BatchNorm running statistics (buffers) are not counted, as torch's ``parameters()``."""
  flat = flax.traverse_util.flatten_dict(params[net] if net else params)
  return int(sum(np.size(v) for k, v in flat.items() if k[-1] not in ("running_mean", "running_var")))
