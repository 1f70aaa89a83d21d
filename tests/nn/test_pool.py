"""Adaptive and fixed average pooling against slow references of torch's definitions."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lljax.nn import adaptive_avg_pool2d, avg_pool2d, resize_bilinear, resize_bilinear_dense
from lljax.nn.pool import adaptive_windows


def _adaptive_reference(x, oh, ow):
  """torch's adaptive_avg_pool2d, window by window (ATen: start floor(i*n/o), end ceil((i+1)*n/o))."""
  b, h, w, c = x.shape
  out = np.zeros((b, oh, ow, c))
  for i in range(oh):
    r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
    for j in range(ow):
      c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
      out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
  return out


@pytest.mark.parametrize("hw,out", [((10, 7), (3, 3)), ((32, 48), (20, 20)), ((5, 3), (6, 6)), ((12, 12), (1, 1)),
                                     ((13, 9), (2, 6)), ((64, 64), (64, 64)), ((100, 75), (64, 64))])
def test_adaptive_matches_reference(hw, out):
  rng = np.random.default_rng(sum(hw))
  x = rng.normal(size=(2, *hw, 3))
  got = adaptive_avg_pool2d(jnp.asarray(x, jnp.float32), out)
  np.testing.assert_allclose(got, _adaptive_reference(x, *out), atol=1e-5)


def test_adaptive_windows_overlap_and_repeat():
  assert adaptive_windows(10, 3) == [(0, 4), (3, 7), (6, 10)]  # overlapping, unequal windows
  assert adaptive_windows(3, 6) == [(0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (2, 3)]  # upsampling
  with pytest.raises(ValueError, match="positive"):
    adaptive_avg_pool2d(jnp.zeros((1, 4, 4, 1)), 0)


def _avg_reference(x, k, s, p, count_include_pad):
  b, h, w, c = x.shape
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  ones = np.pad(np.ones((h, w)), p)
  ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
  out = np.zeros((b, ho, wo, c))
  for i in range(ho):
    for j in range(wo):
      window = padded[:, i * s:i * s + k, j * s:j * s + k]
      count = k * k if count_include_pad else ones[i * s:i * s + k, j * s:j * s + k].sum()
      out[:, i, j] = window.sum(axis=(1, 2)) / count
  return out


@pytest.mark.parametrize("k,s,p,include", [(7, 1, 3, True), (7, 1, 3, False), (3, 2, 1, True), (2, None, 0, True)])
def test_avg_pool_matches_reference(k, s, p, include):
  x = np.random.default_rng(k).uniform(size=(2, 9, 8, 3))
  got = avg_pool2d(jnp.asarray(x, jnp.float32), k, s, p, count_include_pad=include)
  np.testing.assert_allclose(got, _avg_reference(x, k, s or k, p, include), atol=1e-6)


@pytest.mark.parametrize("n_in,n_out,align", [(1, 9, True), (2, 7, True), (6, 20, True), (3, 8, False), (8, 16, False)])
def test_dense_bilinear_equals_gather_bilinear(n_in, n_out, align):
  x = jnp.asarray(np.random.default_rng(n_out).normal(size=(2, n_in, n_in + 1, 3)), jnp.float32)
  np.testing.assert_allclose(resize_bilinear_dense(x, (n_out, n_out + 2), align),
                             resize_bilinear(x, (n_out, n_out + 2), align), atol=1e-6)
