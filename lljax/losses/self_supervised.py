"""Training targets built from the low-light input alone (no normal-light image).

``exposure_normalised`` is the pseudo-target of SSFlow's self-supervised mode
(``configs/ssflow.py:self_supervised``): the low image multiplied, per image, by ONE gain that
brings the image's mean to a mid-grey ``level``. A gain common to the three channels leaves the colour
map x / sum_c x (LLFlow/SSFlow's illumination-invariant "colour map") exactly unchanged, so the
target is colour-map consistent with the input by construction; only its brightness is set, by
a single exposure prior. Its noise is the input's noise amplified by the gain: the flow is left
to model it (decoding the latent mean removes what the likelihood treats as noise).
"""

import jax.numpy as jnp


def exposure_normalised(low, level=0.5, mean=None, eps=1e-3):
  """low: (B, H, W, C) in [0, 1] -> clip(low * level / (mean + eps), 0, 1).

  ``mean`` (B,) is each image's mean value; give the mean of the WHOLE image when ``low`` holds
  training crops, so that the gain is the photo's and does not flatten every crop to the same
  brightness. None: the mean of ``low`` itself.
  """
  if mean is None:
    mean = jnp.mean(low, axis=(1, 2, 3))
  mean = jnp.reshape(mean, (-1, 1, 1, 1))
  return jnp.clip(low * (level / (mean + eps)), 0.0, 1.0)
