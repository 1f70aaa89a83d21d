"""Diagonal Gaussian prior with unit variance (``GaussianDiag`` with logs = 0)."""

import math

import jax
import jax.numpy as jnp

from lljax.nn.precision import logdet_dtype

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z, mean=None):
  """log N(z; mean, I) summed over all but the batch axis. z: (B, ...) -> [B] (nats)."""
  z = z.astype(logdet_dtype(z))
  d = z if mean is None else z - mean.astype(z.dtype)
  return jnp.sum(-0.5 * (d**2 + LOG_2PI), axis=tuple(range(1, z.ndim)))


def sample_gaussian(rng, mean, temperature):
  """mean + temperature * eps, eps ~ N(0, I)."""
  return mean + temperature * jax.random.normal(rng, mean.shape, mean.dtype)
