"""Synthetic image degradations (numpy, deterministic given a seed).

Everything here works on numpy arrays of any shape (typically HxWx3) and
draws random numbers only from a `np.random.Generator` passed in or made
with `np.random.default_rng(seed)`, so one seed always gives the same image.

Value conventions:
  * sRGB images: float in [0, 1] (display-referred, gamma encoded), or uint8.
  * linear images: float, proportional to scene radiance; 1.0 is the white
    level (the value that maps to sRGB 1.0 / uint8 255).

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

# sRGB (IEC 61966-2-1) transfer function constants.
_SRGB_LINEAR_SLOPE = 12.92
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
  return np.where(x <= _SRGB_ENCODED_KNEE, x / _SRGB_LINEAR_SLOPE, curve)


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
  return np.where(x <= _SRGB_LINEAR_KNEE, x * _SRGB_LINEAR_SLOPE, curve)


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


def quantize_u8(x: np.ndarray) -> np.ndarray:
  """Clips to [0, 1] and rounds half up to 8 bit.

  Args:
    x: float array in (nominally) [0, 1], any shape.

  Returns:
    uint8 array, floor(clip(x, 0, 1) * 255 + 0.5), same shape.
  """
  x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
  return np.floor(x * 255.0 + 0.5).astype(np.uint8)


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
      _READ_SIGMA_DN_AT_BLACK[0] / 255.0 / _SRGB_LINEAR_SLOPE,
      _READ_SIGMA_DN_AT_BLACK[1] / 255.0 / _SRGB_LINEAR_SLOPE)


# srgb_to_linear of every uint8 code (a lookup is ~20x faster than the power).
_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)


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
  normal_u8 = np.asarray(normal_u8)
  if normal_u8.dtype != np.uint8:
    raise TypeError(f'normal_u8 must be uint8, got {normal_u8.dtype}')
  return low_light_from_linear(_U8_TO_LINEAR[normal_u8], seed, params)


def low_light_from_linear(
    linear: np.ndarray,
    seed: int,
    params: LowLightParams = LowLightParams(),
) -> tuple[np.ndarray, dict[str, Any]]:
  """`synthesize_low_light` on a linear-RGB image (e.g. one blurred in linear light).

  Same draws in the same order from `np.random.default_rng(seed)`, so
  `synthesize_low_light(u8, seed)` equals
  `low_light_from_linear(srgb_to_linear(u8 / 255), seed)`.

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
  low_u8 = quantize_u8(linear_to_srgb(noisy))
  info = {'exposure': exposure, 'photons': photons, 'read_sigma': read_sigma}
  return low_u8, info


def u8_to_linear(image_u8: np.ndarray) -> np.ndarray:
  """uint8 sRGB -> float64 linear RGB in [0, 1] (exact, via a lookup table)."""
  image_u8 = np.asarray(image_u8)
  if image_u8.dtype != np.uint8:
    raise TypeError(f'expected uint8, got {image_u8.dtype}')
  return _U8_TO_LINEAR[image_u8]


# ----------------------------------------------------------------------------
# Motion blur: random camera-trajectory kernels (INFWIDE / KAIR recipe).
#
# INFWIDE (srcs/utils/utils_deblur_kair.py: blurkernel_synthesis_zzh with
# h=37, randomTrajectory(250), kernelFromTrajectory) draws a 3-D camera path,
# histograms its first two coordinates into an odd n x n grid
# (n = min(round(5 - ln(U) / 0.15), 27), made odd), smooths it with a 2x2
# Gaussian, centre-pads it to 37 x 37 and, with probability 1/4, upscales it
# bilinearly by a random factor in [1, 5] per axis and centre-crops it back.
# We follow each step; the sequential loops are replaced by closed forms.

KERNEL_SIZE = 37  # INFWIDE's / NightShot's kernel support.
_TRAJECTORY_STEPS = 250
_MAX_GRID = 27


