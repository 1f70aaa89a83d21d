"""Tests for lljax.metrics.image against scikit-image (float64 reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata
from skimage import metrics as skm

from lljax import metrics

SSIM_TOL = 1e-5
PSNR_TOL = 1e-4  # dB


def _ref_ssim(a, b, data_range=1.0):
  return skm.structural_similarity(
      np.float64(a), np.float64(b), data_range=data_range, channel_axis=-1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _ref_psnr(a, b, data_range=1.0):
  return skm.peak_signal_noise_ratio(np.float64(a), np.float64(b), data_range=data_range)


def _maybe_jit(fn, use_jit):
  return jax.jit(fn) if use_jit else fn


def _random_pair(rng, shape, noise):
  a = rng.random(shape, dtype=np.float32)
  b = np.clip(a + rng.normal(0, noise, shape), 0, 1).astype(np.float32)
  return a, b


@pytest.fixture(scope="module")
def astronaut_pair():
  rng = np.random.default_rng(0)
  clean = skdata.astronaut().astype(np.float32) / 255
  noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
  return clean, noisy


@pytest.fixture(scope="module")
def astronaut_refs(astronaut_pair):
  return _ref_ssim(*astronaut_pair), _ref_psnr(*astronaut_pair)


@pytest.mark.parametrize("use_jit", [False, True])
@pytest.mark.parametrize("shape,noise", [
    ((3, 32, 48, 3), 0.1),
    ((2, 11, 11, 1), 0.3),   # smallest size SSIM accepts
    ((2, 40, 23, 3), 1.0),   # nearly independent images
])
def test_random_pairs_match_skimage(shape, noise, use_jit):
  a, b = _random_pair(np.random.default_rng(sum(shape)), shape, noise)
  got_ssim = np.asarray(_maybe_jit(metrics.ssim, use_jit)(a, b))
  got_psnr = np.asarray(_maybe_jit(metrics.psnr, use_jit)(a, b))
  got_mae = np.asarray(_maybe_jit(metrics.mae, use_jit)(a, b))
  assert got_ssim.shape == got_psnr.shape == got_mae.shape == (shape[0],)
  assert got_ssim.dtype == got_psnr.dtype == got_mae.dtype == np.float32
  for i in range(shape[0]):
    np.testing.assert_allclose(got_ssim[i], _ref_ssim(a[i], b[i]), rtol=0, atol=SSIM_TOL)
    np.testing.assert_allclose(got_psnr[i], _ref_psnr(a[i], b[i]), rtol=0, atol=PSNR_TOL)
    np.testing.assert_allclose(
        got_mae[i], np.abs(np.float64(a[i]) - b[i]).mean(), rtol=1e-5)


@pytest.mark.parametrize("use_jit", [False, True])
def test_photo_pair_matches_skimage(astronaut_pair, astronaut_refs, use_jit):
  clean, noisy = astronaut_pair
  batch_a, batch_b = clean[None], noisy[None]
  got_ssim = float(_maybe_jit(metrics.ssim, use_jit)(batch_a, batch_b)[0])
  got_psnr = float(_maybe_jit(metrics.psnr, use_jit)(batch_a, batch_b)[0])
  ref_ssim, ref_psnr = astronaut_refs
  assert abs(got_ssim - ref_ssim) < SSIM_TOL
  assert abs(got_psnr - ref_psnr) < PSNR_TOL
  assert 0.4 < got_ssim < 0.7 and 25 < got_psnr < 28  # sanity: a real, mid-quality pair


def test_max_val_scales_like_data_range(astronaut_pair):
  clean, noisy = (x[:128, :160] for x in astronaut_pair)
  a, b = clean * 255, noisy * 255
  got_ssim = float(metrics.ssim(a[None], b[None], max_val=255.0)[0])
  got_psnr = float(metrics.psnr(a[None], b[None], max_val=255.0)[0])
  assert abs(got_ssim - _ref_ssim(a, b, data_range=255)) < SSIM_TOL
  assert abs(got_psnr - _ref_psnr(a, b, data_range=255)) < PSNR_TOL
  assert abs(got_psnr - float(metrics.psnr(clean[None], noisy[None])[0])) < PSNR_TOL


def test_batch_is_per_image_and_order_preserving():
  rng = np.random.default_rng(1)
  pairs = [_random_pair(rng, (24, 24, 3), noise) for noise in (0.01, 0.1, 0.5)]
  a = np.stack([p[0] for p in pairs])
  b = np.stack([p[1] for p in pairs])
  batched = np.asarray(metrics.ssim(a, b))
  single = np.array([float(metrics.ssim(p[0], p[1])) for p in pairs])
  np.testing.assert_allclose(batched, single, atol=1e-7)
  assert batched[0] > batched[1] > batched[2]
  assert metrics.psnr(a[0], b[0]).shape == ()  # HWC input -> scalar


def test_identical_images():
  a = np.random.default_rng(2).random((2, 16, 16, 3), dtype=np.float32)
  np.testing.assert_allclose(metrics.ssim(a, a), 1.0, atol=1e-6)
  assert np.all(np.isposinf(metrics.psnr(a, a)))
  np.testing.assert_array_equal(metrics.mae(a, a), 0.0)


def test_low_precision_inputs_are_promoted():
  a, b = _random_pair(np.random.default_rng(3), (1, 16, 16, 3), 0.1)
  out = metrics.ssim(jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16))
  assert out.dtype == jnp.float32


def test_bad_inputs():
  a = np.zeros((1, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.psnr(a, a[:, :8])
  with pytest.raises(TypeError, match="floating-point"):
    metrics.mae(a.astype(np.uint8), a.astype(np.uint8))
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(a[:, :10], a[:, :10])
  with pytest.raises(ValueError, match="HWC or NHWC"):
    metrics.mae(a[0, 0], a[0, 0])
