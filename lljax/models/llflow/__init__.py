"""LLFlow: variants, factory and the model-family hooks used by trainers and the API."""

import jax.numpy as jnp

from lljax import models
from lljax.models.llflow.model import LLFlow
from lljax.models.llflow.preprocess import equalize_hist, host_features

KIND = "flow"
CONVERTER = "lljax.convert.llflow"
PAD_MULTIPLE = 8
# Parameters only the learned prior uses (its colour-map head): a training step whose prior is the
# target's does not update them (torch: their grad is None; lljax.trainers.flow).
PRIOR_ONLY_PARAMS = ("RRDB/fine_tune_color_map",)

# Released configurations (code/confs/*.yml of wyf0912/LLFlow) plus reduced ones.
VARIANTS = {
    # LOL-pc.yml / LOLv2-pc.yml: 38.86 M params (37.68 M used by the forward pass).
    "lol": dict(nf=64, nb=24, stack_blocks=(1, 3, 5, 7), K=12, L=3, n_noaffine=2, hidden=64),
    "lol_v2": dict(nf=64, nb=24, stack_blocks=(1, 3, 5, 7), K=12, L=3, n_noaffine=2, hidden=64),
    # LOL_smallNet.yml: 5.43 M params (4.97 M used).
    "small": dict(nf=32, nb=4, stack_blocks=(1,), K=4, L=3, n_noaffine=2, hidden=64),
    # For tests and quick CPU runs.
    "tiny": dict(nf=8, nb=2, gc=8, stack_blocks=(0,), K=1, L=3, n_noaffine=1, hidden=8),
}


def Model(variant=None, **overrides):  # pylint: disable=invalid-name
  """Builds an ``LLFlow`` module from a variant name and/or explicit hyper-parameters."""
  return models.build(LLFlow, VARIANTS, "LLFlow", variant, overrides)


def init_inputs(module, size=None):
  """Smallest valid ``module.init`` arguments (only their shapes matter): (inputs, x)."""
  side = size or 2**module.L
  image = jnp.zeros((1, side, side, 3), jnp.float32)
  return ({"low": image, "histeq": image}, image)


__all__ = ["CONVERTER", "KIND", "LLFlow", "Model", "PAD_MULTIPLE", "PRIOR_ONLY_PARAMS", "VARIANTS", "equalize_hist", "host_features", "init_inputs"]
