"""Tests of the degradations of lljax.imaging: sRGB curves, low light, motion blur, camera noise."""

import json
import pathlib

import numpy as np
import pytest

from lljax.imaging import camera
from lljax.imaging import lowlight
from lljax.imaging import motion
from lljax.imaging import photos
from lljax.imaging import srgb


def test_srgb_known_values_and_round_trip():
  # Reference values of the IEC 61966-2-1 curve.
  np.testing.assert_allclose(srgb.srgb_to_linear([0.0, 0.04045, 0.5, 1.0]),
                             [0.0, 0.04045 / 12.92, 0.21404114048223255, 1.0],
                             rtol=1e-12, atol=1e-15)
  x = np.linspace(0.0, 1.0, 100001)
  # The standard's two knees (0.04045 / 12.92 vs 0.0031308) differ by 5e-10,
  # which costs 3e-8 right at the knee; elsewhere the curves invert exactly.
  np.testing.assert_allclose(srgb.linear_to_srgb(srgb.srgb_to_linear(x)), x,
                             atol=1e-7)
  np.testing.assert_allclose(srgb.srgb_to_linear(srgb.linear_to_srgb(x)), x,
                             atol=1e-12)
  assert np.all(np.diff(srgb.srgb_to_linear(x)) > 0)


def test_linear_to_srgb_continuous_at_knee_and_keeps_negatives():
  knee = 0.0031308
  below, above = srgb.linear_to_srgb([knee - 1e-12, knee + 1e-12])
  assert abs(below - above) < 1e-6
  assert srgb.linear_to_srgb(-0.01) == pytest.approx(-0.1292)


def test_u8_lookup_equals_formula():
  codes = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(srgb._U8_TO_LINEAR[codes],
                                srgb.srgb_to_linear(codes / 255.0))


def test_quantize_u8_rounds_half_up_and_clips():
  x = np.array([-0.2, 0.0, 0.49999 / 255, 0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0, 1.7])
  np.testing.assert_array_equal(srgb.quantize_u8(x), [0, 0, 0, 1, 2, 255, 255, 255])
  assert srgb.quantize_u8(x).dtype == np.uint8


def test_darken_scales_linearly():
  np.testing.assert_allclose(lowlight.darken(np.array([0.2, 0.5]), 0.1), [0.02, 0.05])


def test_poisson_gaussian_variance_is_affine_in_signal():
  photons, read_sigma = 500.0, 0.01
  levels = np.linspace(0.02, 0.6, 8)
  clean = np.repeat(levels[:, None], 200_000, axis=1)
  noisy = lowlight.poisson_gaussian_noise(clean, np.random.default_rng(0), photons, read_sigma)
  np.testing.assert_allclose(noisy.mean(axis=1), levels, atol=3e-4)
  slope, intercept = np.polyfit(levels, noisy.var(axis=1), 1)
  # Var = signal / photons + read_sigma**2.
  assert slope == pytest.approx(1 / photons, rel=0.03)
  assert intercept == pytest.approx(read_sigma**2, rel=0.1)


def test_poisson_noise_without_read_noise_is_photon_quantized():
  noisy = lowlight.poisson_gaussian_noise(np.full(1000, 0.3), np.random.default_rng(1), 50.0, 0.0)
  counts = noisy * 50.0
  np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
  assert noisy.min() >= 0


def test_synthesize_low_light_dtype_shape_info_and_determinism():
  normal = photos.load_photo('astronaut')
  params = lowlight.LowLightParams()
  low, info = lowlight.synthesize_low_light(normal, seed=7)
  assert low.dtype == np.uint8 and low.shape == normal.shape
  assert set(info) == {'exposure', 'photons', 'read_sigma'}
  assert params.exposure_range[0] <= info['exposure'] <= params.exposure_range[1]
  assert params.photons_range[0] <= info['photons'] <= params.photons_range[1]
  assert params.read_sigma_range[0] <= info['read_sigma'] <= params.read_sigma_range[1]
  again, info_again = lowlight.synthesize_low_light(normal, seed=7)
  np.testing.assert_array_equal(low, again)
  assert info == info_again
  other, _ = lowlight.synthesize_low_light(normal, seed=8)
  assert not np.array_equal(low, other)


def test_synthesize_low_light_rejects_float_input():
  with pytest.raises(TypeError, match='uint8'):
    lowlight.synthesize_low_light(np.zeros((4, 4, 3)), seed=0)


