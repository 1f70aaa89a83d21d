"""LLFlow (Wang et al., AAAI 2022): low-light enhancement with a conditional normalizing flow.

The flow maps a normally lit image x (NHWC, [0, 1]) to a latent z whose prior is
N(squeeze8(colour map), I), conditioned on an RRDB encoding of the low-light image. Enhancing
runs the flow backwards from z = squeeze8(g(x_low)), the encoder's learned colour map, as the
official ``reverse_flow`` does (the official code ignores the sampled z; ``temperature`` > 0
is our opt-in sampling z = mean + temperature * eps, the paper's description).

Faithfulness notes (deviations are none in the math; the list records port choices):
* The model methods (encode, decode, enhance, the prior) are ``ColourMapFlow``'s, shared with
  SSFlow; the latent mean is ONE factor-8 squeeze of the colour map.
* The log-low input is computed inside the model from the RGB low image, and the encoder
  recovers ``low + 1e-3`` with ``exp`` as the official one does.
* The official encoder's unused modules (``downconv3``, ``HRconv``, ``conv_last``,
  ``awb_para``) and the flow's unused ``f`` conv are not built.
* Inputs must have H and W divisible by 2^L (8); the public API pads (reflect) and crops.
"""

from typing import Sequence

import jax.numpy as jnp

from lljax.models.llflow.colour_flow import ColourMapFlow
from lljax.models.llflow.encoder import ConEncoder1, colour_map, stack_features
from lljax.models.llflow.flow_net import FlowUpsamplerNet


def log_low(low):
  """Official LQ log channel: log(clamp(low + 1e-3, min=1e-3))."""
  return jnp.log(jnp.maximum(low + 1e-3, 1e-3))


class LLFlow(ColourMapFlow):
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

  def condition(self, inputs):
    """Runs the encoder. Returns the flow's conditioning features and ``color_map``."""
    lq = jnp.concatenate([log_low(inputs["low"]), inputs["histeq"]], axis=-1)
    results = self.RRDB(lq)
    self.sow("intermediates", "encoder", results)
    features = stack_features(results, tuple(self.stack_blocks))
    features["color_map"] = results["color_map"]
    return features

  def target_colour_map(self, target):
    """The GT prior mean's map: the target's chromaticity x / (sum_c x + 1e-4)."""
    return colour_map(target)
