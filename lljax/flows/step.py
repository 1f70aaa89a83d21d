"""One flow step: ActNorm -> InvConv1x1 -> optional conditional coupling (Glow/SRFlow order)."""

from typing import Callable, Optional

import flax.linen as nn

from lljax.flows.actnorm import ActNorm
from lljax.flows.invconv import InvConv1x1


class FlowStep(nn.Module):
  """Submodules ``actnorm``, ``invconv`` and, when ``coupling`` is given, ``affine``.

  Attributes:
    num_channels: C.
    coupling: factory ``coupling(num_channels=C)`` of a coupling module with
      ``forward(z, cond)``/``inverse(z, cond)``, or None for the official "noCoupling" steps.
    actnorm_scale: ActNorm init scale.
  """

  num_channels: int
  coupling: Optional[Callable[..., nn.Module]] = None
  actnorm_scale: float = 1.0

  def setup(self):
    self.actnorm = ActNorm(self.num_channels, self.actnorm_scale)
    self.invconv = InvConv1x1(self.num_channels)
    if self.coupling is not None:
      self.affine = self.coupling(num_channels=self.num_channels)

  def forward(self, x, cond=None):
    x, logdet = self.actnorm.forward(x)
    x, ld = self.invconv.forward(x)
    logdet = logdet + ld
    if self.coupling is not None:
      x, ld = self.affine.forward(x, cond)
      logdet = logdet + ld
    return x, logdet

  def inverse(self, y, cond=None):
    logdet = 0.0
    if self.coupling is not None:
      y, logdet = self.affine.inverse(y, cond)
    y, ld = self.invconv.inverse(y)
    logdet = logdet + ld
    y, ld = self.actnorm.inverse(y)
    return y, logdet + ld
