"""LLFlow's invertible network (official ``FlowUpsamplerNet``): the shared multi-level flow
with LLFlow's ``CondAffineSeparatedAndCond`` coupling (see ``lljax.flows.MultiLevelFlow``)."""

import functools

from lljax.flows import CondAffineSeparatedAndCond, MultiLevelFlow
from lljax.flows.multilevel import LEVEL_FEATURES  # noqa: F401  (re-exported)


class FlowUpsamplerNet(MultiLevelFlow):
  """Attributes:
    K: coupling steps per level.
    L: levels (1..3); the latent is (H/2^L, W/2^L, 3*4^L).
    n_noaffine: steps without coupling after each squeeze (official additionalFlowNoAffine).
    hidden: coupling-net width.
    affine_eps: coupling scale eps.
  """

  K: int = 12
  L: int = 3
  n_noaffine: int = 2
  hidden: int = 64
  affine_eps: float = 1e-4

  def make_coupling(self):
    return functools.partial(CondAffineSeparatedAndCond, hidden=self.hidden, eps=self.affine_eps)
