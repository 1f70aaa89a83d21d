"""LLFlow's input preprocessing: per-channel histogram equalisation and the log-low input.

The official data loader equalises each uint8 channel of the *full* low image with OpenCV's
``equalizeHist`` before any crop, and the network receives
``[log(clamp(low + 1e-3, min=1e-3)), histeq / 255]`` (6 channels). ``equalize_hist`` below
reproduces OpenCV's algorithm exactly in NumPy, so OpenCV is not a dependency.
"""

import numpy as np


def _equalize_channel(channel):
  """OpenCV ``equalizeHist`` of one uint8 channel (H, W)."""
  hist = np.bincount(channel.ravel(), minlength=256)
  total = channel.size
  first = int(np.flatnonzero(hist)[0])
  if hist[first] == total:  # a constant image maps to its own value
    return np.full_like(channel, first)
  scale = 255.0 / (total - hist[first])
  cumulative = np.cumsum(hist)
  lut = np.zeros(256, np.float64)
  lut[first + 1 :] = (cumulative[first + 1 :] - hist[first]) * scale
  # OpenCV's saturate_cast rounds half to even (cvRound); np.rint does the same.
  lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
  return lut[channel]


def equalize_hist(image_u8):
  """Per-channel histogram equalisation of an (H, W, C) uint8 image -> (H, W, C) uint8."""
  image_u8 = np.asarray(image_u8)
  if image_u8.dtype != np.uint8 or image_u8.ndim != 3:
    raise ValueError(f"equalize_hist expects an HxWxC uint8 image, got {image_u8.dtype} {image_u8.shape}")
  return np.stack([_equalize_channel(image_u8[..., c]) for c in range(image_u8.shape[-1])], axis=-1)


def host_features(low_u8):
  """Features computed on the host from the full uint8 low image: ``{"histeq": uint8 HxWx3}``."""
  return {"histeq": equalize_hist(low_u8)}
