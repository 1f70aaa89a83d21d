"""Tests of lljax.data.degrade (sRGB curves, noise model, low-light synthesis)."""

import numpy as np
import pytest

from lljax.data import degrade
from lljax.data import photos


def test_srgb_known_values_and_round_trip():
  # Reference values of the IEC 61966-2-1 curve.
  np.testing.assert_allclose(degrade.srgb_to_linear([0.0, 0.04045, 0.5, 1.0]),
                             [0.0, 0.04045 / 12.92, 0.21404114048223255, 1.0],
                             rtol=1e-12, atol=1e-15)
  x = np.linspace(0.0, 1.0, 100001)
  # The standard's two knees (0.04045 / 12.92 vs 0.0031308) differ by 5e-10,
  # which costs 3e-8 right at the knee; elsewhere the curves invert exactly.
  np.testing.assert_allclose(degrade.linear_to_srgb(degrade.srgb_to_linear(x)), x,
                             atol=1e-7)
  np.testing.assert_allclose(degrade.srgb_to_linear(degrade.linear_to_srgb(x)), x,
                             atol=1e-12)
  assert np.all(np.diff(degrade.srgb_to_linear(x)) > 0)


def test_linear_to_srgb_continuous_at_knee_and_keeps_negatives():
  knee = 0.0031308
  below, above = degrade.linear_to_srgb([knee - 1e-12, knee + 1e-12])
  assert abs(below - above) < 1e-6
  assert degrade.linear_to_srgb(-0.01) == pytest.approx(-0.1292)


def test_u8_lookup_equals_formula():
  codes = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(degrade._U8_TO_LINEAR[codes],
                                degrade.srgb_to_linear(codes / 255.0))


def test_quantize_u8_rounds_half_up_and_clips():
  x = np.array([-0.2, 0.0, 0.49999 / 255, 0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0, 1.7])
  np.testing.assert_array_equal(degrade.quantize_u8(x), [0, 0, 0, 1, 2, 255, 255, 255])
  assert degrade.quantize_u8(x).dtype == np.uint8


def test_darken_scales_linearly():
  np.testing.assert_allclose(degrade.darken(np.array([0.2, 0.5]), 0.1), [0.02, 0.05])


def test_poisson_gaussian_variance_is_affine_in_signal():
  photons, read_sigma = 500.0, 0.01
  levels = np.linspace(0.02, 0.6, 8)
  clean = np.repeat(levels[:, None], 200_000, axis=1)
  noisy = degrade.poisson_gaussian_noise(clean, np.random.default_rng(0), photons, read_sigma)
  np.testing.assert_allclose(noisy.mean(axis=1), levels, atol=3e-4)
  slope, intercept = np.polyfit(levels, noisy.var(axis=1), 1)
  # Var = signal / photons + read_sigma**2.
  assert slope == pytest.approx(1 / photons, rel=0.03)
  assert intercept == pytest.approx(read_sigma**2, rel=0.1)


def test_poisson_noise_without_read_noise_is_photon_quantized():
  noisy = degrade.poisson_gaussian_noise(np.full(1000, 0.3), np.random.default_rng(1), 50.0, 0.0)
  counts = noisy * 50.0
  np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
  assert noisy.min() >= 0


def test_synthesize_low_light_dtype_shape_info_and_determinism():
  normal = photos.load_photo('astronaut')
  params = degrade.LowLightParams()
  low, info = degrade.synthesize_low_light(normal, seed=7)
  assert low.dtype == np.uint8 and low.shape == normal.shape
  assert set(info) == {'exposure', 'photons', 'read_sigma'}
  assert params.exposure_range[0] <= info['exposure'] <= params.exposure_range[1]
  assert params.photons_range[0] <= info['photons'] <= params.photons_range[1]
  assert params.read_sigma_range[0] <= info['read_sigma'] <= params.read_sigma_range[1]
  again, info_again = degrade.synthesize_low_light(normal, seed=7)
  np.testing.assert_array_equal(low, again)
  assert info == info_again
  other, _ = degrade.synthesize_low_light(normal, seed=8)
  assert not np.array_equal(low, other)


def test_synthesize_low_light_rejects_float_input():
  with pytest.raises(TypeError, match='uint8'):
    degrade.synthesize_low_light(np.zeros((4, 4, 3)), seed=0)


@pytest.mark.parametrize('name', ['astronaut', 'chelsea', 'motorcycle_left'])
def test_low_light_brightness_matches_lol_range(name):
  """Photos of mean ~0.4-0.5 must end up at mean ~0.03-0.15 (LOL low)."""
  normal = photos.load_photo(name)
  assert 0.38 < normal.mean() / 255 < 0.5
  linear = degrade.srgb_to_linear(normal / 255.0)
  low_bounds = [degrade.linear_to_srgb(degrade.darken(linear, e)).mean()
                for e in degrade.LowLightParams().exposure_range]
  assert 0.02 < low_bounds[0] < 0.04 and 0.12 < low_bounds[1] < 0.16
  means = [degrade.synthesize_low_light(normal, seed)[0].mean() / 255 for seed in range(6)]
  assert all(0.02 < m < 0.17 for m in means), means