def random_trajectory(rng: np.random.Generator, steps: int = _TRAJECTORY_STEPS) -> np.ndarray:
  """A random 3-D camera trajectory (INFWIDE's `randomTrajectory`).

  Rotation angles r and velocity v follow, for t = 1..T-1 with
  a_t ~ N(0, I3) and b_t ~ N(0, I3):
      r_t = r_{t-1} + (2 pi / T) * (a_t / (t + 1) + r_{t-1}),   r_0 = 0
      v_t = v_{t-1} + b_t / (t + 1),                             v_0 ~ N(0, I3)
      x_t = x_{t-1} + Rz(r_t[2]) Ry(r_t[1]) Rx(r_t[0]) v_t,      x_0 = 0.
  The linear recursion of r is summed in closed form (no Python loop).

  Args:
    rng: random generator.
    steps: number of positions T.

  Returns:
    float64 array [3, T], the positions x_t.
  """
  t = np.arange(1, steps, dtype=np.float64)
  v0 = rng.standard_normal(3)
  kicks_rot = rng.standard_normal((steps - 1, 3))
  kicks_trans = rng.standard_normal((steps - 1, 3))
  rate = 2.0 * np.pi / steps
  growth = 1.0 + rate
  # r_t = growth * r_{t-1} + rate * a_t / (t + 1)  =>  r_t = growth^t * cumsum(growth^-s ...).
  scaled = rate * kicks_rot / (t + 1)[:, None] * growth ** -t[:, None]
  rot = np.cumsum(scaled, axis=0) * growth ** t[:, None]
  vel = v0 + np.cumsum(kicks_trans / (t + 1)[:, None], axis=0)
  c, s = np.cos(rot), np.sin(rot)
  zeros, ones = np.zeros_like(t), np.ones_like(t)
  rx = np.stack([ones, zeros, zeros, zeros, c[:, 0], -s[:, 0], zeros, s[:, 0], c[:, 0]], -1)
  ry = np.stack([c[:, 1], zeros, s[:, 1], zeros, ones, zeros, -s[:, 1], zeros, c[:, 1]], -1)
  rz = np.stack([c[:, 2], -s[:, 2], zeros, s[:, 2], c[:, 2], zeros, zeros, zeros, ones], -1)
  rotation = np.einsum('tij,tjk,tkl->til', rz.reshape(-1, 3, 3), ry.reshape(-1, 3, 3),
                       rx.reshape(-1, 3, 3))
  steps_xyz = np.einsum('tij,tj->ti', rotation, vel)
  positions = np.concatenate([np.zeros((1, 3)), np.cumsum(steps_xyz, axis=0)])
  return positions.T


def _smoothing_2x2() -> np.ndarray:
  """INFWIDE's `fspecial_gauss(2, 1)`: exp(-(x^2 + y^2) / 2) on {0, 1}^2, unit sum."""
  g = np.exp(-np.add.outer([0.0, 1.0], [0.0, 1.0]) / 2.0)
  return g / g.sum()


def _trajectory_histogram(trajectory: np.ndarray, grid: int) -> np.ndarray | None:
  """INFWIDE's `kernelFromTrajectory` binning of the (x, y) path into grid x grid.

  Bin edges are `arange(min, max, (max - min) / grid)`; a point falls in bin
  i when edges[i] <= p < edges[i + 1], so points in the top cell (beyond the
  last edge) are not counted and the last row/column stays empty, as in the
  official code. Returns None when no point is counted.
  """
  counts = np.zeros((grid, grid))
  index = []
  for coord in trajectory[:2]:
    low, high = coord.min(), coord.max()
    if not high > low:
      return None
    edges = np.arange(low, high, (high - low) / grid)
    bins = np.searchsorted(edges, coord, side='right') - 1
    index.append(np.where(bins <= len(edges) - 2, bins, -1))
  valid = (index[0] >= 0) & (index[1] >= 0) & (index[0] < grid) & (index[1] < grid)
  np.add.at(counts, (index[0][valid], index[1][valid]), 1.0)
  total = counts.sum()
  return None if total == 0 else counts / total


