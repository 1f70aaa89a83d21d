"""lljax.imaging.exposure: the target brightness in linear light with a smooth highlight shoulder."""

import numpy as np
import pytest

from lljax.imaging import exposure, photos


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_targets_are_reached_on_the_mean_and_the_order_of_values_kept(name):
  dark = photos.load_photo(name).astype(np.float32) / 255 * 0.15
  for target in (0.05, 0.15, 0.43, 0.7, "auto"):
    out = exposure.adjust_exposure(dark, target)
    want = exposure.AUTO_TARGET if target == "auto" else target
    assert abs(exposure.brightness(out) - want) < 1 / 255 and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    order = np.argsort(dark[..., 1].ravel(), kind="stable")
    assert np.all(np.diff(out[..., 1].ravel()[order]) >= 0)  # one increasing curve: no clipping step


def test_gain_in_linear_light_with_a_smooth_shoulder():
  ramp = np.linspace(0, 1, 1001)
  curve = exposure._roll_off(ramp * 2)  # pylint: disable=protected-access
  assert np.all(np.diff(curve) > 0) and curve.max() < 1  # rises everywhere, never clips
  np.testing.assert_allclose(curve[ramp * 2 <= exposure.KNEE], (ramp * 2)[ramp * 2 <= exposure.KNEE])
  slope = np.diff(curve) / np.diff(ramp * 2)
  assert np.max(np.abs(np.diff(slope))) < 0.01  # no kink at the knee

  rng = np.random.default_rng(0)
  image = np.concatenate([rng.random((30, 40, 3)) ** 2 * 0.2, rng.random((30, 40, 1))], -1).astype(np.float32)
  out = exposure.adjust_exposure(image, "0.5")
  assert abs(exposure.brightness(out) - 0.5) < 1e-3 and out.shape == image.shape
  np.testing.assert_array_equal(out[..., 3], image[..., 3])  # alpha kept
  ratio = out[..., :3].astype(np.float64)  # dark pixels: one gain in linear light keeps hue ratios
  from lljax.imaging.srgb import srgb_to_linear  # pylint: disable=import-outside-toplevel
  dark = srgb_to_linear(ratio).max(-1) < exposure.KNEE
  gains = srgb_to_linear(ratio)[dark] / np.maximum(srgb_to_linear(image[..., :3])[dark], 1e-12)
  assert np.ptp(gains[srgb_to_linear(image[..., :3])[dark] > 1e-3]) < 1e-3 * gains.max()
  assert exposure.adjust_exposure(image, None) is image
  for bad in ("bright", 0, 1.0, -0.2):
    with pytest.raises(ValueError, match="exposure"):
      exposure.target_of(bad)