@pytest.mark.parametrize('name', ['astronaut', 'chelsea', 'motorcycle_left'])
def test_low_light_brightness_matches_lol_range(name):
  """Photos of mean ~0.4-0.5 must end up at mean ~0.03-0.15 (LOL low)."""
  normal = photos.load_photo(name)
  assert 0.38 < normal.mean() / 255 < 0.5
  linear = srgb.srgb_to_linear(normal / 255.0)
  low_bounds = [srgb.linear_to_srgb(lowlight.darken(linear, e)).mean()
                for e in lowlight.LowLightParams().exposure_range]
  assert 0.02 < low_bounds[0] < 0.04 and 0.12 < low_bounds[1] < 0.16
  means = [lowlight.synthesize_low_light(normal, seed)[0].mean() / 255 for seed in range(6)]
  assert all(0.02 < m < 0.17 for m in means), means


# ----------------------------------------------------------------------------
# Motion kernels (INFWIDE's trajectory recipe).


def _trajectory_loop(v0, kicks_rot, kicks_trans, steps=250):
  """Reference: the trajectory recursion written step by step (no closed form)."""
  x, r, v = np.zeros((3, steps)), np.zeros((3, steps)), np.zeros((3, steps))
  v[:, 0] = v0
  rate = 2 * np.pi / steps
  for t in range(1, steps):
    r[:, t] = r[:, t - 1] + rate * (kicks_rot[t - 1] / (t + 1) + r[:, t - 1])
    v[:, t] = v[:, t - 1] + kicks_trans[t - 1] / (t + 1)
    a, b, c = r[:, t]
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    x[:, t] = x[:, t - 1] + rz @ ry @ rx @ v[:, t]
  return x


def test_random_trajectory_equals_the_step_by_step_recursion():
  rng = np.random.default_rng(3)
  v0, rot, trans = rng.standard_normal(3), rng.standard_normal((249, 3)), rng.standard_normal((249, 3))
  expected = _trajectory_loop(v0, rot, trans)
  got = motion.random_trajectory(np.random.default_rng(3))
  np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def _histogram_loop(points, grid):
  """Reference: INFWIDE's double loop over bins [edges[i-1], edges[i])."""
  k = np.zeros((grid, grid))
  ex = np.arange(points[0].min(), points[0].max(), np.ptp(points[0]) / grid)
  ey = np.arange(points[1].min(), points[1].max(), np.ptp(points[1]) / grid)
  for i in range(1, ex.size):
    for j in range(1, ey.size):
      k[i - 1, j - 1] = np.sum((points[0] >= ex[i - 1]) & (points[0] < ex[i])
                               & (points[1] >= ey[j - 1]) & (points[1] < ey[j]))
  return k / k.sum()


@pytest.mark.parametrize('grid', [5, 13, 27])
def test_trajectory_histogram_matches_the_binning_loop(grid):
  points = motion.random_trajectory(np.random.default_rng(grid))
  np.testing.assert_allclose(motion._trajectory_histogram(points, grid),
                             _histogram_loop(points, grid), atol=1e-15)
  assert motion._trajectory_histogram(np.zeros((3, 10)), grid) is None  # Degenerate path.


def _resize_half_pixel(image, out_h, out_w):
  """Reference: OpenCV's INTER_LINEAR (half-pixel centres, clamped edges) in float64."""

  def axis_weights(n_in, n_out):
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(src).astype(int)
    return i0, np.minimum(i0 + 1, n_in - 1), src - i0

  y0, y1, wy = axis_weights(image.shape[0], out_h)
  x0, x1, wx = axis_weights(image.shape[1], out_w)
  rows = image[y0] * (1 - wy)[:, None] + image[y1] * wy[:, None]
  return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def test_kernel_upscaling_is_opencv_half_pixel_bilinear():
  small = np.random.default_rng(0).random((37, 37))
  for out_h, out_w in [(37, 37), (80, 151), (185, 40)]:
    ours = motion._resize_bilinear(small, out_h, out_w)
    assert ours.shape == (out_h, out_w) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, _resize_half_pixel(small, out_h, out_w), atol=2e-6)


