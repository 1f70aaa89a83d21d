"""Resampling ops against direct definitions of PyTorch's semantics (computed with NumPy)."""

import jax.numpy as jnp
import numpy as np
import pytest

from lljax import nn as lnn


def _nchw_squeeze_reference(x, f):
  """torch squeeze2d on NCHW, literally: view (B,C,H/f,f,W/f,f) -> permute(0,1,3,5,2,4)."""
  b, c, h, w = x.shape
  y = x.reshape(b, c, h // f, f, w // f, f).transpose(0, 1, 3, 5, 2, 4)
  return y.reshape(b, c * f * f, h // f, w // f)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_squeeze_matches_torch_channel_order(factor):
  x = np.random.default_rng(0).normal(size=(2, 3, 8 * factor // 2 * 2, 4 * factor)).astype(np.float32)
  got = np.asarray(lnn.squeeze2d(jnp.asarray(x.transpose(0, 2, 3, 1)), factor)).transpose(0, 3, 1, 2)
  np.testing.assert_array_equal(got, _nchw_squeeze_reference(x, factor))
  # channel c*f*f + i*f + j holds pixel (f*h + i, f*w + j) of channel c
  c, i, j = 2, factor - 1, 0
  np.testing.assert_array_equal(got[:, c * factor * factor + i * factor + j], x[:, c, i::factor, j::factor])


@pytest.mark.parametrize("factor", [2, 8])
def test_unsqueeze_inverts_squeeze(factor):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 16, 24, 3)), jnp.float32)
  np.testing.assert_array_equal(lnn.unsqueeze2d(lnn.squeeze2d(x, factor), factor), x)


def test_one_factor8_squeeze_differs_from_three_factor2():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 8, 8, 3)), jnp.float32)
  once = lnn.squeeze2d(x, 8)
  thrice = lnn.squeeze2d(lnn.squeeze2d(lnn.squeeze2d(x, 2), 2), 2)
  np.testing.assert_array_equal(np.sort(once.ravel()), np.sort(thrice.ravel()))
  assert not np.array_equal(once, thrice)


def test_squeeze_rejects_indivisible_size():
  with pytest.raises(ValueError, match="divisible"):
    lnn.squeeze2d(jnp.zeros((1, 6, 8, 3)), 4)


def test_nearest_is_torch_legacy_floor_indexing():
  x = jnp.arange(8.0).reshape(1, 8, 1, 1)
  np.testing.assert_array_equal(lnn.resize_nearest(x, (4, 1)).ravel(), [0, 2, 4, 6])
  np.testing.assert_array_equal(lnn.resize_nearest(x, (3, 1)).ravel(), [0, 2, 5])  # floor(i * 8/3)
  np.testing.assert_array_equal(lnn.resize_nearest(x, (16, 1)).ravel(), np.repeat(np.arange(8), 2))


def _bilinear_reference(x, out, align_corners, scale=None):
  """Per-output-pixel torch formula for one axis (align_corners False/True)."""
  n = len(x)
  res = []
  for d in range(out):
    if align_corners:
      s = d * (n - 1) / (out - 1) if out > 1 else 0.0
    else:
      r = n / out if scale is None else scale
      s = max((d + 0.5) * r - 0.5, 0.0)
    i0 = min(int(np.floor(s)), n - 1)
    i1 = min(i0 + 1, n - 1)
    lam = s - i0
    res.append((1 - lam) * x[i0] + lam * x[i1])
  return np.array(res)


@pytest.mark.parametrize("n_in,n_out", [(8, 4), (7, 3), (5, 9), (6, 6), (3, 1)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_matches_torch_formula(n_in, n_out, align_corners):
  x = np.random.default_rng(3).normal(size=n_in).astype(np.float32)
  got = lnn.resize_bilinear(jnp.asarray(x).reshape(1, n_in, 1, 1), (n_out, 1), align_corners)
  np.testing.assert_allclose(np.asarray(got).ravel(), _bilinear_reference(x, n_out, align_corners), atol=1e-6)


def test_half_scale_bilinear_is_2x2_average_on_even_sizes():
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 8, 12, 5)), jnp.float32)
  pooled = x.reshape(2, 4, 2, 6, 2, 5).mean(axis=(2, 4))
  np.testing.assert_allclose(lnn.scale_bilinear(x, 0.5), pooled, atol=1e-6)


def test_half_scale_bilinear_odd_size_uses_recomputed_scale():
  x = np.random.default_rng(5).normal(size=25).astype(np.float32)
  column = jnp.asarray(np.stack([x, x], axis=-1)).reshape(1, 25, 2, 1)  # width 2 -> 1
  got = lnn.scale_bilinear(column, 0.5)
  assert got.shape == (1, 12, 1, 1)
  np.testing.assert_allclose(np.asarray(got).ravel(), _bilinear_reference(x, 12, False, 25 / 12), atol=1e-6)
  got = lnn.scale_bilinear(column, 0.5, recompute_scale_factor=False)
  np.testing.assert_allclose(np.asarray(got).ravel(), _bilinear_reference(x, 12, False, 2.0), atol=1e-6)


def test_upsample_nearest_and_max_pool():
  x = jnp.arange(4.0).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(lnn.upsample_nearest(x, 2)[0, :, :, 0],
                                [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
  y = jnp.arange(25.0).reshape(1, 5, 5, 1)
  np.testing.assert_array_equal(lnn.max_pool2d(y, 2)[0, :, :, 0], [[6, 8], [16, 18]])  # floor mode
