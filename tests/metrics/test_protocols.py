"""The papers' metric recipes against scikit-image, OpenCV fixtures and hand-computed references."""

import hashlib
import pathlib
import platform
import warnings

import numpy as np
import pytest
from skimage import data as skdata
from skimage import metrics as skm

from lljax.metrics import lpips, protocols as P

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "protocols"


def _pair(seed, shape=(48, 64, 3), noise=20.0):
  rng = np.random.default_rng(seed)
  target = rng.integers(0, 256, shape, dtype=np.uint8)
  noisy = np.clip(target + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
  return target, noisy


@pytest.fixture(scope="module")
def photo_pair():
  """A real photo crop and a darker, noisy 'model output' in [0, 1] units (unclipped)."""
  rng = np.random.default_rng(1)
  target = skdata.astronaut()[80:176, 120:248]
  output = target / 255.0 * 0.7 + rng.normal(0, 0.04, target.shape)
  return output.astype(np.float32), target


# ---------------------------------------------------------------------------------------------
# Building blocks.


def test_opencv_gray_matches_opencv_exhaustively():
  ref = np.load(FIXTURES / "opencv_gray.npz")
  v = np.arange(256**3, dtype=np.int64)
  colours = np.stack([v >> 16, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
  ours = np.ascontiguousarray(P.opencv_rgb2gray_u8(colours))
  assert hashlib.sha256(ours.tobytes()).hexdigest() == str(ref["all_colours_sha256"])
  np.testing.assert_array_equal(P.opencv_rgb2gray_u8(ref["rgb"]), ref["gray_u8"])
  np.testing.assert_allclose(P.opencv_bgr2gray_float(ref["rgb"]), ref["bgr2gray_float"], rtol=0, atol=3.1e-5)


@pytest.mark.parametrize("shape,noise", [((40, 30), 20.0), ((23, 64), 90.0), ((7, 9), 5.0)])
def test_columnwise_ssim_is_skimage_per_column(shape, noise):
  a, b = _pair(sum(shape), shape, noise)
  # scikit-image 0.18's multichannel loop over the last axis of a 2-D image: one 1-D SSIM per column.
  ref = np.mean([skm.structural_similarity(a[:, j], b[:, j], data_range=255) for j in range(shape[1])])
  assert abs(P.ssim_columnwise(a, b) - ref) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_ssim_and_psnr_match_skimage_on_random_pairs(seed):
  a, b = _pair(seed, (37, 53, 3), noise=10.0 + 40 * seed)
  ssim_kw = [  # (ours, skimage) keyword pairs
      ({}, {}),
      ({"window": "gaussian", "sample_covariance": False},
       {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}),
      ({"window": "gaussian"}, {"gaussian_weights": True, "sigma": 1.5}),
  ]
  for ours, theirs in ssim_kw:
    ref = skm.structural_similarity(a, b, data_range=255, channel_axis=-1, **theirs)
    assert abs(P.ssim(a, b, data_range=255, **ours) - ref) < 1e-12, ours
    ref = skm.structural_similarity(a[..., 1], b[..., 1], data_range=255, **theirs)
    assert abs(P.ssim(a[..., 1], b[..., 1], data_range=255, **ours) - ref) < 1e-12, ours
  assert abs(P.psnr(a, b, 255) - skm.peak_signal_noise_ratio(a, b)) < 1e-10
  assert P.psnr(a, a, 255) == float("inf")


def test_nonneg_cs_only_clips_negative_structure():
  a, b = _pair(5, (32, 32), 8.0)
  plain = P.ssim(a, b, data_range=255, window="gaussian", sample_covariance=False)
  assert abs(P.ssim(a, b, data_range=255, window="gaussian", sample_covariance=False, nonneg_cs=True) - plain) < 1e-12
  inverted = 255 - a  # anti-correlated: the contrast-structure term is negative almost everywhere
  plain = P.ssim(a, inverted, data_range=255, window="gaussian", sample_covariance=False)
  clipped = P.ssim(a, inverted, data_range=255, window="gaussian", sample_covariance=False, nonneg_cs=True)
  assert plain < -0.5 and 0 <= clipped < 0.05


def test_uint8_conversions():
  x = np.array([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.999, 1.0, 1.3], np.float32)
  np.testing.assert_array_equal(P.truncate_u8(x), [0, 0, 0, 1, 2, 254, 255, 255])
  np.testing.assert_array_equal(P.round_u8(x), [0, 0, 0, 2, 2, 255, 255, 255])  # half to even
  wild = np.array([-3.7, -0.002, 255.9, 256.0, 256.7, 300.2, 511.0, 1000.3, -256.5], np.float32) / 255
  np.testing.assert_array_equal(P.wrap_u8(wild), [253, 0, 255, 0, 0, 44, 255, 232, 0])
  assert P.wrap_u8(np.float32(-0.01)) == 254 and "-0.01 -> -2.55 -> -2 -> 254" in P.__doc__  # the docstring's example
  if platform.machine() in ("x86_64", "AMD64"):  # what FCL-GAN's np.uint8(x * 255) does on x86
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      np.testing.assert_array_equal(P.wrap_u8(wild), np.uint8(wild * np.float32(255)))


def test_basicsr_y_matches_bt601():
  rgb = _pair(3)[0]
  r, g, b = (rgb[..., i] / 255.0 for i in range(3))
  np.testing.assert_allclose(P.basicsr_y(rgb), 16 + 65.481 * r + 128.553 * g + 24.966 * b, atol=2e-5)
  assert P.basicsr_y(rgb).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Whole protocols.


def test_llflow_protocol(photo_pair):
  output, target = photo_pair
  m = P.get("llflow").measure(output, target, with_lpips=False)
  # Hand-computed reference: test.py's GT-mean with OpenCV's BGR2GRAY on the RGB array.
  mean_gt = (0.114 * target[..., 0] + 0.587 * target[..., 1] + 0.299 * target[..., 2]).mean() / 255
  expected = (np.clip(output * (mean_gt / output.mean()), 0, 1) * 255).astype(np.uint8)
  assert np.mean(m.image != expected) < 1e-3 and np.abs(m.image.astype(int) - expected).max() <= 1
  np.testing.assert_array_equal(m.image, P.truncate_u8(output * np.float32(m.metrics["gt_mean_scale"])))
  gray = P.opencv_rgb2gray_u8
  ref_ssim = np.mean([skm.structural_similarity(gray(m.image)[:, j], gray(target)[:, j], data_range=255)
                      for j in range(target.shape[1])])
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(target, m.image)) < 1e-10
  assert abs(m.metrics["ssim"] - ref_ssim) < 1e-12
  assert abs(m.metrics["ssim_gray2d"] - skm.structural_similarity(gray(m.image), gray(target))) < 1e-12
  assert abs(m.metrics["ssim_rgb"] - skm.structural_similarity(m.image, target, channel_axis=2)) < 1e-12
  assert abs(m.metrics["mae"] - np.abs(m.image / 255.0 - target / 255.0).mean()) < 1e-12
  # GT-mean brightens the dark output: better than the plain protocol.
  assert m.metrics["psnr"] > P.get("uptflow").measure(output, target, False).metrics["psnr"] + 3
  m2 = P.get("llflow:ssim=gray2d").measure(output, target, with_lpips=False)
  assert m2.metrics["ssim"] == m.metrics["ssim_gray2d"] != m.metrics["ssim"]
  raw = P.get("llflow:gt_mean=false").measure(output, target, with_lpips=False)
  np.testing.assert_array_equal(raw.image, P.truncate_u8(output))
  assert raw.metrics["gt_mean_scale"] == 1.0 and raw.metrics["psnr"] < m.metrics["psnr"] - 3


def _official_gt_mean(output, target, nan_to_one):
  """NumPy transcription of the GT-mean step of LLFlow's ``code/test.py`` (``nan_to_one=False``)
  and SSFlow's ``test.py`` (True), line by line (``sr_t`` = the model output, ``hr`` = the RGB GT)::

    sr_t = torch.where(torch.isnan(sr_t), torch.full_like(sr_t, 1), sr_t)   # SSFlow only
    mean_out = sr_t.view(sr_t.shape[0], -1).mean(dim=1)
    mean_gt = cv2.cvtColor(hr.astype(np.float32), cv2.COLOR_BGR2GRAY).mean() / 255
    sr = rgb(torch.clamp(sr_t * (mean_gt / mean_out), 0, 1))
    # rgb(t) = (np.clip(t.numpy().transpose([1, 2, 0]), 0, 1) * 255).astype(np.uint8)
  """
  sr_t = np.where(np.isnan(output), np.float32(1), output) if nan_to_one else output
  mean_out = sr_t.mean(dtype=np.float32)
  hr = target.astype(np.float32)
  mean_gt = (0.114 * hr[..., 0] + 0.587 * hr[..., 1] + 0.299 * hr[..., 2]).mean() / 255  # BGR2GRAY on RGB
  x = np.clip(np.clip(sr_t * (mean_gt / mean_out), 0, 1), 0, 1) * 255
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # NaN -> uint8 ("invalid value encountered in cast")
    image = x.astype(np.uint8)
  if platform.machine() not in ("x86_64", "AMD64", "aarch64", "arm64"):
    image[np.isnan(x)] = 0  # what x86 (cvttss2si) and ARM give, which the official runs used
  return image


@pytest.mark.parametrize("name,nan_to_one", [("llflow", False), ("ssflow", True)])
def test_gt_mean_protocols_with_nan_pixels(photo_pair, name, nan_to_one):
  """20 NaN pixels: SSFlow's test.py turns them white before the GT-mean step (one bright pixel
  each), LLFlow's keeps them, so its mean is NaN and the whole image casts to black."""
  output, target = photo_pair
  rng = np.random.default_rng(5)
  output = output.copy()
  output[rng.integers(0, output.shape[0], 20), rng.integers(0, output.shape[1], 20)] = np.nan
  m = P.get(name).measure(output, target, with_lpips=False)
  expected = _official_gt_mean(output, target, nan_to_one)
  assert np.mean(m.image != expected) < 1e-3 and np.abs(m.image.astype(int) - expected).max() <= 1
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(target, expected)) < 0.01
  clean = P.get(name).measure(photo_pair[0], target, with_lpips=False)
  if nan_to_one:
    assert m.metrics["psnr"] > 20 and abs(m.metrics["psnr"] - clean.metrics["psnr"]) < 3
  else:
    np.testing.assert_array_equal(m.image, 0)
    assert m.metrics["psnr"] < 10
  # Without NaN the two protocols are the same recipe.
  np.testing.assert_array_equal(clean.image, P.get("llflow").measure(photo_pair[0], target, False).image)


def test_uptflow_and_infwide_protocols(photo_pair):
  output, target = photo_pair
  m = P.get("uptflow").measure(output, target, with_lpips=False)
  np.testing.assert_array_equal(m.image, (np.clip(output, 0, 1) * 255).astype(np.uint8))
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(target, m.image)) < 1e-10
  assert abs(m.metrics["ssim"] - skm.structural_similarity(m.image, target, channel_axis=2)) < 1e-12
  m = P.get("infwide").measure(output, target, with_lpips=False)
  gt = target.astype(np.float32) / 255
  assert m.image.dtype == np.float32 and m.image.min() < 0  # unclipped
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(gt, output, data_range=1)) < 1e-9
  # scikit-image 0.17 (INFWIDE's) computed SSIM in float64; today's keeps float32 inputs in float32.
  ref = skm.structural_similarity(np.float64(output), np.float64(gt), data_range=1, channel_axis=-1)
  assert abs(m.metrics["ssim"] - ref) < 1e-12
  assert 0 < m.metrics["out_of_range"] < 0.2