def test_motion_kernels_are_normalised_deterministic_and_varied():
  kernels = [motion.motion_kernel(seed) for seed in range(120)]
  for kernel, info in kernels:
    assert kernel.shape == (37, 37) and kernel.dtype == np.float32
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert info['grid'] % 2 == 1 and 5 <= info['grid'] <= 27
  again, _ = motion.motion_kernel(7)
  np.testing.assert_array_equal(again, kernels[7][0])
  assert len({k.tobytes() for k, _ in kernels}) == len(kernels)
  # Official probabilities: 1/4 of the kernels are upscaled; grid sizes
  # follow n = round(5 + Exp(mean 1/0.15)) capped at 27 (P(n = 27) ~ e^-3.2).
  upscaled = sum(info['upscale'] is not None for _, info in kernels)
  assert 15 <= upscaled <= 48
  capped = sum(info['grid'] == 27 for _, info in kernels)
  assert 0 <= capped <= 15
  # Unscaled kernels live inside their grid, centred in the 37x37 support.
  for kernel, info in kernels:
    if info['upscale'] is None and info['gaussian_sigma'] is None:
      margin = (37 - info['grid']) // 2
      assert kernel[:margin].sum() == 0 and kernel[:, :margin].sum() == 0


def test_motion_kernel_other_sizes():
  kernel, _ = motion.motion_kernel(np.random.default_rng(1), size=21)
  assert kernel.shape == (21, 21) and kernel.sum() == pytest.approx(1.0, abs=1e-5)


def test_gaussian_fallback_kernel_is_a_normalised_gaussian():
  g = motion._gaussian_kernel(37, 2.0)
  assert g.sum() == pytest.approx(1.0)
  assert g[18, 18] == g.max()
  np.testing.assert_allclose(g[18, 19] / g[18, 18], np.exp(-1 / 8))


# ----------------------------------------------------------------------------
# Circular blur.


@pytest.mark.parametrize('kernel_shape', [(37, 37), (5, 4), (1, 1)])
def test_blur_circular_equals_ndimage_wrap_convolution(kernel_shape):
  from scipy import ndimage
  rng = np.random.default_rng(0)
  image = rng.random((40, 53, 3))
  kernel = rng.random(kernel_shape)
  expected = np.stack([ndimage.convolve(image[..., c], kernel, mode='wrap') for c in range(3)], -1)
  np.testing.assert_allclose(motion.blur_circular(image, kernel), expected, atol=1e-12)
  np.testing.assert_allclose(motion.blur_circular(image[..., 0], kernel), expected[..., 0],
                             atol=1e-12)


def test_blur_circular_keeps_constant_images_and_the_mean():
  kernel, _ = motion.motion_kernel(3)
  np.testing.assert_allclose(motion.blur_circular(np.full((40, 40, 3), 0.3), kernel), 0.3,
                             atol=1e-7)
  image = np.random.default_rng(1).random((64, 48, 3))
  np.testing.assert_allclose(motion.blur_circular(image, kernel).mean((0, 1)),
                             image.mean((0, 1)), atol=1e-6)
  with pytest.raises(ValueError, match='smaller than the kernel'):
    motion.blur_circular(np.zeros((20, 50, 3)), kernel)


# ----------------------------------------------------------------------------
# INFWIDE's camera noise.

# Means and standard deviations (DN, R/G/B) of INFWIDE's own CMOS_Camera.take_photo_P on
# flat 512x512 patches with sigma_beta 0.02, sigma_r 2, n_d 5: measured by running the
# official function with tests/fixtures/camera_noise/make_official_flat.py (its docstring
# gives the call, the seed and the official commit).
_OFFICIAL_FLAT = json.loads(
    (pathlib.Path(__file__).parents[1] / 'fixtures' / 'camera_noise' / 'official_flat.json').read_text())


@pytest.mark.parametrize('case', _OFFICIAL_FLAT['cases'], ids=lambda c: f"kc{c['kc']}_v{c['value']}")
def test_camera_noise_matches_the_official_function_on_flat_patches(case):
  kc, value = case['kc'], case['value']
  flat = np.full((512, 512, 3), value / 255.0)
  params = _OFFICIAL_FLAT['noise_params']
  out = camera.camera_noise(flat, np.random.default_rng(kc), sigma_beta=params['sigma_beta'],
                            sigma_r=params['sigma_r'], dark_current=params['nd_factor'], kc=float(kc))
  assert out.dtype == np.uint8 and out.shape == flat.shape
  pixels = out.reshape(-1, 3).astype(np.float64)
  # lljax draws from its own generator: the same distribution, not the same samples.
  np.testing.assert_allclose(pixels.mean(0), case['mean'], atol=1.0)
  np.testing.assert_allclose(pixels.std(0), case['std'], rtol=0.03)