def _resize_bilinear_half_pixel(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """OpenCV INTER_LINEAR resize of a 2-D float array (half-pixel centres, edge clamp)."""

  def axis_weights(n_in, n_out):
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0

  y0, y1, wy = axis_weights(image.shape[0], out_h)
  x0, x1, wx = axis_weights(image.shape[1], out_w)
  rows = image[y0] * (1 - wy)[:, None] + image[y1] * wy[:, None]
  return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
  """INFWIDE's `fspecial_gaussian_zzh` (values below eps * max zeroed, unit sum)."""
  half = (size - 1) / 2.0
  x = np.arange(-half, half + 1)
  g = np.exp(-np.add.outer(x * x, x * x) / (2.0 * sigma * sigma))
  g[g < np.finfo(float).eps * g.max()] = 0
  return g / g.sum()


def motion_kernel(
    rng: np.random.Generator | int,
    size: int = KERNEL_SIZE,
) -> tuple[np.ndarray, dict[str, Any]]:
  """A random motion-blur kernel from a camera trajectory (INFWIDE's recipe).

  Steps (see the section comment above): 250-step 3-D trajectory; histogram
  into an odd n x n grid, n = min(round(5 - ln U / 0.15), 27) made odd
  (redrawn, as officially, when no point is counted); normalise; 2x2 Gaussian
  smoothing ('same' convolution); normalise; centre-pad to size x size (a
  larger grid is cut to its top-left size x size, as officially); with
  probability 1/4 bilinearly upscale to (randint(size, 5 size) for height
  and for width) and centre-crop back; if the total mass is then < 0.1,
  use a Gaussian of sigma 0.1 + 6 U instead; normalise to unit sum.

  Args:
    rng: random generator, or an int seed.
    size: kernel support (odd; 37 in INFWIDE / NightShot).

  Returns:
    kernel: float32 [size, size], non-negative, sums to 1 (within float32).
    info: {'grid': n, 'upscale': (height, width) or None, 'gaussian_sigma':
      float or None}.
  """
  from scipy import signal  # pylint: disable=g-import-not-at-top  (slow import)

  if not isinstance(rng, np.random.Generator):
    rng = np.random.default_rng(rng)
  trajectory = random_trajectory(rng)
  hist = None
  for _ in range(100):  # Officially unbounded; a bound keeps a degenerate path from hanging.
    grid = int(np.round(min(5.0 - np.log(rng.random()) / 0.15, _MAX_GRID)))
    grid += 1 - grid % 2
    hist = _trajectory_histogram(trajectory, grid)
    if hist is not None:
      break
  info: dict[str, Any] = {'grid': grid, 'upscale': None, 'gaussian_sigma': None}
  if hist is None:
    kernel = np.zeros((size, size))
  else:
    kernel = signal.convolve2d(hist, _smoothing_2x2(), mode='same')
    kernel = kernel[:size, :size] / kernel.sum()
    top, left = (size - kernel.shape[0]) // 2, (size - kernel.shape[1]) // 2
    kernel = np.pad(kernel, ((top, size - kernel.shape[0] - top),
                             (left, size - kernel.shape[1] - left)))
  if rng.integers(0, 4) == 1:
    out_w, out_h = int(rng.integers(size, 5 * size + 1)), int(rng.integers(size, 5 * size + 1))
    big = _resize_bilinear_half_pixel(kernel, out_h, out_w)
    top, left = (out_h - size) // 2, (out_w - size) // 2
    kernel = big[top:top + size, left:left + size]
    info['upscale'] = (out_h, out_w)
  if kernel.sum() < 0.1:
    sigma = 0.1 + 6.0 * rng.random()
    kernel = _gaussian_kernel(size, sigma)
    info['gaussian_sigma'] = sigma
  kernel = kernel / kernel.sum()
  return kernel.astype(np.float32), info


def blur_circular(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """Per-channel circular convolution (periodic boundaries), via the FFT.

  Equals `scipy.ndimage.convolve(image[..., c], kernel, mode='wrap')` for
  every channel c (true convolution, kernel centre at index size // 2), the
  blur INFWIDE trains and tests with.

  Args:
    image: float array [H, W] or [H, W, C], H and W >= the kernel size.
    kernel: float array [k, k] (or [kh, kw]).

  Returns:
    float64 array shaped like `image`.
  """
  image = np.asarray(image, dtype=np.float64)
  kernel = np.asarray(kernel, dtype=np.float64)
  height, width = image.shape[:2]
  kh, kw = kernel.shape
  if kh > height or kw > width:
    raise ValueError(f'image {height}x{width} is smaller than the kernel {kh}x{kw}')
  padded = np.zeros((height, width))
  padded[:kh, :kw] = kernel
  padded = np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1))
  otf = np.fft.rfft2(padded)
  if image.ndim == 3:
    otf = otf[..., None]
  spectrum = np.fft.rfft2(image, axes=(0, 1)) * otf
  return np.fft.irfft2(spectrum, s=(height, width), axes=(0, 1))


# ----------------------------------------------------------------------------
# INFWIDE's low-light CMOS camera noise (srcs/utils/utils_noise_zzh.py,
# CMOS_Camera.take_photo_P as called by srcs/data_loader/infwide_data_loaders.py).


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
    kernel_size: int = KERNEL_SIZE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """INFWIDE's training-data synthesis on a whole image (NightShot recipe).

  sharp / 255 -> circular blur with `motion_kernel` (sRGB values, as
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
  kernel, kernel_info = motion_kernel(rng, kernel_size)
  noise = sample_camera_noise(rng, params)
  # The FFT leaves ~1e-17 negatives where the direct sum is exactly 0.
  blurred = np.maximum(blur_circular(sharp_u8 / 255.0, kernel), 0.0)
  blurry_u8 = camera_noise(blurred, rng, **noise, params=params)
  return blurry_u8, kernel, {**noise, **kernel_info}


def synthesize_blur(
    normal_u8: np.ndarray,
    seed: int,
    kernel_size: int = KERNEL_SIZE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """Motion blur in linear light: sRGB -> linear -> circular blur -> sRGB -> 8 bit.

  Args:
    normal_u8: uint8 [H, W, 3] sharp image.
    seed: non-negative int; the kernel is `motion_kernel(default_rng(seed))`.
    kernel_size: kernel support.

  Returns:
    (blurred uint8 [H, W, 3], kernel float32 [k, k], kernel info).
  """
  kernel, info = motion_kernel(np.random.default_rng(seed), kernel_size)
  blurred = blur_circular(u8_to_linear(normal_u8), kernel)
  return quantize_u8(linear_to_srgb(np.clip(blurred, 0.0, 1.0))), kernel, info


def synthesize_low_light_blur(
    normal_u8: np.ndarray,
    seed: int,
    params: LowLightParams = LowLightParams(),
    kernel_size: int = KERNEL_SIZE,
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
  kernel, kernel_info = motion_kernel(np.random.default_rng([seed, 1]), kernel_size)
  blurred = np.clip(blur_circular(u8_to_linear(normal_u8), kernel), 0.0, 1.0)
  low_u8, info = low_light_from_linear(blurred, seed, params)
  return low_u8, kernel, {**info, **kernel_info}


# ----------------------------------------------------------------------------
# Compression.


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
