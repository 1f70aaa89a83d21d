"""SSFlow: variants, factory and the model-family hooks used by trainers and the API."""

import jax.numpy as jnp

from lljax import models
from lljax.models.ssflow.model import SSFlow, smoothed_colour_map

KIND = "flow"
CONVERTER = "lljax.convert.ssflow"
PAD_MULTIPLE = 8
# Parameters only the learned prior uses (the OAtt-UNet's colour-map branch): a training step whose prior is the
# target's does not update them (torch: their grad is None; lljax.trainers.flow).
PRIOR_ONLY_PARAMS = ("RRDB/denoise/D_block0_0", "RRDB/denoise/D_block0_1")

VARIANTS = {
    # confs/LOL_smallNet.yml of shibaoshun/SSFlow (the released model, trained on LOL-Blur):
    # 9,648,033 trainable parameters used by the forward pass (as the official count), plus
    # 266,432 buffer values (Gram-Schmidt and blur filters, BatchNorm running statistics).
    "lol_blur": dict(nf=32, channels=(32, 64, 128, 128), cond_channels=64, attn_size=64,
                     K=4, L=3, n_noaffine=2, hidden=64),
    # For tests and quick CPU runs.
    "tiny": dict(nf=8, channels=(8, 16, 16, 16), cond_channels=16, attn_size=8,
                 K=1, L=3, n_noaffine=1, hidden=8),
}


def Model(variant=None, **overrides):  # pylint: disable=invalid-name
  """Builds an ``SSFlow`` module from a variant name and/or explicit hyper-parameters."""
  return models.build(SSFlow, VARIANTS, "SSFlow", variant, overrides)


def host_features(low_u8):
  """SSFlow's encoder ignores the histogram-equalised channels LLFlow's input carries: none."""
  del low_u8
  return {}


def init_inputs(module, size=None):
  """Smallest valid ``module.init`` arguments (only their shapes matter): (inputs, x)."""
  side = size or 2 * 2**module.L
  image = jnp.zeros((1, side, side, 3), jnp.float32)
  return ({"low": image}, image)


__all__ = ["CONVERTER", "KIND", "Model", "PAD_MULTIPLE", "PRIOR_ONLY_PARAMS", "SSFlow", "VARIANTS", "host_features", "init_inputs",
           "smoothed_colour_map"]