@pytest.mark.parametrize("crop", [0, 4])
def test_basicsr_protocol(photo_pair, crop):
  output, target = photo_pair
  m = P.get(f"basicsr:crop_border={crop}").measure(output, target, with_lpips=False)
  np.testing.assert_array_equal(m.image, np.round(np.clip(output, 0, 1) * np.float32(255)).astype(np.uint8))
  c = slice(crop, -crop) if crop else slice(None)
  ya, yb = P.basicsr_y(m.image[c, c]), P.basicsr_y(target[c, c])
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(yb.astype(np.float64), ya.astype(np.float64), data_range=255)) < 1e-9
  ref = skm.structural_similarity(ya.astype(np.float64), yb.astype(np.float64), data_range=255,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  assert abs(m.metrics["ssim"] - ref) < 1e-12
  rgb = P.get(f"basicsr:crop_border={crop},y=false").measure(output, target, with_lpips=False)
  ref = skm.structural_similarity(m.image[c, c], target[c, c], channel_axis=2, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
  assert abs(rgb.metrics["ssim"] - ref) < 1e-12


def test_lednet_protocol(photo_pair):
  output, target = photo_pair
  m = P.get("lednet").measure(output, target, with_lpips=False)
  a, b = m.image / 255.0, target / 255.0
  assert abs(m.metrics["psnr"] - 10 * np.log10(1 / (np.mean((a - b) ** 2) + 1e-8))) < 1e-5
  # pyiqa's Y on OpenCV-read (BGR) arrays: 0.299 B + 0.587 G + 0.114 R, rounded.
  y = lambda x: np.round((0.299 * x[..., 2] + 0.587 * x[..., 1] + 0.114 * x[..., 0]) * 255)
  ref = skm.structural_similarity(y(a), y(b), data_range=255, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
  assert abs(m.metrics["ssim"] - ref) < 2e-4  # float32 vs float64 ties in the rounding
  rgb = P.get("lednet:bgr=false").measure(output, target, with_lpips=False)
  assert rgb.metrics["psnr"] == m.metrics["psnr"] and rgb.metrics["ssim"] != m.metrics["ssim"]


def test_devudp_protocol(photo_pair):
  output, target = photo_pair
  m = P.get("devudp").measure(output, target, with_lpips=False)
  assert m.metrics["out_of_range"] > 0  # the noisy output dips below zero -> wraps to ~255
  np.testing.assert_array_equal(m.image, P.wrap_u8(output))
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(target, m.image)) < 1e-10
  ref = skm.structural_similarity(m.image, target, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
  assert abs(m.metrics["ssim"] - ref) < 1e-12
  inside = P.get("devudp").measure(np.clip(output, 0, 0.999), target, with_lpips=False)
  assert inside.metrics["out_of_range"] == 0 and inside.metrics["psnr"] > m.metrics["psnr"]


def test_honest_protocol(photo_pair):
  output, target = photo_pair
  m = P.get("honest").measure(output, target, with_lpips=False)
  a, b = m.image / 255.0, target / 255.0
  assert abs(m.metrics["psnr"] - skm.peak_signal_noise_ratio(b, a, data_range=1)) < 1e-4
  ref = skm.structural_similarity(a, b, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
  assert abs(m.metrics["ssim"] - ref) < 1e-5


def test_lpips_inputs(photo_pair):
  output, target = photo_pair
  m = P.get("llflow").measure(output, target)
  assert abs(m.metrics["lpips"] - lpips.get("alex")(m.image / 255.0, target / 255.0)) < 1e-6
  m = P.get("lednet").measure(output, target)  # VGG on the BGR-ordered images
  ref = lpips.get("vgg")(m.image[..., ::-1] / 255.0, target[..., ::-1] / 255.0)
  assert abs(m.metrics["lpips"] - ref) < 1e-6


def test_specs_and_errors(photo_pair):
  output, target = photo_pair
  assert set(P.names()) == {"llflow", "ssflow", "uptflow", "basicsr", "lednet", "infwide", "devudp", "honest"}
  assert P.get("basicsr:crop_border=4").spec == "basicsr:crop_border=4"
  assert P.get("llflow:ssim=column").spec == "llflow"
  assert P.get("llflow:gt_mean=false,ssim=gray2d").spec == "llflow:ssim=gray2d,gt_mean=false"
  for spec, msg in [("kind", "unknown protocol"), ("llflow:ssim=rgb", "one of column, gray2d"),
                    ("basicsr:crop_border=-1", ">= 0"), ("basicsr:y=maybe", "true/false"),
                    ("uptflow:foo=1", "options: none"), ("basicsr:crop", "bad option")]:
    with pytest.raises(ValueError, match=msg):
      P.get(spec)
  with pytest.raises(TypeError, match="uint8"):
    P.get("honest").measure(output, target / 255.0)
  with pytest.raises(ValueError, match="must both be"):
    P.get("honest").measure(output[:-1], target)
