"""FFT deconvolution helpers: psf2otf centring, circular convolution, median, NSR, Wiener filter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from lljax.imaging import motion
from lljax.nn import fft


def direct_circular_conv(image, psf):
  """out[y, x] = sum_ij psf[i, j] image[(y - i + kh//2) mod H, (x - j + kw//2) mod W] (float64)."""
  image, psf = np.asarray(image, np.float64), np.asarray(psf, np.float64)
  kh, kw = psf.shape
  out = np.zeros_like(image)
  for i in range(kh):
    for j in range(kw):
      out += psf[i, j] * np.roll(image, (i - kh // 2, j - kw // 2), axis=(0, 1))
  return out


@pytest.mark.parametrize("kshape", [(5, 5), (4, 6), (7, 3)])
def test_psf2otf_centring_equals_a_direct_spatial_convolution(kshape):
  rng = np.random.default_rng(0)
  image = rng.random((12, 15))
  psf = rng.random(kshape)
  otf = np.asarray(fft.psf2otf(jnp.asarray(psf[None], jnp.float32), image.shape))[0]
  via_fft = np.real(np.fft.ifft2(np.fft.fft2(image) * otf))
  np.testing.assert_allclose(via_fft, direct_circular_conv(image, psf), atol=1e-5)
  # ... which is scipy's wrap-mode convolution (its centre is also index k // 2).
  np.testing.assert_allclose(via_fft, ndimage.convolve(image, psf, mode="wrap"), atol=1e-5)


def test_psf2otf_of_a_centred_delta_is_one():
  psf = np.zeros((1, 5, 5), np.float32)
  psf[0, 2, 2] = 1
  np.testing.assert_allclose(np.asarray(fft.psf2otf(psf, (8, 9))), np.ones((1, 8, 9)), atol=1e-6)


def test_psf2otf_rejects_psf_larger_than_grid():
  with pytest.raises(ValueError, match="larger than"):
    fft.psf2otf(jnp.ones((1, 9, 9)), (8, 8))


def test_circular_conv_matches_degrade_blur_circular_per_channel():
  rng = np.random.default_rng(1)
  x = rng.random((2, 20, 24, 3)).astype(np.float32)
  psf = rng.random((2, 7, 7)).astype(np.float32)
  psf /= psf.sum(axis=(1, 2), keepdims=True)
  out = np.asarray(fft.circular_conv(jnp.asarray(x), jnp.asarray(psf)))
  for b in range(2):
    np.testing.assert_allclose(out[b], motion.blur_circular(x[b], psf[b]), atol=1e-5)


def test_median3x3_equals_numpy_median_with_reflect_padding():
  rng = np.random.default_rng(2)
  x = rng.random((2, 9, 11)).astype(np.float32)
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
  windows = np.stack([padded[:, i:i + 9, j:j + 11] for i in range(3) for j in range(3)])
  np.testing.assert_array_equal(np.asarray(fft.median3x3(jnp.asarray(x))), np.median(windows, axis=0))


def test_wiener_nsr_pixel_count_quirk():
  rng = np.random.default_rng(3)
  square = jnp.asarray(rng.random((1, 10, 10)), jnp.float32)
  np.testing.assert_allclose(fft.wiener_nsr(square, True), fft.wiener_nsr(square, False), rtol=1e-6)
  tall = jnp.asarray(rng.random((1, 10, 14)), jnp.float32)
  assert not np.allclose(fft.wiener_nsr(tall, True), fft.wiener_nsr(tall, False), rtol=1e-3)
  # The honest count is the textbook estimate: var(d) / std(p) * 8/30 with (n - 1) denominators.
  p = np.asarray(tall[0], np.float64)
  d = np.asarray(fft.median3x3(tall))[0] - p
  expected = d.var(ddof=1) / p.std(ddof=1) * 8 / 30
  np.testing.assert_allclose(fft.wiener_nsr(tall, False)[0], expected, rtol=1e-5)


def test_wiener_deconvolution_without_noise_recovers_the_image_away_from_the_border():
  rng = np.random.default_rng(4)
  sharp = ndimage.gaussian_filter(rng.random((64, 80, 2)), (1, 1, 0))
  # Half delta, half 7-px horizontal motion: |OTF| >= 0.38, so the filter is well conditioned
  # (a pure box has spectral zeros, where any boundary mismatch is amplified without bound).
  psf = np.zeros((9, 9))
  psf[4, 1:8] = 1.0 / 7
  psf[4, 4] += 1.0
  psf /= psf.sum()
  # Blur with replicated borders: the padding inside the filter then matches the data.
  blurred = np.stack([ndimage.convolve(sharp[..., c], psf, mode="nearest") for c in range(2)], -1)
  out = np.asarray(fft.wiener_deconv(jnp.asarray(blurred[None], jnp.float32),
                                     jnp.asarray(psf[None], jnp.float32)))[0]
  inner = (slice(12, -12), slice(12, -12))
  assert np.abs(out[inner] - sharp[inner]).max() < 2e-3
  assert np.abs(out[inner] - sharp[inner]).mean() < 0.05 * np.abs(blurred[inner] - sharp[inner]).mean()
  # With a vanishing NSR and consistent (circular) data the filter is an exact inverse.
  wrapped = np.stack([ndimage.convolve(sharp[..., 0], psf, mode="wrap")])
  otf = fft._rotf(jnp.asarray(psf[None], jnp.float32), wrapped.shape[1:])  # pylint: disable=protected-access
  exact = np.asarray(fft.wiener_filter(jnp.asarray(wrapped, jnp.float32), otf, jnp.asarray([1e-9])))
  np.testing.assert_allclose(exact[0], sharp[..., 0], atol=1e-4)


def test_wiener_deconv_channel_chunks_give_the_same_values():
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.random((2, 16, 20, 5)), jnp.float32)
  psf = jnp.asarray(rng.random((2, 5, 5)), jnp.float32)
  whole = np.asarray(fft.wiener_deconv(x, psf))
  chunked = np.asarray(fft.wiener_deconv(x, psf, channels_at_once=2))
  np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_image_nsr_formula():
  rng = np.random.default_rng(6)
  x = rng.random((1, 8, 10, 3)).astype(np.float32)
  m = np.asarray(fft.median3x3(jnp.moveaxis(jnp.asarray(x), -1, 1)))[0]
  for c in range(3):
    d = m[c] - x[0, ..., c]
    expected = d.std(ddof=1) / np.sqrt((m[c] ** 2).sum() / (80 - 1))
    np.testing.assert_allclose(fft.image_nsr(jnp.asarray(x))[0, c], expected, rtol=1e-5)


def test_median3x3_gradient_is_that_of_the_selected_neighbour():
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.random((2, 6, 7)), jnp.float32)
  w = jnp.asarray(rng.random((2, 6, 7)), jnp.float32)

  def by_sort(x):
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    views = jnp.stack([p[:, i:i + 6, j:j + 7] for i in range(3) for j in range(3)])
    return jnp.sort(views, axis=0)[4]

  ours = jax.grad(lambda x: jnp.sum(fft.median3x3(x) * w))(x)
  expected = jax.grad(lambda x: jnp.sum(by_sort(x) * w))(x)
  np.testing.assert_allclose(ours, expected, atol=1e-6)
