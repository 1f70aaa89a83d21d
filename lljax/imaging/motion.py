"""Motion blur: random camera-trajectory kernels and circular blur (numpy, seeded).

INFWIDE (srcs/utils/utils_deblur_kair.py: blurkernel_synthesis_zzh with
h=37, randomTrajectory(250), kernelFromTrajectory) draws a 3-D camera path,
histograms its first two coordinates into an odd n x n grid
(n = min(round(5 - ln(U) / 0.15), 27), made odd), smooths it with a 2x2
Gaussian, centre-pads it to 37 x 37 and, with probability 1/4, upscales it
bilinearly by a random factor in [1, 5] per axis and centre-crops it back.
We follow each step; the sequential loops are replaced by closed forms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from lljax.imaging import srgb

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


def _resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """Bilinear upscaling of a 2-D array with half-pixel centres and clamped edges.

  INFWIDE upscales with OpenCV's `cv2.resize(INTER_LINEAR)`; for upscaling,
  Pillow's BILINEAR filter on a float image (mode 'F') samples the same
  points with the same weights. Pillow computes in float32, so the values
  agree with a float64 evaluation of the formula to about 1e-7 relative.

  Args:
    image: float array [h, w].
    out_h, out_w: the output size, at least (h, w).

  Returns:
    float64 array [out_h, out_w].
  """
  resized = Image.fromarray(np.asarray(image, np.float32)).resize((out_w, out_h), Image.BILINEAR)
  return np.asarray(resized, dtype=np.float64)


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

  Steps (see the module docstring): 250-step 3-D trajectory; histogram
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
    big = _resize_bilinear(kernel, out_h, out_w)
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
  blurred = blur_circular(srgb.u8_to_linear(normal_u8), kernel)
  return srgb.quantize_u8(srgb.linear_to_srgb(np.clip(blurred, 0.0, 1.0))), kernel, info
