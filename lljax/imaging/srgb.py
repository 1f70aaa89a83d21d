"""sRGB encoding and 8-bit camera output (numpy).

Value conventions, shared by `lowlight`, `motion` and `camera`:
  * sRGB images: float in [0, 1] (display-referred, gamma encoded), or uint8.
  * linear images: float, proportional to scene radiance; 1.0 is the white
    level (the value that maps to sRGB 1.0 / uint8 255).
"""

from __future__ import annotations

import numpy as np

# sRGB (IEC 61966-2-1) transfer function constants.
LINEAR_SLOPE = 12.92  # slope of the curve's linear segment (near black)
_SRGB_ENCODED_KNEE = 0.04045
_SRGB_LINEAR_KNEE = 0.0031308
_SRGB_GAMMA = 2.4


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
  """Exact sRGB decoding (IEC 61966-2-1).

  Args:
    x: float array, sRGB values in [0, 1] (any shape).

  Returns:
    float64 array of the same shape, linear values in [0, 1]:
    x / 12.92 for x <= 0.04045, else ((x + 0.055) / 1.055) ** 2.4.
  """
  x = np.asarray(x, dtype=np.float64)
  curve = ((np.maximum(x, _SRGB_ENCODED_KNEE) + 0.055) / 1.055) ** _SRGB_GAMMA
  return np.where(x <= _SRGB_ENCODED_KNEE, x / LINEAR_SLOPE, curve)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
  """Exact sRGB encoding (IEC 61966-2-1), the inverse of `srgb_to_linear`.

  Args:
    x: float array, linear values (any shape). Values outside [0, 1] are
      allowed (noisy signals): below the knee the linear segment 12.92 * x
      is used (so negatives stay negative), above 1 the power curve goes on.

  Returns:
    float64 array of the same shape; sRGB in [0, 1] for x in [0, 1].
  """
  x = np.asarray(x, dtype=np.float64)
  curve = 1.055 * np.maximum(x, _SRGB_LINEAR_KNEE) ** (1.0 / _SRGB_GAMMA) - 0.055
  return np.where(x <= _SRGB_LINEAR_KNEE, x * LINEAR_SLOPE, curve)


def quantize_u8(x: np.ndarray) -> np.ndarray:
  """Clips to [0, 1] and rounds half up to 8 bit.

  Args:
    x: float array in (nominally) [0, 1], any shape.

  Returns:
    uint8 array, floor(clip(x, 0, 1) * 255 + 0.5), same shape.
  """
  x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
  return np.floor(x * 255.0 + 0.5).astype(np.uint8)


# srgb_to_linear of every uint8 code; a lookup beats the power (benchmarks/README.md).
_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)


def u8_to_linear(image_u8: np.ndarray) -> np.ndarray:
  """uint8 sRGB -> float64 linear RGB in [0, 1] (exact, via a lookup table)."""
  image_u8 = np.asarray(image_u8)
  if image_u8.dtype != np.uint8:
    raise TypeError(f'expected uint8, got {image_u8.dtype}')
  return _U8_TO_LINEAR[image_u8]


def jpeg_roundtrip(image_u8: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
  """Encodes to JPEG with Pillow at `quality` and decodes back.

  Deterministic for a given Pillow/libjpeg build (not bit-identical across
  builds).

  Args:
    image_u8: uint8 [H, W, 3].
    quality: 1..95 (Pillow's scale; 100 disables some quantisation tables).
    subsampling: Pillow's chroma subsampling (0: 4:4:4, 1: 4:2:2, 2: 4:2:0).

  Returns:
    uint8 [H, W, 3].
  """
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  image_u8 = np.asarray(image_u8)
  if image_u8.dtype != np.uint8 or image_u8.ndim != 3 or image_u8.shape[-1] != 3:
    raise ValueError(f'jpeg_roundtrip needs uint8 HxWx3, got {image_u8.dtype} {image_u8.shape}')
  if not 1 <= quality <= 100:
    raise ValueError(f'quality must be in [1, 100], got {quality}')
  buffer = io.BytesIO()
  Image.fromarray(image_u8).save(buffer, format='JPEG', quality=int(quality),
                                 subsampling=subsampling)
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    return np.asarray(decoded.convert('RGB'))
