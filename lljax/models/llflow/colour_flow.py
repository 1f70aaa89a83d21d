"""What LLFlow and SSFlow share: a conditional flow whose latent mean is a colour map.

``ColourMapFlow`` holds the model methods of both (encode, decode, enhance, the prior); a
subclass sets up ``RRDB`` (its encoder) and ``flowUpsamplerNet`` and defines ``condition``
(inputs -> conditioning features and ``color_map``) and ``target_colour_map`` (the alternative
prior mean of training, from the target image). Arrays are NHWC; images in [0, 1].
"""

import flax.linen as nn
import jax.numpy as jnp

from lljax.flows import sample_gaussian
from lljax.nn import squeeze2d


class ColourMapFlow(nn.Module):
  """Prior N(squeeze8(colour map), I): ONE factor-2^L squeeze of the colour map, whose channel
  order differs from the flow's L factor-2 squeezes; both are kept exactly (the official code)."""

  @property
  def latent_factor(self):
    return 2**self.L

  def condition(self, inputs):
    raise NotImplementedError

  def target_colour_map(self, target):
    raise NotImplementedError

  def prior_mean(self, features, target=None, use_target=False):
    """squeeze8 of the learned colour map, or of ``target_colour_map(target)`` when
    ``use_target`` (may be a traced bool: the per-batch coin with ``train_gt_ratio``)."""
    mean = squeeze2d(features["color_map"], self.latent_factor)
    if target is None:
      return mean
    target_mean = squeeze2d(self.target_colour_map(target), self.latent_factor)
    return jnp.where(use_target, target_mean, mean)

  def encode(self, inputs, x, target=None, use_target_prior=False):
    """Encode direction. x: (B, H, W, 3) -> dict(z, logdet [B], prior_mean).

    ``target`` (default: x) gives the alternative prior mean when ``use_target_prior``.
    """
    features = self.condition(inputs)
    z, logdet = self.flowUpsamplerNet.forward(x, features)
    target = x if target is None else target
    return {"z": z, "logdet": logdet, "prior_mean": self.prior_mean(features, target, use_target_prior)}

  def decode(self, inputs, z):
    """Decode direction. z: (B, H/8, W/8, 192) -> (x (B, H, W, 3), logdet [B])."""
    return self.flowUpsamplerNet.inverse(z, self.condition(inputs))

  def prior_map(self, inputs):
    """The learned colour map (B, H, W, 3): the latent mean is its squeeze8 (encoder only)."""
    return self.condition(inputs)["color_map"]

  def enhance(self, inputs, temperature=0.0, rng=None, prior_map=None):
    """Official reverse pass: z = squeeze8(colour map) (+ temperature * eps), decoded.

    ``prior_map`` (B, H, W, 3), if given, replaces the colour map that defines z (e.g. one
    computed on the whole image for a tile of it); None (default) is the official behaviour
    (which ignores any sampled z; ``temperature`` > 0 is lljax's opt-in z = mean + t eps).
    Returns the raw, unclipped (B, H, W, 3) output.
    """
    features = self.condition(inputs)
    z = self.prior_mean(features) if prior_map is None else squeeze2d(prior_map, self.latent_factor)
    if rng is not None:
      z = sample_gaussian(rng, z, temperature)
    return self.flowUpsamplerNet.inverse(z, features)[0]

  def __call__(self, inputs, x):
    """Initialisation entry point: the encode direction touches every parameter."""
    return self.encode(inputs, x)
