"""Filter-adaptive convolution against a direct per-pixel loop of LEDNet's KernelConv2D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lljax.nn import filter_adaptive_conv


def _per_pixel_reference(x, kernels, k):
  """x (B,H,W,C), kernels (B,H,W,C*k*k), torch unfold layout; replicate border by index clamping."""
  b, h, w, c = x.shape
  p = (k - 1) // 2
  out = np.zeros((b, h, w, c))
  for n in range(b):
    for i in range(h):
      for j in range(w):
        for ch in range(c):
          for ky in range(k):
            for kx in range(k):
              src = x[n, min(max(i + ky - p, 0), h - 1), min(max(j + kx - p, 0), w - 1), ch]
              out[n, i, j, ch] += src * kernels[n, i, j, ch * k * k + ky * k + kx]
  return out


@pytest.mark.parametrize("k,shape", [(5, (2, 5, 4, 3)), (3, (1, 3, 6, 2)), (5, (1, 2, 2, 1))])
def test_matches_per_pixel_loop(k, shape):
  rng = np.random.default_rng(k)
  x = rng.normal(size=shape)
  kernels = rng.normal(size=(*shape[:3], shape[3] * k * k))
  got = filter_adaptive_conv(jnp.asarray(x, jnp.float32), jnp.asarray(kernels, jnp.float32), k)
  np.testing.assert_allclose(got, _per_pixel_reference(x, kernels, k), atol=1e-5)


def test_one_hot_kernel_shifts_with_replicated_border():
  """A weight 1 at tap (ky, kx) of channel c reads the input at offset (ky - 2, kx - 2)."""
  x = jnp.arange(2 * 5 * 6 * 2, dtype=jnp.float32).reshape(2, 5, 6, 2)
  kernels = np.zeros((2, 5, 6, 2 * 25), np.float32)
  kernels[..., 0 * 25 + 4 * 5 + 1] = 1.0  # channel 0 reads (+2 rows, -1 column)
  kernels[..., 1 * 25 + 2 * 5 + 2] = 1.0  # channel 1: the centre tap (identity)
  got = np.asarray(filter_adaptive_conv(x, jnp.asarray(kernels)))
  rows = np.minimum(np.arange(5) + 2, 4)
  cols = np.maximum(np.arange(6) - 1, 0)
  np.testing.assert_array_equal(got[..., 0], np.asarray(x)[:, rows][:, :, cols, 0])
  np.testing.assert_array_equal(got[..., 1], np.asarray(x)[..., 1])


def test_gradients_match_reference_jacobian():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 3, 3, 2)), jnp.float32)
  kernels = jnp.asarray(rng.normal(size=(1, 3, 3, 2 * 9)), jnp.float32)
  gx, gk = jax.grad(lambda a, b: jnp.sum(filter_adaptive_conv(a, b, 3) ** 2), argnums=(0, 1))(x, kernels)
  eps = 1e-3  # central differences of the float64 reference
  ref = lambda a, b: np.sum(_per_pixel_reference(a, b, 3) ** 2)
  xa, ka = np.asarray(x, np.float64), np.asarray(kernels, np.float64)
  for idx in [(0, 0, 0, 0), (0, 2, 1, 1), (0, 1, 2, 0)]:
    d = np.zeros_like(xa)
    d[idx] = eps
    np.testing.assert_allclose(gx[idx], (ref(xa + d, ka) - ref(xa - d, ka)) / (2 * eps), rtol=1e-3, atol=1e-3)
  for idx in [(0, 0, 0, 0), (0, 2, 2, 17), (0, 1, 0, 9)]:
    d = np.zeros_like(ka)
    d[idx] = eps
    np.testing.assert_allclose(gk[idx], (ref(xa, ka + d) - ref(xa, ka - d)) / (2 * eps), rtol=1e-3, atol=1e-3)


def test_bad_arguments():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="odd kernel size"):
    filter_adaptive_conv(x, jnp.zeros((1, 4, 4, 32)), 4)
  with pytest.raises(ValueError, match=r"must have shape \(1, 4, 4, 50\)"):
    filter_adaptive_conv(x, jnp.zeros((1, 4, 4, 49)))
