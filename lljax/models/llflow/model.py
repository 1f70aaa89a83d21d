"""LLFlow (Wang et al., AAAI 2022): low-light enhancement with a conditional normalizing flow.

The flow maps a normally lit image x (NHWC, [0, 1]) to a latent z whose prior is
N(squeeze8(colour map), I), conditioned on an RRDB encoding of the low-light image. Enhancing
runs the flow backwards from z = squeeze8(g(x_low)), the encoder's learned colour map, as the
official ``reverse_flow`` does (the official code ignores the sampled z; ``temperature`` > 0
is our opt-in sampling z = mean + temperature * eps, the paper's description).

Faithfulness notes (deviations are none in the math; the list records port choices):
* The latent mean uses ONE factor-8 squeeze of the colour map, whose channel order differs
  from the flow's three factor-2 squeezes; both orders are kept exactly.
* The log-low input is computed inside the model from the RGB low image, and the encoder
  recovers ``low + 1e-3`` with ``exp`` as the official one does.
* The official encoder's unused modules (``downconv3``, ``HRconv``, ``conv_last``,
  ``awb_para``) and the flow's unused ``f`` conv are not built.
* Inputs must have H and W divisible by 2^L (8); the public API pads (reflect) and crops.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lljax.flows import sample_gaussian
from lljax.models.llflow.encoder import ConEncoder1, colour_map, stack_features
from lljax.models.llflow.flow_net import FlowUpsamplerNet
from lljax.nn import squeeze2d


def log_low(low):
  """Official LQ log channel: log(clamp(low + 1e-3, min=1e-3))."""
  return jnp.log(jnp.maximum(low + 1e-3, 1e-3))


class LLFlow(nn.Module):
  """Conditional flow with submodules ``RRDB`` (encoder) and ``flowUpsamplerNet`` (flow).

  Attributes:
    nf, nb, gc, stack_blocks: encoder (see ``ConEncoder1``).
    K, L, n_noaffine, hidden, affine_eps: flow (see ``FlowUpsamplerNet``).

  Inputs everywhere are dicts with ``low`` (B, H, W, 3) in [0, 1] and ``histeq``
  (B, H, W, 3) in [0, 1], the per-channel histogram-equalised low image.
  """

  nf: int = 64
  nb: int = 24
  gc: int = 32
  stack_blocks: Sequence[int] = (1, 3, 5, 7)
  K: int = 12
  L: int = 3
  n_noaffine: int = 2
  hidden: int = 64
  affine_eps: float = 1e-4

  def setup(self):
    self.RRDB = ConEncoder1(self.nf, self.nb, self.gc, tuple(self.stack_blocks))
    self.flowUpsamplerNet = FlowUpsamplerNet(self.K, self.L, self.n_noaffine, self.hidden, self.affine_eps)

  @property
  def latent_factor(self):
    return 2**self.L

  def condition(self, inputs):
    """Runs the encoder. Returns the flow's conditioning features and ``color_map``."""
    lq = jnp.concatenate([log_low(inputs["low"]), inputs["histeq"]], axis=-1)
    results = self.RRDB(lq)
    self.sow("intermediates", "encoder", results)
    features = stack_features(results, tuple(self.stack_blocks))
    features["color_map"] = results["color_map"]
    return features

  def prior_mean(self, features, target=None, use_target=False):
    """squeeze8 of the learned colour map, or of the target's chromaticity when ``use_target``.

    ``use_target`` may be a traced bool (the official coin flip with ``train_gt_ratio``).
    """
    mean = squeeze2d(features["color_map"], self.latent_factor)
    if target is None:
      return mean
    target_mean = squeeze2d(colour_map(target), self.latent_factor)
    return jnp.where(use_target, target_mean, mean)

  def encode(self, inputs, x, target=None, use_target_prior=False):
    """Encode direction. x: (B, H, W, 3) -> dict(z, logdet [B], prior_mean).

    ``target`` (default: x) gives the GT-chromaticity prior mean when ``use_target_prior``.
    """
    features = self.condition(inputs)
    z, logdet = self.flowUpsamplerNet.forward(x, features)
    target = x if target is None else target
    return {"z": z, "logdet": logdet, "prior_mean": self.prior_mean(features, target, use_target_prior)}

  def decode(self, inputs, z):
    """Decode direction. z: (B, H/8, W/8, 192) -> (x (B, H, W, 3), logdet [B])."""
    return self.flowUpsamplerNet.inverse(z, self.condition(inputs))

  def prior_map(self, inputs):
    """The learned colour map g(x_l), (B, H, W, 3): the latent mean is its squeeze8 (encoder only)."""
    return self.condition(inputs)["color_map"]

  def enhance(self, inputs, temperature=0.0, rng=None, prior_map=None):
    """Official reverse pass: z = squeeze8(colour map) (+ temperature * eps), decoded.

    ``prior_map`` (B, H, W, 3), if given, replaces the colour map that defines z (e.g. one
    computed on the whole image for a tile of it); None (default) is the official behaviour.
    Returns the raw, unclipped (B, H, W, 3) output.
    """
    features = self.condition(inputs)
    if prior_map is None:
      z = self.prior_mean(features)
    else:
      z = squeeze2d(prior_map, self.latent_factor)
    if rng is not None:
      z = sample_gaussian(rng, z, temperature)
    return self.flowUpsamplerNet.inverse(z, features)[0]

  def __call__(self, inputs, x):
    """Initialisation entry point: the encode direction touches every parameter."""
    return self.encode(inputs, x)
