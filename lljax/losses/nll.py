"""Flow negative log-likelihood exactly as the SRFlow/LLFlow code logs it.

* Dequantisation: ``x + (U[0, 1) - 0.5) / quant`` with ``quant = 32`` in the released configs
  (not 256), and a log-det term ``-log(quant) * H * W`` (H*W, not 3*H*W: SRFlow's convention).
* ``nll = -(logdet + log N(z; mean, I)) / (ln 2 * H * W)``: bits per *pixel location*, summed
  over the colour channels (divide by 3 for bits per dimension).
"""

import math

import jax
import jax.numpy as jnp

from lljax.flows import gaussian_log_prob


def dequantize(rng, x, quant=32):
  """x: (B, H, W, C) in [0, 1] -> (x + (u - 0.5) / quant, logdet [B] = -log(quant) * H * W)."""
  noise = jax.random.uniform(rng, x.shape, x.dtype)
  logdet = jnp.full((x.shape[0],), -math.log(quant) * x.shape[1] * x.shape[2], x.dtype)
  return x + (noise - 0.5) / quant, logdet


def nll_bits_per_pixel(z, logdet, prior_mean, pixels):
  """-(logdet + log N(z; prior_mean, I)) / (ln 2 * pixels) -> [B].

  Args:
    z: latent (B, ...). logdet: [B] total log-det in nats (incl. dequantisation).
    prior_mean: same shape as z, or None for a standard normal.
    pixels: H * W of the image that was encoded.
  """
  return -(logdet + gaussian_log_prob(z, prior_mean)) / (math.log(2.0) * pixels)
