"""Activations with PyTorch's default numerics."""

import jax


def gelu(x):
  """``torch.nn.GELU()`` / ``F.gelu``: the exact erf form (``jax.nn.gelu`` defaults to tanh)."""
  return jax.nn.gelu(x, approximate=False)
