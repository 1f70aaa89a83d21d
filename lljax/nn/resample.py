"""Resampling ops with PyTorch's exact semantics on NHWC arrays.

* ``squeeze2d``/``pixel_unshuffle`` put a factor-f block at channel ``c*f*f + i*f + j``
  (torch's channel-major order, *not* TensorFlow's ``space_to_depth`` order).
* ``resize_nearest`` is torch's legacy ``mode='nearest'``: source index
  ``floor(dst * in / out)`` (so a 2x downscale keeps pixels 0, 2, 4, ...), unlike
  ``jax.image.resize``, which samples at pixel centres.
* ``resize_bilinear``/``scale_bilinear`` never antialias (torch's default), with
  ``align_corners`` either way; ``jax.image.resize`` antialiases when downscaling.

Index tables are computed with NumPy at trace time from the static shapes.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np


def squeeze2d(x, factor=2):
  """(B, H, W, C) -> (B, H/f, W/f, C*f*f), out[..., c*f*f + i*f + j] = x[f*h + i, f*w + j, c]."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"squeeze2d by {factor} needs H and W divisible by {factor}, got {h}x{w}")
  x = x.reshape(b, h // factor, factor, w // factor, factor, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(b, h // factor, w // factor, c * factor * factor)


def unsqueeze2d(x, factor=2):
  """Inverse of ``squeeze2d``: (B, H, W, C*f*f) -> (B, H*f, W*f, C)."""
  if factor == 1:
    return x
  b, h, w, cff = x.shape
  if cff % (factor * factor):
    raise ValueError(f"unsqueeze2d by {factor} needs channels divisible by {factor**2}, got {cff}")
  c = cff // (factor * factor)
  x = x.reshape(b, h, w, c, factor, factor)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, h * factor, w * factor, c)


pixel_unshuffle = squeeze2d
pixel_shuffle = unsqueeze2d


def upsample_nearest(x, factor=2):
  """Integer nearest upsampling (torch ``scale_factor=f``, mode 'nearest'): each pixel -> f x f."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _nearest_index(n_in, n_out):
  # torch computes the scale in float32 and floors; reproduce both.
  scale = np.float32(n_in) / np.float32(n_out)
  idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
  return np.minimum(idx, n_in - 1)


def resize_nearest(x, size):
  """torch ``F.interpolate(x, size, mode='nearest')`` (legacy nearest). x: (B, H, W, C)."""
  h, w = size
  x = jnp.take(x, _nearest_index(x.shape[1], h), axis=1)
  return jnp.take(x, _nearest_index(x.shape[2], w), axis=2)


def _linear_taps(n_in, n_out, align_corners, scale=None):
  """Indices (i0, i1) and weights (w0, w1) of torch's linear interpolation along one axis.

  ``scale`` is torch's in/out ratio; torch uses 1/scale_factor when a scale factor is given and
  ``recompute_scale_factor`` is not set, else in/out.
  """
  dst = np.arange(n_out, dtype=np.float64)
  if align_corners:
    ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = dst * ratio
  else:
    ratio = n_in / n_out if scale is None else scale
    src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  w1 = (src - i0).astype(np.float32)
  return i0, i1, 1.0 - w1, w1


def _lerp_axis(x, axis, taps):
  i0, i1, w0, w1 = taps
  shape = [1] * x.ndim
  shape[axis] = -1
  a = jnp.take(x, i0, axis=axis)
  b = jnp.take(x, i1, axis=axis)
  return a * w0.reshape(shape) + b * w1.reshape(shape)


def resize_bilinear(x, size, align_corners=False):
  """torch ``F.interpolate(x, size, mode='bilinear', align_corners=...)``, no antialias."""
  h, w = size
  x = _lerp_axis(x, 1, _linear_taps(x.shape[1], h, align_corners))
  return _lerp_axis(x, 2, _linear_taps(x.shape[2], w, align_corners))


def interpolation_matrix(n_in, n_out, align_corners=False):
  """(n_out, n_in) float32 matrix of torch's linear interpolation along one axis."""
  i0, i1, w0, w1 = _linear_taps(n_in, n_out, align_corners)
  m = np.zeros((n_out, n_in), np.float32)
  rows = np.arange(n_out)
  np.add.at(m, (rows, i0), w0)
  np.add.at(m, (rows, i1), w1)
  return m


def resize_bilinear_dense(x, size, align_corners=False):
  """``resize_bilinear`` as two small matrix products (same values).

  Its cost grows with (input size x output size) per axis, so use it where one side is small,
  e.g. upsampling pyramid-pooling grids; it compiles much faster than the gather form and its
  gradient has no scatter.
  """
  rows = jnp.asarray(interpolation_matrix(x.shape[1], size[0], align_corners), x.dtype)
  cols = jnp.asarray(interpolation_matrix(x.shape[2], size[1], align_corners), x.dtype)
  return jnp.einsum("oh,bhwc,pw->bopc", rows, x, cols, precision=jax.lax.Precision.HIGHEST)


def scale_bilinear(x, scale_factor, recompute_scale_factor=True):
  """torch ``F.interpolate(x, scale_factor=s, mode='bilinear', align_corners=False)``.

  The output size is ``floor(n * s)``; with ``recompute_scale_factor=True`` the taps use
  in/out, otherwise 1/s. For s = 1/2 on even sizes both are a 2x2 average pool.
  """
  out = [int(math.floor(n * scale_factor)) for n in x.shape[1:3]]
  scale = None if recompute_scale_factor else 1.0 / scale_factor
  x = _lerp_axis(x, 1, _linear_taps(x.shape[1], out[0], False, scale))
  return _lerp_axis(x, 2, _linear_taps(x.shape[2], out[1], False, scale))


def max_pool2d(x, kernel_size=2):
  """torch ``F.max_pool2d(x, k)`` (stride k, no padding, floor mode)."""
  # A max over a reshape rather than lax.reduce_window: the same values, and it exports to ONNX
  # (jax2onnx's reduce_window becomes a 4-D MaxPool that onnxruntime rejects).
  k = kernel_size
  b, h, w, c = x.shape
  x = x[:, : h // k * k, : w // k * k]
  return jnp.max(x.reshape(b, h // k, k, w // k, k, c), axis=(2, 4))
