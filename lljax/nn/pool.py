"""Average pooling with PyTorch's exact windows on NHWC arrays.

* ``adaptive_avg_pool2d``: output cell i averages input rows ``[floor(i*H/o), ceil((i+1)*H/o))``
  (and likewise for columns), torch's rule. When H is not a multiple of o the windows overlap
  and differ in size; when H < o cells repeat rows (the pool upsamples). It is applied as one
  (o x H) averaging matrix per axis built with NumPy from the static shapes, so it is exact,
  differentiable and cheap to compile.
* ``avg_pool2d``: torch ``F.avg_pool2d`` with symmetric zero padding and
  ``count_include_pad`` (torch's default True divides every window by k*k, zeros included).
"""

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


def adaptive_windows(n_in, n_out):
  """torch's adaptive pooling windows along one axis: list of (start, end), end exclusive."""
  return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def _averaging_matrix(n_in, n_out):
  m = np.zeros((n_out, n_in), np.float32)
  for i, (start, end) in enumerate(adaptive_windows(n_in, n_out)):
    m[i, start:end] = 1.0 / (end - start)
  return m


def adaptive_avg_pool2d(x, output_size):
  """torch ``F.adaptive_avg_pool2d``. x: (B, H, W, C) -> (B, oh, ow, C).

  ``output_size`` is an int (square) or (oh, ow).
  """
  oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
  if min(oh, ow) < 1:
    raise ValueError(f"adaptive_avg_pool2d output size must be positive, got {(oh, ow)}")
  h, w = x.shape[1:3]
  if (h, w) == (oh, ow):
    return x
  rows = jnp.asarray(_averaging_matrix(h, oh), x.dtype)
  cols = jnp.asarray(_averaging_matrix(w, ow), x.dtype)
  return jnp.einsum("oh,bhwc,pw->bopc", rows, x, cols, precision=_HIGHEST)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
  """torch ``F.avg_pool2d(x, k, stride, padding)`` (floor mode). x: (B, H, W, C)."""
  k = kernel_size
  s = stride or k
  pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  window, strides = (1, k, k, 1), (1, s, s, 1)
  total = jax.lax.reduce_window(x, jnp.zeros((), x.dtype), jax.lax.add, window, strides, pads)
  if count_include_pad:
    return total / (k * k)
  count = jax.lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), jnp.zeros((), x.dtype),
                                jax.lax.add, window, strides, pads)
  return total / count
