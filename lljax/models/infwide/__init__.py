"""INFWIDE: variants, factory and the model-family hooks used by trainers and the API."""

import jax.numpy as jnp

from lljax import models
from lljax.models.infwide.model import INFWIDE, half_size

KIND = "supervised"
CONVERTER = "lljax.convert.infwide"
PAD_MULTIPLE = 1  # any size: the ResUNet pads itself, the U-Nets pad/crop their skips
PAD_MODE = "edge"
OBJECTIVE = "infwide"  # lljax.losses.infwide_loss, used by the supervised trainer
NEEDS_KERNEL = True  # enhance() takes a blur kernel per image
KERNEL_SIZE = 37  # the PSF support of the training data (NightShot, lljax.imaging.motion)
# `python -m lljax.enhance` tiles larger photos. Whole images are exact (the Wiener NSR is
# estimated per image); a whole 1080p image peaks at 3.8 GB RSS on CPU
# (benchmarks/infwide_memory.py), so up to 4 MP runs whole on a 24 GB machine.
MAX_MEGAPIXELS = 4.0

VARIANTS = {
    # srcs/model/infwide_model.py (conf/network/infwide.yaml): 15,742,342 parameters.
    "release": dict(feat=16, unet=(32, 64, 128, 256), unet_nb=2, fsr_feats=32, fsr_resblocks=3,
                    xrf_feats=32, xrf_resblocks=3, xrf_convs=3),
    # For tests and quick CPU runs.
    "tiny": dict(feat=4, unet=(4, 8, 8, 16), unet_nb=1, fsr_feats=4, fsr_resblocks=1,
                 xrf_feats=4, xrf_resblocks=1, xrf_convs=2),
}


def Model(variant=None, **overrides):  # pylint: disable=invalid-name
  """Builds an ``INFWIDE`` module from a variant name and/or explicit hyper-parameters."""
  return models.build(INFWIDE, VARIANTS, "INFWIDE", variant, overrides)


def real_capture_input(image, saturation=1.2):
  """The official preprocessing of real captures (``status=realexp``), on the host.

  HWC float [0, 1] -> (image / saturation symmetric-padded by floor(H/2), floor(W/2) on each
  side: about 4x the pixels, window (top, left, H, W) of the photo in it). Run the model on the
  padded image with the photo's kernel, then ``real_capture_crop``. The division matches the
  training inputs, which never exceed 1 / 1.2; the output stays on that scale, as officially.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  top, left = h // 2, w // 2
  padded = np.pad(image / np.float32(saturation), ((top, top), (left, left), (0, 0)), mode="symmetric")
  return padded, (top, left, h, w)


def real_capture_crop(output, window):
  """Crops a model output (HWC) on a ``real_capture_input`` image back to the photo.

  (The official tester crops H' = padded_H // 2 rows from floor(H' / 2), which loses the last
  row/column of odd-sized photos; we return exactly the photo's window.)
  """
  top, left, h, w = window
  return output[top:top + h, left:left + w]


def host_features(low_u8):
  """INFWIDE needs no full-image host preprocessing (its NSR is computed in the graph)."""
  del low_u8
  return {}


def init_inputs(module, size=None):
  """Smallest valid ``module.init`` arguments (only shapes matter): (low, kernel)."""
  del module
  side = size or 16
  return (jnp.zeros((1, side, side, 3), jnp.float32), jnp.ones((1, 3, 3), jnp.float32) / 9.0)


__all__ = ["CONVERTER", "INFWIDE", "KERNEL_SIZE", "KIND", "MAX_MEGAPIXELS", "Model", "NEEDS_KERNEL", "OBJECTIVE",
           "PAD_MULTIPLE", "PAD_MODE", "VARIANTS", "half_size", "host_features", "init_inputs", "real_capture_crop",
           "real_capture_input"]
