"""INFWIDE's low-light CMOS camera noise and its night-blur synthesis (numpy, seeded).

srcs/utils/utils_noise_zzh.py, CMOS_Camera.take_photo_P as called by
srcs/data_loader/infwide_data_loaders.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lljax.imaging import motion


@dataclasses.dataclass(frozen=True)
class CameraNoiseParams:
  """INFWIDE's camera-noise parameters (conf/data/infwide_train_data.yaml).

  Per image, sigma_beta, sigma_r and dark_current are drawn uniformly from
  their ranges (in this order) and then the total gain kc = floor(U[kc_range))
  unless `kc` is fixed (INFWIDE's demo test uses kc = 4; the paper's
  benchmark folder is named blur_kc8).

  Attributes:
    sigma_beta_range: row-gain noise std (one gain per image row and channel).
    sigma_r_range: read-noise std, in electrons.
    dark_current_range: mean dark current n_d, in electrons.
    kc_range: [low, high) of the total camera gain (train: {4, ..., 15}).
    kc: a fixed total gain instead of kc_range (None: draw it).
    analog_gain: ka (6 in INFWIDE); the digital gain is kd = kc / ka.
    green_gain: green collects this many times more photons, at 1/this gain.
    salt_prob: a pixel becomes 255 (before the digital gain) with
      probability ka_c * salt_prob (ka_c: the channel's analog gain).
    pepper_prob: likewise becomes 0 with probability ka_c * pepper_prob.
    saturation: INFWIDE's `img_saturation` factor: the network input is
      clip(saturation * y, 0, 1) / saturation = min(y, 1 / saturation).
  """

  sigma_beta_range: tuple[float, float] = (0.01, 0.03)
  sigma_r_range: tuple[float, float] = (0.5, 4.0)
  dark_current_range: tuple[float, float] = (2.0, 8.0)
  kc_range: tuple[float, float] = (4.0, 16.0)
  kc: float | None = None
  analog_gain: float = 6.0
  green_gain: float = 2.0
  salt_prob: float = 1e-5
  pepper_prob: float = 1e-6
  saturation: float = 1.2


def sample_camera_noise(rng: np.random.Generator,
                        params: CameraNoiseParams = CameraNoiseParams()) -> dict[str, float]:
  """Draws {'sigma_beta', 'sigma_r', 'dark_current', 'kc'} as INFWIDE's data loader."""
  sigma_beta = float(rng.uniform(*params.sigma_beta_range))
  sigma_r = float(rng.uniform(*params.sigma_r_range))
  dark_current = float(rng.uniform(*params.dark_current_range))
  kc = float(params.kc) if params.kc is not None else float(np.floor(rng.uniform(*params.kc_range)))
  return {'sigma_beta': sigma_beta, 'sigma_r': sigma_r, 'dark_current': dark_current, 'kc': kc}


def camera_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma_beta: float,
    sigma_r: float,
    dark_current: float,
    kc: float,
    params: CameraNoiseParams = CameraNoiseParams(),
) -> np.ndarray:
  """INFWIDE's CMOS camera model (`take_photo_P(255 * image, kd=kc/ka, ka=ka)`).

  For channel c with value v = 255 * image (R, G, B), green gain g_c
  (1, green_gain, 1) and analog gain ka_c = ka / g_c:
      e     ~ Poisson(g_c * v / kc)                      photo-electrons
      D     = max(Poisson(n_d) - n_d, 0)                 dark current
      R     ~ N(0, sigma_r^2)                            read noise
      beta  ~ N(1, sigma_beta^2), one per row            row gain
      raw   = ka_c * beta * (e + D + R); then pepper (-> 0) and salt (-> 255)
      out   = trunc(clip(trunc(raw) * kd, 0, 255)),  kd = kc / ka
  (trunc: truncation toward zero, as numpy's astype(int)). So the mean is
  v + kc * E[D] / g_c and the shot-noise variance kc * v / g_c (in DN^2).

  Args:
    image: float array [H, W, 3], RGB in [0, 1] (INFWIDE: the blurred image).
    rng: random generator.
    sigma_beta, sigma_r, dark_current, kc: the drawn parameters
      (`sample_camera_noise`).
    params: gains and salt/pepper probabilities.

  Returns:
    uint8 [H, W, 3], the camera's 8-bit output (before INFWIDE's saturation,
    see `saturate`).
  """
  image = np.asarray(image, dtype=np.float64)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'camera_noise needs an HxWx3 image, got {image.shape}')
  height, width, _ = image.shape
  ka, g = params.analog_gain, params.green_gain
  green = np.array([1.0, g, 1.0])
  gain = ka / green
  raw = rng.poisson(image * (255.0 / kc) * green).astype(np.float64)  # e
  raw += np.maximum(rng.poisson(dark_current, size=image.shape) - dark_current, 0.0)  # + D
  raw += rng.normal(0.0, sigma_r, size=image.shape)  # + R
  raw *= rng.normal(1.0, sigma_beta, size=(height, 1, 3)) * gain  # * ka_c * beta_row
  # Each pixel independently turns to 0 (pepper) or 255 (salt, which wins) with
  # a tiny probability: draw the count, then the positions.
  flat = raw.reshape(-1, 3)
  for probability, value in ((params.pepper_prob, 0.0), (params.salt_prob, 255.0)):
    for channel in range(3):
      count = rng.binomial(flat.shape[0], min(1.0, gain[channel] * probability))
      flat[rng.choice(flat.shape[0], size=count, replace=False), channel] = value
  np.trunc(raw, out=raw)
  raw *= kc / ka  # digital gain kd
  # Official: (clip(x, 0, 255) / 255) ** 1 * 255, truncated, clipped.
  np.clip(raw, 0.0, 255.0, out=raw)
  raw /= 255.0
  raw *= 255.0
  return np.trunc(raw).astype(np.uint8)


