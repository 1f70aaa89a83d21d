"""LLFlow's invertible network (official ``FlowUpsamplerNet`` at scale 1, no split).

Layer list, mirrored index for index so parameter paths match the checkpoint
(``flowUpsamplerNet.layers.{i}`` -> ``flowUpsamplerNet/layers_{i}``): for each level
l = 1..L, a squeeze by 2, ``n_noaffine`` steps without coupling, then K coupling steps.
Level l is conditioned on the encoder feature at 1/2^l resolution
(l=1: ``fea_up2``, l=2: ``fea_up1``, l=3: ``fea_up0``).
"""

import functools

import flax.linen as nn
import jax.numpy as jnp

from lljax.flows import CondAffineSeparatedAndCond, FlowStep, Squeeze

LEVEL_FEATURES = {1: "fea_up2", 2: "fea_up1", 3: "fea_up0"}


class FlowUpsamplerNet(nn.Module):
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

  def setup(self):
    if not 1 <= self.L <= 3:
      raise ValueError(f"LLFlow supports L in 1..3, got {self.L}")
    coupling = functools.partial(CondAffineSeparatedAndCond, hidden=self.hidden, eps=self.affine_eps)
    layers, levels = [], []
    channels = 3
    for level in range(1, self.L + 1):
      channels *= 4
      steps = [Squeeze(2)]
      steps += [FlowStep(channels) for _ in range(self.n_noaffine)]
      steps += [FlowStep(channels, coupling=coupling) for _ in range(self.K)]
      layers += steps
      levels += [level] * len(steps)
    self.layers = layers
    self.levels = levels

  def forward(self, x, features):
    """x: (B, H, W, 3) -> (z (B, H/2^L, W/2^L, 3*4^L), logdet [B]).

    Sows the activations and cumulative logdet after each level into ``"intermediates"``.
    """
    logdet = jnp.zeros((x.shape[0],), x.dtype)
    for i, (layer, level) in enumerate(zip(self.layers, self.levels)):
      x, ld = layer.forward(x, features[LEVEL_FEATURES[level]])
      logdet = logdet + ld
      if i + 1 == len(self.layers) or self.levels[i + 1] != level:
        self.sow("intermediates", f"level{level}", (x, logdet))
    return x, logdet

  def inverse(self, z, features):
    """Decode: z -> (x (B, H, W, 3), logdet [B])."""
    logdet = jnp.zeros((z.shape[0],), z.dtype)
    for layer, level in zip(reversed(self.layers), reversed(self.levels)):
      z, ld = layer.inverse(z, features[LEVEL_FEATURES[level]])
      logdet = logdet + ld
    return z, logdet
