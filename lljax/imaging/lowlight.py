"""Low light: under-exposure with Poisson-Gaussian sensor noise (numpy, seeded).

Everything here works on numpy arrays of any shape (typically HxWx3) and
draws random numbers only from a `np.random.Generator` passed in or made
with `np.random.default_rng(seed)`, so one seed always gives the same image.
Value conventions: see `lljax.imaging.srgb`.

Low-light model (`synthesize_low_light`), applied per pixel and channel:

    x      = srgb_to_linear(normal / 255)            # scene radiance, [0, 1]
    d      = exposure * x                            # fewer photons arrive
    counts ~ Poisson(photons_at_white * d)           # shot noise
    y      = counts / photons_at_white + N(0, read_sigma**2)   # read noise
    low    = quantize_u8(linear_to_srgb(y))          # camera output, 8 bit

so that E[y] = d and Var[y] = d / photons_at_white + read_sigma**2, the
Poisson-Gaussian (heteroscedastic) model of raw sensor noise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lljax.imaging import motion
from lljax.imaging import srgb


def darken(linear: np.ndarray, exposure: float) -> np.ndarray:
  """Scales linear radiance by `exposure` (shorter exposure / less light).

  Args:
    linear: float array, linear RGB (any shape).
    exposure: positive factor, < 1 darkens.

  Returns:
    float64 array `exposure * linear`, same shape.
  """
  return np.asarray(linear, dtype=np.float64) * float(exposure)


def poisson_gaussian_noise(
    linear: np.ndarray,
    rng: np.random.Generator,
    photons_at_white: float,
    read_sigma: float,
) -> np.ndarray:
  """Adds sensor noise: Poisson shot noise plus Gaussian read noise.

  The clean signal `linear` (clipped below at 0) is converted to an expected
  photo-electron count `linear * photons_at_white`, a Poisson count is drawn
  and divided back by `photons_at_white`; then N(0, read_sigma**2) is added.
  Hence E[out] = linear and Var[out] = linear / photons_at_white +
  read_sigma**2 for linear >= 0.

  Args:
    linear: float array, clean linear signal (any shape), usually in [0, 1].
    rng: random generator; the only source of randomness.
    photons_at_white: photo-electrons collected at linear value 1.0 (> 0).
    read_sigma: standard deviation of the read noise, in linear units
      (fraction of white), >= 0.

  Returns:
    float64 array of the same shape, in linear units; NOT clipped (it can be
    negative or exceed 1).
  """
  signal = np.maximum(np.asarray(linear, dtype=np.float64), 0.0)
  counts = rng.poisson(signal * photons_at_white)
  read = rng.normal(0.0, read_sigma, size=signal.shape)
  return counts / photons_at_white + read


# Read noise of 0.5-3 DN as seen at black in the 8-bit sRGB output, where the
# sRGB curve has slope 12.92: 1.5e-4 .. 9.1e-4 of white in linear units
# (0.03-1.8 electrons with 200-2000 electrons at white). The same 0.5-3 DN
# taken in *linear* 8-bit units is 12.92x larger and makes LOL-dark images
# mostly noise (sRGB std ~15 DN, pure noise at exposure 0.01), far noisier
# than LOL's camera-processed low images.
_READ_SIGMA_DN_AT_BLACK = (0.5, 3.0)


@dataclasses.dataclass(frozen=True)
class LowLightParams:
  """Ranges of the random low-light degradation.

  Attributes:
    exposure_range: (min, max) of the exposure factor applied in linear RGB,
      drawn log-uniformly. (0.01, 0.1) maps photos of mean sRGB brightness
      0.4-0.5 to mean brightness about 0.03-0.15, the range of LOL's low
      images.
    photons_range: (min, max) photo-electrons at white level of the darkened
      image (the sensor gain after darkening), drawn log-uniformly. A pixel
      of linear value d collects photons * d electrons on average.
    read_sigma_range: (min, max) read-noise standard deviation in linear
      units (fraction of white), drawn log-uniformly. The default is 0.5-3 DN
      of the 8-bit sRGB output at black, i.e. (0.5, 3) / 255 / 12.92.
  """

  exposure_range: tuple[float, float] = (0.01, 0.1)
  photons_range: tuple[float, float] = (200.0, 2000.0)
  read_sigma_range: tuple[float, float] = (
      _READ_SIGMA_DN_AT_BLACK[0] / 255.0 / srgb.LINEAR_SLOPE,
      _READ_SIGMA_DN_AT_BLACK[1] / 255.0 / srgb.LINEAR_SLOPE)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
  low, high = bounds
  return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def synthesize_low_light(
    normal_u8: np.ndarray,
    seed: int,
    params: LowLightParams = LowLightParams(),
) -> tuple[np.ndarray, dict[str, Any]]:
  """Makes a noisy under-exposed 8-bit image from a well-exposed one.

  Steps (see the module docstring for the formulas): sRGB -> linear; scale
  by `exposure` ~ LogUniform(params.exposure_range); Poisson shot noise with
  `photons` ~ LogUniform(params.photons_range) electrons at white; Gaussian
  read noise with sigma ~ LogUniform(params.read_sigma_range) (linear
  units); linear -> sRGB; clip and round to uint8. The draws happen in this
  order from `np.random.default_rng(seed)`, so the result depends only on
  (normal_u8, seed, params).

  Args:
    normal_u8: uint8 array HxWx3 (any shape works), sRGB, the reference.
    seed: non-negative int.
    params: degradation ranges.

  Returns:
    low_u8: uint8 array, same shape as `normal_u8`.
    info: {'exposure': float, 'photons': float, 'read_sigma': float} with
      the drawn values (read_sigma in linear units, fraction of white).
  """
  return low_light_from_linear(srgb.u8_to_linear(normal_u8), seed, params)


def low_light_from_linear(
    linear: np.ndarray,
    seed: int,
    params: LowLightParams = LowLightParams(),
) -> tuple[np.ndarray, dict[str, Any]]:
  """`synthesize_low_light` on a linear-RGB image (e.g. one blurred in linear light).

  Same draws in the same order from `np.random.default_rng(seed)`, so
  `synthesize_low_light(u8, seed)` equals
  `low_light_from_linear(srgb.srgb_to_linear(u8 / 255), seed)`.

  Args:
    linear: float array HxWx3 (any shape), linear RGB in [0, 1].
    seed: non-negative int.
    params: degradation ranges.

  Returns:
    (low_u8 uint8 array of the same shape, info) as `synthesize_low_light`.
  """
  rng = np.random.default_rng(seed)
  exposure = _log_uniform(rng, params.exposure_range)
  photons = _log_uniform(rng, params.photons_range)
  read_sigma = _log_uniform(rng, params.read_sigma_range)
  noisy = poisson_gaussian_noise(darken(linear, exposure), rng, photons, read_sigma)
  low_u8 = srgb.quantize_u8(srgb.linear_to_srgb(noisy))
  info = {'exposure': exposure, 'photons': photons, 'read_sigma': read_sigma}
  return low_u8, info


def synthesize_low_light_blur(
    normal_u8: np.ndarray,
    seed: int,
    params: LowLightParams = LowLightParams(),
    kernel_size: int = motion.KERNEL_SIZE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """Motion blur in linear light, then the low-light model (`synthesize_low_light`).

  The scene radiance is blurred (integration over the exposure) before it is
  darkened and the sensor adds noise. The kernel comes from
  `default_rng([seed, 1])`; the low-light draws from `default_rng(seed)` as
  in `synthesize_low_light`, so the exposure/noise parameters of a seed are
  those of the `lowlight` synthesis.

  Returns:
    (low uint8 [H, W, 3], kernel float32 [k, k], info with the low-light
    parameters and the kernel info).
  """
  kernel, kernel_info = motion.motion_kernel(np.random.default_rng([seed, 1]), kernel_size)
  blurred = np.clip(motion.blur_circular(srgb.u8_to_linear(normal_u8), kernel), 0.0, 1.0)
  low_u8, info = low_light_from_linear(blurred, seed, params)
  return low_u8, kernel, {**info, **kernel_info}