def saturate(image: np.ndarray, factor: float = CameraNoiseParams.saturation) -> np.ndarray:
  """INFWIDE's `img_saturation`: clip(factor * x, 0, 1) / factor.

  Args:
    image: float array in [0, 1] (uint8 is divided by 255 first).
    factor: 1.2 in INFWIDE: values above 1 / 1.2 = 0.833 are clipped.

  Returns:
    float32 array of the same shape, in [0, 1 / factor].
  """
  image = np.asarray(image)
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / np.float32(255.0)
  return (np.clip(image * factor, 0.0, 1.0) / factor).astype(np.float32)


def synthesize_night_blur(
    sharp_u8: np.ndarray,
    seed: int,
    params: CameraNoiseParams = CameraNoiseParams(),
    kernel_size: int = motion.KERNEL_SIZE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """INFWIDE's training-data synthesis on a whole image (NightShot recipe).

  sharp / 255 -> circular blur with `motion.motion_kernel` (sRGB values, as
  INFWIDE) -> `camera_noise` with parameters from `sample_camera_noise`.
  Draw order from `np.random.default_rng(seed)`: kernel, noise parameters,
  noise. The network input of INFWIDE is `saturate(blurry_u8)`.

  Args:
    sharp_u8: uint8 [H, W, 3] sharp image (H, W >= kernel_size).
    seed: non-negative int.
    params: camera-noise parameters.
    kernel_size: motion-kernel support.

  Returns:
    blurry_u8: uint8 [H, W, 3], blurred noisy camera output (unsaturated).
    kernel: float32 [kernel_size, kernel_size], unit sum.
    info: the drawn noise parameters plus the kernel info ('grid', ...).
  """
  sharp_u8 = np.asarray(sharp_u8)
  if sharp_u8.dtype != np.uint8:
    raise TypeError(f'sharp_u8 must be uint8, got {sharp_u8.dtype}')
  rng = np.random.default_rng(seed)
  kernel, kernel_info = motion.motion_kernel(rng, kernel_size)
  noise = sample_camera_noise(rng, params)
  # The FFT leaves ~1e-17 negatives where the direct sum is exactly 0.
  blurred = np.maximum(motion.blur_circular(sharp_u8 / 255.0, kernel), 0.0)
  blurry_u8 = camera_noise(blurred, rng, **noise, params=params)
  return blurry_u8, kernel, {**noise, **kernel_info}