def _dark_current_moments(n_d):
  from scipy import stats
  k = np.arange(0, 200)
  pmf = stats.poisson.pmf(k, n_d)
  d = np.maximum(k - n_d, 0)
  return (pmf * d).sum(), (pmf * d * d).sum() - (pmf * d).sum() ** 2


def test_camera_noise_moments_follow_the_model():
  """Mean ~ v + kc E[D] / g, variance ~ kc v / g + (kc / g)^2 (sigma_r^2 + Var D) per channel.

  kc = 12 makes the digital gain kd = 2 an integer, so only the first
  truncation (of the analog value, uniform fraction) costs: -kd / 2 on the
  mean, +kd^2 / 12 on the variance. The values keep negative raw values and
  255-clipping negligible.
  """
  kc, n_d, sigma_r = 12.0, 3.0, 1.0
  kd = kc / 6
  mean_d, var_d = _dark_current_moments(n_d)
  for value in (60.0, 90.0):
    out = camera.camera_noise(np.full((400, 400, 3), value / 255.0), np.random.default_rng(2),
                              sigma_beta=0.0, sigma_r=sigma_r, dark_current=n_d, kc=kc)
    pixels = out.reshape(-1, 3).astype(np.float64)
    for channel, green in enumerate((1.0, 2.0, 1.0)):
      gain = kc / green
      expected_mean = value + gain * mean_d - kd / 2
      expected_var = gain * value + gain ** 2 * (sigma_r ** 2 + var_d) + kd ** 2 / 12
      assert pixels[:, channel].mean() == pytest.approx(expected_mean, abs=0.4)
      assert pixels[:, channel].var() == pytest.approx(expected_var, rel=0.05)


def test_camera_noise_row_gain_is_shared_along_rows():
  out = camera.camera_noise(np.full((300, 2000, 3), 0.5), np.random.default_rng(0),
                            sigma_beta=0.05, sigma_r=0.0, dark_current=0.0, kc=1.0,
                            params=camera.CameraNoiseParams(salt_prob=0, pepper_prob=0))
  row_means = out[..., 0].astype(np.float64).mean(axis=1)
  # Row means vary by sigma_beta * v = 6.4 DN; within a row only shot noise remains.
  assert 4.5 < row_means.std() < 8.5


def test_camera_noise_salt_and_pepper_rates():
  params = camera.CameraNoiseParams(salt_prob=1e-3, pepper_prob=2e-3)
  out = camera.camera_noise(np.full((500, 500, 3), 0.4), np.random.default_rng(4),
                            sigma_beta=0.0, sigma_r=0.0, dark_current=0.0, kc=6.0, params=params)
  salt = (out == 255).mean(axis=(0, 1))
  pepper = (out == 0).mean(axis=(0, 1))
  # Probabilities scale with each channel's analog gain: 6 for R/B, 3 for G.
  np.testing.assert_allclose(salt, [6e-3, 3e-3, 6e-3], rtol=0.15)
  np.testing.assert_allclose(pepper, [12e-3 * (1 - 6e-3), 6e-3 * (1 - 3e-3), 12e-3 * (1 - 6e-3)],
                             rtol=0.15)


def test_sample_camera_noise_ranges_and_fixed_gain():
  rng = np.random.default_rng(0)
  draws = [camera.sample_camera_noise(rng) for _ in range(400)]
  assert {d['kc'] for d in draws} == set(float(k) for k in range(4, 16))
  assert all(0.01 <= d['sigma_beta'] <= 0.03 and 0.5 <= d['sigma_r'] <= 4 and
             2 <= d['dark_current'] <= 8 for d in draws)
  fixed = camera.sample_camera_noise(rng, camera.CameraNoiseParams(kc=8.0))
  assert fixed['kc'] == 8.0


def test_saturate_is_infwides_clip():
  x = np.array([0.0, 0.5, 0.8, 0.9, 1.0])
  np.testing.assert_allclose(camera.saturate(x), np.minimum(x, 1 / 1.2), atol=1e-7)
  np.testing.assert_allclose(camera.saturate(np.array([255, 100], np.uint8)),
                             [1 / 1.2, 100 / 255], atol=1e-7)


