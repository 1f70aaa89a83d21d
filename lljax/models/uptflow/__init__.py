"""UPT-Flow: variants, factory and the model-family hooks used by trainers and the API."""

import math

import jax.numpy as jnp

from lljax import models
from lljax.models.uptflow.model import UPTFlow, unbalanced_point_map

KIND = "flow"
CONVERTER = "lljax.convert.uptflow"
PAD_MULTIPLE = 8

# The released model (UPT-Flow.yml + MSFormer's defaults); only the window size differs.
_RELEASE = dict(dim=48, heads=(2, 2, 4, 8), depths=(2,) * 7, num_heads=(1, 2, 4, 8, 8, 4, 2), num_refinement=2,
                ffn_expansion_factor=2.66, mlp_ratio=4.0, K=8, L=3, n_noaffine=2, hidden=64)

VARIANTS = {
    # The LOL-v2 (real and synthetic) checkpoints: window size 5. 23,437,502 params.
    "lol": dict(_RELEASE, win_size=5),
    # The MIT-Adobe FiveK, SMID and SDSD checkpoints: window size 8. 23,445,854 params (the paper's 23.45 M).
    "ws8": dict(_RELEASE, win_size=8),
    # For tests and quick CPU runs: the full U-Net and flow skeleton, but blocks (one plain and one
    # shifted window block, two Restormer blocks) only at full resolution; the other stages are
    # empty (identity), which keeps XLA's CPU compile time of a train step near a minute.
    "tiny": dict(dim=4, heads=(1, 1, 2, 2), depths=(2, 0, 0, 0, 0, 0, 0), num_heads=(1, 1, 2, 2, 2, 1, 1),
                 num_refinement=0, ffn_expansion_factor=2.66, mlp_ratio=2.0, win_size=4, K=1, L=3, n_noaffine=1,
                 hidden=16),
}

def Model(variant=None, **overrides):  # pylint: disable=invalid-name
  """Builds a ``UPTFlow`` module from a variant name and/or explicit hyper-parameters."""
  return models.build(UPTFlow, VARIANTS, "UPT-Flow", variant, overrides)


def host_features(low_u8):
  """UPT-Flow needs no host-side preprocessing (its point map is computed in the model)."""
  del low_u8
  return {}


def tile_multiple(module):
  """Tiles of a photo start at multiples of this: MSFormer's attention windows are ``win_size``
  pixels at 1/8 scale, so only then does a tile see the same window grid as the whole image."""
  return math.lcm(PAD_MULTIPLE, 8 * module.win_size)


def init_inputs(module, size=None):
  """Smallest valid ``module.init`` arguments (only their shapes matter): (inputs, x)."""
  side = size or 2**module.L
  image = jnp.zeros((1, side, side, 3), jnp.float32)
  return ({"low": image}, image)


__all__ = ["CONVERTER", "KIND", "Model", "PAD_MULTIPLE", "UPTFlow", "VARIANTS", "host_features", "init_inputs", "tile_multiple",
           "unbalanced_point_map"]
