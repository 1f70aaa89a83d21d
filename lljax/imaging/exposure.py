"""Exposure control of an enhanced photo: its mean brightness moved to a target.

The papers' GT-mean protocols (LLFlow's ``test.py`` and the ones after it) scale the output so
that its mean grey level equals the ground truth's. ``adjust_exposure`` does the same against a
target brightness instead, which a user picks (or ``"auto"``), without a ground truth:

* brightness is the mean grey level of the sRGB values, grey = 0.299 R + 0.587 G + 0.114 B
  (OpenCV's ``RGB2GRAY``, as that protocol code measures it), in [0, 1];
* the gain is applied in linear light (sRGB decoded), so colours keep their ratios, and values
  above a knee (0.8 in linear light) roll off smoothly towards 1 instead of clipping: the curve
  is continuous with slope 1 at the knee and approaches 1 without a cut, so highlights keep detail;
* the gain is found by bisection on the histogram of the image's 16-bit levels (the tests:
  within 1/255 of the target; targets a photo cannot reach end at the gain limit, 256x).

``AUTO_TARGET`` (0.43) is the median mean grey level of the five daylight photos of lljax's
embedded default data (astronaut 0.453, chelsea 0.468, coffee 0.406, motorcycle 0.426 and 0.414).
"""

import numpy as np

from lljax.imaging.srgb import linear_to_srgb, srgb_to_linear

AUTO_TARGET = 0.43
KNEE = 0.8
_GREY = np.array([0.299, 0.587, 0.114], np.float64)
_MAX_GAIN = 256.0
_LEVELS = 65535


def brightness(image):
  """Mean grey level of an HWC sRGB image in [0, 1] (OpenCV's RGB2GRAY weights)."""
  return float(np.mean(np.asarray(image, np.float64)[..., :3] @ _GREY))


def _roll_off(v):
  """Identity below ``KNEE``; above it a smooth shoulder towards 1 (slope 1 at the knee)."""
  over = np.maximum(v - KNEE, 0.0)
  return np.minimum(v, KNEE) + (1.0 - KNEE) * np.tanh(over / (1.0 - KNEE))


def _apply(linear, gain):
  return linear_to_srgb(_roll_off(linear * gain))


def target_of(exposure):
  """The target brightness of an ``exposure`` setting: None (no change), "auto" or a number in (0, 1)."""
  if exposure is None:
    return None
  if isinstance(exposure, str):
    if exposure == "auto":
      return AUTO_TARGET
    try:
      exposure = float(exposure)
    except ValueError:
      raise ValueError(f"exposure {exposure!r}: use 'auto' or a mean brightness in (0, 1)") from None
  if not 0.0 < float(exposure) < 1.0:
    raise ValueError(f"exposure {exposure!r}: a target mean brightness must be in (0, 1)")
  return float(exposure)


def adjust_exposure(image, exposure):
  """HWC float sRGB image in [0, 1] -> the same with its ``brightness`` at ``exposure``'s target
  (``target_of``); None returns it unchanged. float32 out; alpha (a 4th channel) is kept."""
  target = target_of(exposure)
  if target is None:
    return image
  image = np.asarray(image, np.float32)
  rgb = np.clip(image[..., :3], 0.0, 1.0)
  # The mean of a per-value curve is the curve's mean over a histogram: search on 16-bit levels.
  levels = np.rint(rgb * _LEVELS).astype(np.int64).reshape(-1, 3)
  weights = np.stack([np.bincount(levels[:, c], minlength=_LEVELS + 1) for c in range(3)], -1) * _GREY
  weights /= len(levels)
  level_linear = srgb_to_linear(np.arange(_LEVELS + 1) / _LEVELS)
  bright = lambda log_gain: float(np.sum(_apply(level_linear, np.exp(log_gain))[:, None] * weights))
  lo, hi = -np.log(_MAX_GAIN), np.log(_MAX_GAIN)
  for _ in range(50):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if bright(mid) < target else (lo, mid)
  out = _apply(srgb_to_linear(rgb), np.exp(0.5 * (lo + hi))).astype(np.float32)
  return np.concatenate([out, image[..., 3:]], axis=-1) if image.shape[-1] > 3 else out