def test_synthesize_night_blur_is_deterministic_and_documented():
  sharp = photos.load_photo('chelsea')[:120, :160]
  low, kernel, info = camera.synthesize_night_blur(sharp, seed=5)
  again, kernel2, info2 = camera.synthesize_night_blur(sharp, seed=5)
  np.testing.assert_array_equal(low, again)
  np.testing.assert_array_equal(kernel, kernel2)
  assert info == info2
  assert low.dtype == np.uint8 and low.shape == sharp.shape
  # The kernel is the seed's first draw.
  np.testing.assert_array_equal(kernel, motion.motion_kernel(np.random.default_rng(5))[0])
  # Noise is centred on the blurred image plus the dark-current bias.
  blurred = motion.blur_circular(sharp / 255.0, kernel) * 255
  mean_d, _ = _dark_current_moments(info['dark_current'])
  bias = info['kc'] * mean_d * np.array([1, 0.5, 1])
  # Truncations and clipping move the mean by at most ~kd / 2 + 1 / 2 DN.
  np.testing.assert_allclose((low - blurred).mean((0, 1)), bias, atol=0.5 * info['kc'] / 6 + 1)
  other, _, _ = camera.synthesize_night_blur(sharp, seed=6)
  assert not np.array_equal(low, other)


# ----------------------------------------------------------------------------
# Blur in linear light, combined with low light; JPEG.


def test_synthesize_blur_keeps_flat_images_and_uses_the_seed_kernel():
  flat = np.full((48, 48, 3), 77, np.uint8)
  low, kernel, _ = motion.synthesize_blur(flat, seed=4)
  np.testing.assert_array_equal(low, flat)
  np.testing.assert_array_equal(kernel, motion.motion_kernel(np.random.default_rng(4))[0])
  photo = photos.load_photo('coffee')[:96, :128]
  blurred, kernel, _ = motion.synthesize_blur(photo, seed=4)
  expected = srgb.quantize_u8(srgb.linear_to_srgb(np.clip(
      motion.blur_circular(srgb.u8_to_linear(photo), kernel), 0, 1)))
  np.testing.assert_array_equal(blurred, expected)
  # Blur removes high frequencies: neighbour differences shrink.
  assert np.abs(np.diff(blurred.astype(float), axis=1)).mean() < np.abs(
      np.diff(photo.astype(float), axis=1)).mean()


def test_low_light_from_linear_is_synthesize_low_light():
  """Wiring smoke test, not a reference: synthesize_low_light is low_light_from_linear on the
  photo decoded through the uint8 lookup table, so this only restates that one line and the LUT
  (whose values test_u8_lookup_equals_formula checks). The degradation itself is checked by the
  tests above (sRGB curves, Poisson-Gaussian variance, brightness range)."""
  photo = photos.load_photo('rocket')[:64, :64]
  a, info_a = lowlight.synthesize_low_light(photo, 11)
  b, info_b = lowlight.low_light_from_linear(srgb.srgb_to_linear(photo / 255.0), 11)
  np.testing.assert_array_equal(a, b)
  assert info_a == info_b


def test_synthesize_low_light_blur_shares_the_lowlight_draws():
  photo = photos.load_photo('astronaut')[:128, :128]
  low, kernel, info = lowlight.synthesize_low_light_blur(photo, seed=9)
  _, lowlight_info = lowlight.synthesize_low_light(photo, 9)
  for key in lowlight_info:
    assert info[key] == lowlight_info[key]
  np.testing.assert_array_equal(kernel,
                                motion.motion_kernel(np.random.default_rng([9, 1]))[0])
  assert low.dtype == np.uint8 and low.mean() < photo.mean() * 0.5


def test_jpeg_roundtrip_error_falls_with_quality():
  photo = photos.load_photo('astronaut')[:128, :128]
  errors = [np.abs(srgb.jpeg_roundtrip(photo, q).astype(float) - photo).mean()
            for q in (10, 50, 95)]
  assert errors[0] > errors[1] > errors[2] > 0
  np.testing.assert_array_equal(srgb.jpeg_roundtrip(photo, 50), srgb.jpeg_roundtrip(photo, 50))
  with pytest.raises(ValueError, match='quality'):
    srgb.jpeg_roundtrip(photo, 0)
