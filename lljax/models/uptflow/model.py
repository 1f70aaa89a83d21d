"""UPT-Flow (Xu et al., Pattern Recognition 2025): LLFlow's conditional flow with the MSFormer
encoder, cross couplings with CBAM attention and a standard-normal prior.

The flow maps a normally lit image x (NHWC, [0, 1]) to z ~ N(0, I) of shape
(B, H/8, W/8, 192), conditioned on MSFormer features of the plain RGB low image (no log, no
histogram equalisation) and of its unbalanced point map. Enhancing decodes z = 0, as the
released test code does; ``temperature`` > 0 is our opt-in sampling z = temperature * eps.

Faithfulness notes (port choices; the math is the official one):
* The unbalanced point map is computed inside the model from the (padded) low image, as
  ``test.py`` computes it on the padded input; it is pointwise, so a crop's map is the map's crop.
* Conditioning (official ``rrdbPreprocessing``): each of fea_up2/1/0 (4 dim channels) gets the
  bilinearly resized (align_corners=False, no antialias) ``cat_f`` (2 dim) appended: 6 dim = 288.
* The flow's level -> feature mapping and layer indices are LLFlow's (``MultiLevelFlow``).
* The released decode log-det double-counts one coupling term (see ``CrossAffineCoupling``);
  lljax returns the exact one unless ``official_inverse_logdet``. Images are unaffected.
* Inputs must have H and W divisible by 8; the public API reflect-pads and crops back.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lljax.flows import CrossAffineCoupling, MultiLevelFlow, sample_gaussian
from lljax.models.uptflow.msformer import MSFormer
from lljax.nn import CBAM, resize_bilinear

FEATURES = ("fea_up0", "fea_up1", "fea_up2")


def unbalanced_point_map(low):
  """Official ``zero_map``: 1 where every RGB share c / (R + G + B + 1e-4) exceeds 0.1, else 0.

  low: (B, H, W, 3) in [0, 1] -> (B, H, W, 1) float in {0, 1}. Black pixels are 0.
  """
  r, g, b = low[..., 0:1], low[..., 1:2], low[..., 2:3]
  total = r + g + b + 1e-4
  balanced = (r / total > 0.1) & (g / total > 0.1) & (b / total > 0.1)
  return balanced.astype(low.dtype)


class FlowUpsamplerNet(MultiLevelFlow):
  """UPT-Flow's flow: LLFlow's layout with ``CrossAffineCoupling`` (1x1/3x3/1x1 nets + CBAM)."""

  K: int = 8
  hidden: int = 64
  affine_eps: float = 3e-4
  official_inverse_logdet: bool = False

  def make_coupling(self):
    return functools.partial(CrossAffineCoupling, hidden=self.hidden, eps=self.affine_eps, kernels=(1, 3, 1),
                             attention=CBAM, official_inverse_logdet=self.official_inverse_logdet)


class UPTFlow(nn.Module):
  """Conditional flow with submodules ``RRDB`` (MSFormer; the official attribute name) and
  ``flowUpsamplerNet``.

  Attributes:
    dim, heads, depths, num_heads, num_refinement, ffn_expansion_factor, win_size, mlp_ratio,
      drop_path_rate: encoder (see ``MSFormer``; stochastic depth only in training).
    K, L, n_noaffine, hidden, affine_eps: flow (K coupling steps per level).
    official_inverse_logdet: reproduce the released decode log-det quirk.

  Inputs everywhere are dicts with ``low`` (B, H, W, 3) in [0, 1].
  """

  dim: int = 48
  heads: Sequence[int] = (2, 2, 4, 8)
  depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2)
  num_heads: Sequence[int] = (1, 2, 4, 8, 8, 4, 2)
  num_refinement: int = 2
  ffn_expansion_factor: float = 2.66
  win_size: int = 5
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.1
  K: int = 8
  L: int = 3
  n_noaffine: int = 2
  hidden: int = 64
  affine_eps: float = 3e-4
  official_inverse_logdet: bool = False

  def setup(self):
    if self.L != 3:
      raise ValueError(f"UPT-Flow's encoder conditions exactly 3 flow levels, got L={self.L}")
    self.RRDB = MSFormer(self.dim, tuple(self.heads), tuple(self.depths), tuple(self.num_heads),
                         self.num_refinement, self.ffn_expansion_factor, self.win_size, self.mlp_ratio,
                         self.drop_path_rate)
    self.flowUpsamplerNet = FlowUpsamplerNet(self.K, self.L, self.n_noaffine, self.hidden, self.affine_eps,
                                             self.official_inverse_logdet)

  def latent_shape(self, image_shape):
    b, h, w, _ = image_shape
    f = 2**self.L
    return (b, h // f, w // f, 3 * f * f)

  def condition(self, inputs):
    """Runs MSFormer on ``inputs["low"]`` -> the flow's conditioning features (6 dim channels)."""
    low = inputs["low"]
    results = self.RRDB(low, unbalanced_point_map(low))
    self.sow("intermediates", "encoder", results)
    cat_f = results["cat_f"]
    return {k: jnp.concatenate([results[k], resize_bilinear(cat_f, results[k].shape[1:3])], axis=-1)
            for k in FEATURES}

  def encode(self, inputs, x, target=None, use_target_prior=False):
    """Encode direction. x: (B, H, W, 3) -> dict(z, logdet [B], prior_mean = zeros).

    ``target``/``use_target_prior`` are accepted for the flow trainer's interface and ignored:
    UPT-Flow's prior is N(0, I) (no colour-map mean).
    """
    del target, use_target_prior
    z, logdet = self.flowUpsamplerNet.forward(x, self.condition(inputs))
    return {"z": z, "logdet": logdet, "prior_mean": jnp.zeros_like(z)}

  def decode(self, inputs, z):
    """Decode direction. z: (B, H/8, W/8, 192) -> (x (B, H, W, 3), logdet [B])."""
    return self.flowUpsamplerNet.inverse(z, self.condition(inputs))

  def enhance(self, inputs, temperature=0.0, rng=None):
    """Official test path: decode z = 0 (+ temperature * eps). Raw, unclipped (B, H, W, 3)."""
    low = inputs["low"]
    z = jnp.zeros(self.latent_shape(low.shape), low.dtype)
    if rng is not None:
      z = sample_gaussian(rng, z, temperature)
    return self.flowUpsamplerNet.inverse(z, self.condition(inputs))[0]

  def __call__(self, inputs, x):
    """Initialisation entry point: the encode direction touches every parameter."""
    return self.encode(inputs, x)
