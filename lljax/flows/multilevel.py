"""Multi-level conditional flow (SRFlow's ``FlowUpsamplerNet`` at scale 1, no split).

Layer list, index for index as the official ``nn.ModuleList`` so parameter paths match the
checkpoints (``flowUpsamplerNet.layers.{i}`` -> ``layers_{i}``): for each level l = 1..L a
squeeze by 2, ``n_noaffine`` ActNorm + InvConv steps, then K steps with a coupling. Level l
is conditioned on the feature map at 1/2^l resolution, named by ``LEVEL_FEATURES``
(l=1: ``fea_up2``, l=2: ``fea_up1``, l=3: ``fea_up0``). The latent is
(B, H/2^L, W/2^L, 3 * 4^L). Subclasses choose the coupling (``make_coupling``).
"""

import flax.linen as nn
import jax.numpy as jnp

from lljax.flows.squeeze import Squeeze
from lljax.flows.step import FlowStep
from lljax.nn.precision import logdet_dtype
from lljax.nn.remat import remat_block

LEVEL_FEATURES = {1: "fea_up2", 2: "fea_up1", 3: "fea_up0"}


class MultiLevelFlow(nn.Module):
  """Attributes:
    K: coupling steps per level.
    L: levels (1..3).
    n_noaffine: steps without coupling after each squeeze (official additionalFlowNoAffine).
  """

  K: int = 8
  L: int = 3
  n_noaffine: int = 2

  def make_coupling(self):
    """Factory ``f(num_channels=C)`` of the coupling module of each of the K steps."""
    raise NotImplementedError

  def setup(self):
    if not 1 <= self.L <= 3:
      raise ValueError(f"the flow supports L in 1..3 levels, got {self.L}")
    coupling = self.make_coupling()
    step = remat_block(FlowStep, methods=("forward", "inverse"))
    layers, levels = [], []
    channels = 3
    for level in range(1, self.L + 1):
      channels *= 4
      steps = [Squeeze(2)]
      steps += [step(channels) for _ in range(self.n_noaffine)]
      steps += [step(channels, coupling=coupling) for _ in range(self.K)]
      layers += steps
      levels += [level] * len(steps)
    self.layers = layers
    self.levels = levels

  def forward(self, x, features):
    """x: (B, H, W, 3), features: {name: (B, H/2^l, W/2^l, C_cond)} -> (z, logdet [B]).

    Sows the activations and cumulative logdet after each level into ``"intermediates"``
    (``level1``, ``level2``, ...).
    """
    logdet = jnp.zeros((x.shape[0],), logdet_dtype(x))
    for i, (layer, level) in enumerate(zip(self.layers, self.levels)):
      x, ld = layer.forward(x, features[LEVEL_FEATURES[level]])
      logdet = logdet + ld
      if i + 1 == len(self.layers) or self.levels[i + 1] != level:
        self.sow("intermediates", f"level{level}", (x, logdet))
    return x, logdet

  def inverse(self, z, features):
    """Decode: z -> (x (B, H, W, 3), logdet [B])."""
    logdet = jnp.zeros((z.shape[0],), logdet_dtype(z))
    for layer, level in zip(reversed(self.layers), reversed(self.levels)):
      z, ld = layer.inverse(z, features[LEVEL_FEATURES[level]])
      logdet = logdet + ld
    return z, logdet
