"""The papers' evaluation recipes, reproduced exactly, and the honest protocol beside them.

A protocol turns a model's raw output and the ground truth into the numbers a paper reports::

    protocol = protocols.get("llflow")            # or "basicsr:crop_border=4", "llflow:ssim=gray2d"
    m = protocol.measure(output, target)          # m.metrics: {"psnr", "ssim", "mae", "lpips", ...}

``output``: float ``[H, W, 3]`` RGB, the model's raw (unclipped) output in [0, 1] units, already
cropped to the target's size. ``target``: uint8 ``[H, W, 3]`` RGB ground truth. ``m.image`` is
what was measured (uint8, or float32 for INFWIDE), e.g. to save it. ``mae`` is always the mean
absolute error of ``m.image`` against the target in [0, 1] units (no paper reports it).
All reference metrics run in NumPy float64 (no GPU nondeterminism; SSIMs are 'valid'-window
means, identical to scikit-image's reflect-then-crop).

Recipes (official code read at the commits named in ``shared/research``; deviations: none except
where stated):

``llflow`` (wyf0912/LLFlow ``code/test.py`` + ``Measure.py``; paper: LOL 25.19 / 0.93 / 0.11)
  GT-mean: ``out * mean_gt / mean(out)``, where ``mean_gt`` is the mean of OpenCV
  ``COLOR_BGR2GRAY`` applied to the *RGB* GT in float32 (so the weights are swapped:
  0.114 R + 0.587 G + 0.299 B) / 255 and ``mean(out)`` the plain mean over all values; clipped to
  [0, 1], times 255 and *truncated* to uint8. PSNR: scikit-image on uint8 RGB (range 255). SSIM:
  ``structural_similarity(gray(out), gray(gt), multichannel=True)`` on OpenCV ``RGB2GRAY`` uint8
  images. With the pinned scikit-image 0.18.1 (and 0.19 through its deprecation shim), a 2-D array
  with ``multichannel=True`` is looped over its last axis: the "gray SSIM" is the mean of **1-D SSIMs
  of the image columns** (7-tap uniform window along H, sample covariance 7/6, range 255).
  scikit-image >= 0.20 drops the keyword and computes the ordinary 2-D 7x7 SSIM. ``ssim=column``
  (default, the released code's number) or ``ssim=gray2d``; both are always reported as
  ``ssim_column`` / ``ssim_gray2d``, plus ``ssim_rgb`` (per-channel 7x7 on RGB, the README's
  pre-2022 "0.86"). LPIPS: AlexNet v0.1 on the uint8 images. ``gt_mean=false`` skips the
  brightness rescaling (the ~21 dB "without GT-mean" numbers of LLFlow issue #34). The gray conversion is OpenCV's
  15-bit fixed point ``(9798 R + 19235 G + 3735 B + 2^14) >> 15``, checked against OpenCV
  4.5.5, 4.6 and 5.0 on all 2^24 colours (the pinned 4.5.3.56 has no wheel for Python 3.11).
  NaN output values are kept, as in the official code: one NaN makes ``mean(out)`` NaN, so the
  whole image becomes NaN and casts to 0 (black; the cast of NaN to uint8 gives 0 on x86 and
  ARM, and 0 here on every CPU).
  Differences: ``mean(out)`` is over the cropped output (the official mean includes its bottom/right
  reflect padding to a multiple of 2, which only exists for sizes the official model cannot run);
  a non-positive ``mean(out)`` is floored at 1e-8 instead of producing NaN (LLFlow issue #45);
  the official run is fp16 autocast, ours float32.
``ssflow`` (shibaoshun/SSFlow ``test.py`` + ``Measure.py``): LLFlow's code with one change: NaN
  output values are replaced by 1 (``torch.where(torch.isnan(sr_t), 1, sr_t)``) before the
  GT-mean step, so a few NaN pixels become white pixels instead of blacking out the image. Its
  README pins Python 3.8 and numpy 1.23.3 but not scikit-image; scikit-image 0.19.x (current
  when numpy 1.23.3 came out) gives the column-wise SSIM, hence the same default.
``uptflow`` (NJUPT-IPR-XuLintao/UPT-Flow ``test.py`` + ``Measure.py``; no GT-mean): clip, x255,
  truncate. PSNR as above; SSIM ``structural_similarity(out, gt, channel_axis=2)``: per-channel
  2-D 7x7 uniform, sample covariance, range 255, averaged over R, G, B. LPIPS AlexNet.
``basicsr`` (XPixelGroup/BasicSR ``metrics/psnr_ssim.py``): ``tensor2img`` (clip, x255,
  round half to even), ``crop_border`` pixels removed on every side, then on the Y channel of
  BT.601 YCbCr in [16, 235] (``y=true``, float, unrounded, computed in float32 as BasicSR does):
  PSNR with range 255 (inf when equal) and SSIM with the 11x11 Gaussian window (sigma 1.5),
  population covariance; ``y=false`` averages SSIM over R, G, B. LPIPS (not part of BasicSR):
  AlexNet on the full uint8 images.
``lednet`` (sczhou/LEDNet ``scripts/calculate_iqa_pair.py``, pyiqa): outputs saved by BasicSR's
  ``tensor2img`` (round half to even); both images are read with OpenCV and handed to pyiqa
  **without BGR->RGB conversion**. PSNR: RGB in [0, 1], ``10 log10(1 / (mse + 1e-8))``.
  SSIM (pyiqa default): Y of YIQ, ``0.299 c0 + 0.587 c1 + 0.114 c2`` on the channels in file order
  (so with ``bgr=true``, the default, 0.299 B + 0.587 G + 0.114 R), x255 and rounded; 11x11
  Gaussian, 'valid', range 255, population covariance, contrast-structure term clipped at 0.
  LPIPS: VGG16 on the BGR-ordered images. ``bgr=false`` measures on RGB as intended. pyiqa's SSIM
  ran in float32 in 2022 (v0.1.4) and float64 since late 2023; float64 here.
``infwide`` (zhihongz/INFWIDE ``srcs/metric/_metric.py``, scikit-image 0.17.2): the **unclipped**
  float output against the float GT: PSNR with ``data_range=1`` (difference and square in
  float32, mean in float64, as scikit-image does for float32), SSIM ``multichannel=True``,
  ``data_range=1``: per-channel 7x7 uniform, sample covariance. LPIPS (not reported by the paper):
  AlexNet on the clipped output.
``devudp`` (suiyizhao/FCL-GAN ``src/utils.py``, the code DEvUDP builds on): ``np.uint8(out *
  255)``: no clipping, truncation toward zero, and on x86 out-of-range values wrap modulo 256
  (-0.01 -> -2.55 -> -2 -> 254; emulated here, so results do not depend on the CPU); ``metrics.out_of_range``
  reports the fraction of values this affects. PSNR scikit-image uint8; SSIM
  ``structural_similarity(multichannel=True, gaussian_weights=True,
  use_sample_covariance=False)``: per-channel 11x11 Gaussian (sigma 1.5), population covariance,
  range 255. LPIPS (not reported): AlexNet.
``honest`` (lljax's own; no ground-truth information at test time): the output is clipped and
  rounded to uint8 as ``lljax.enhance`` saves it; PSNR on RGB (range 1) and Wang et al.'s SSIM
  (11x11 Gaussian, sigma 1.5, population covariance, mean over RGB) via dm-pix
  (``lljax.metrics.psnr/ssim``); LPIPS AlexNet. Always reported beside the paper's protocol.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import numpy as np

from lljax import config_lib
from lljax.utils.images import to_uint8

__all__ = ["PROTOCOLS", "PAPER_PROTOCOL", "Measurement", "Protocol", "get", "names"]


# ---------------------------------------------------------------------------------------------
# Conversions to 8 bits.


def truncate_u8(x):
  """``(clip(x, 0, 1) * 255).astype(uint8)`` in float32: the official LLFlow/UPT-Flow ``rgb()``.

  NaN -> 0, as that cast gives on x86 and ARM (made explicit so that no CPU differs).
  """
  x = np.nan_to_num(np.clip(np.asarray(x, np.float32), 0.0, 1.0), nan=0.0)
  return (x * np.float32(255.0)).astype(np.uint8)


def round_u8(x):
  """BasicSR ``tensor2img``: clip to [0, 1], x255, round half to even."""
  x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
  return np.round(x * np.float32(255.0)).astype(np.uint8)


def wrap_u8(x):
  """``np.uint8(x * 255)`` as x86 computes it: truncate toward zero, wrap modulo 256, NaN -> 0."""
  v = np.asarray(x, np.float32) * np.float32(255.0)
  v = np.nan_to_num(np.trunc(v), nan=0.0, posinf=0.0, neginf=0.0)
  return np.mod(np.clip(v, -2.0**31, 2.0**31 - 1).astype(np.int64), 256).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Colour conversions of the official code.


def opencv_rgb2gray_u8(rgb):
  """OpenCV ``cvtColor(rgb, COLOR_RGB2GRAY)`` on uint8: 15-bit fixed point, rounded."""
  rgb = np.asarray(rgb, np.int32)
  gray = rgb[..., 0] * 9798 + rgb[..., 1] * 19235 + rgb[..., 2] * 3735 + (1 << 14)
  return (gray >> 15).astype(np.uint8)


def opencv_bgr2gray_float(image):
  """OpenCV ``cvtColor(image.astype(float32), COLOR_BGR2GRAY)``: 0.114 c0 + 0.587 c1 + 0.299 c2.

  Applied to an RGB array (as LLFlow's test.py does), this weights R by 0.114 and B by 0.299.
  """
  x = np.asarray(image, np.float32)
  return x[..., 0] * np.float32(0.114) + x[..., 1] * np.float32(0.587) + x[..., 2] * np.float32(0.299)


def basicsr_y(rgb_u8):
  """BasicSR ``to_y_channel`` of an RGB uint8 image (BasicSR reads BGR): float32 Y in [16, 235]."""
  bgr = np.asarray(rgb_u8)[..., ::-1].astype(np.float32) / np.float32(255.0)
  y = np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0
  return (y / 255.0).astype(np.float32) * np.float32(255.0)


def pyiqa_y(image_u8):
  """pyiqa ``to_y_channel`` (YIQ) on channels in array order: round(255 * (.299 c0 + .587 c1 + .114 c2))."""
  x = np.asarray(image_u8).astype(np.float32) / np.float32(255.0)
  y = x[..., 0] * np.float32(0.299) + x[..., 1] * np.float32(0.587) + x[..., 2] * np.float32(0.114)
  return np.round(y * np.float32(255.0))


# ---------------------------------------------------------------------------------------------
# PSNR and SSIM (NumPy float64 references).


def psnr(a, b, data_range):
  """``10 log10(range^2 / mse)`` in float64, ``inf`` for identical images (scikit-image, BasicSR)."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


@functools.cache
def _taps(window, size):
  """1-D window taps (float64): 'uniform' of ``size`` or 'gaussian' sigma 1.5 with 11 taps."""
  if window == "uniform":
    return np.full(size, 1.0 / size)
  x = np.arange(11, dtype=np.float64) - 5.0
  taps = np.exp(-0.5 * (x / 1.5) ** 2)
  return taps / taps.sum()


def _filter_valid(x, taps, axes):
  """Correlates ``x`` with ``taps`` along each axis in ``axes``, keeping only full windows."""
  k = len(taps)
  for axis in axes:
    n = x.shape[axis] - k + 1
    window = lambda j, axis=axis, n=n: x[(slice(None),) * axis + (slice(j, j + n),)]
    out = taps[0] * window(0)
    for j in range(1, k):
      out += taps[j] * window(j)
    x = out
  return x


def ssim(a, b, *, data_range, window="uniform", size=7, axes=(0, 1), sample_covariance=True,
         nonneg_cs=False):
  """Mean SSIM over all valid window positions (and channels, if any).

  Args:
    a, b: arrays of the same shape; spatial axes ``axes`` (any further axis, e.g. channels, is
      averaged over, which equals scikit-image's per-channel mean).
    data_range: dynamic range (255 for uint8 images).
    window: "uniform" (``size`` taps per axis, scikit-image's default 7) or "gaussian" (11 taps,
      sigma 1.5).
    sample_covariance: scale (co)variances by N / (N - 1), N = taps ** len(axes) (scikit-image's
      default); False: population covariance (Wang et al., BasicSR, pyiqa).
    nonneg_cs: pyiqa's ``relu`` on the contrast-structure term.

  Returns:
    float. ``ValueError`` if the window does not fit.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
  taps = _taps(window, size)
  if min(a.shape[ax] for ax in axes) < len(taps):
    raise ValueError(f"SSIM window of {len(taps)} taps does not fit images of shape {a.shape}")
  f = lambda z: _filter_valid(z, taps, axes)
  ux, uy = f(a), f(b)
  uxx, uyy, uxy = f(a * a), f(b * b), f(a * b)
  n = len(taps) ** len(axes)
  cov_norm = n / (n - 1) if sample_covariance else 1.0
  vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  if nonneg_cs:
    cs = np.maximum((2 * vxy + c2) / (vx + vy + c2), 0.0)
    s = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1) * cs
  else:
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
  return float(np.mean(s))


def ssim_columnwise(a, b, data_range=255):
  """The legacy LLFlow "gray SSIM": scikit-image 0.18 ``structural_similarity(gray_a, gray_b,
  multichannel=True)`` on 2-D images = mean of the 1-D SSIMs of the columns (7 taps along H,
  sample covariance 7/6)."""
  return ssim(a, b, data_range=data_range, axes=(0,))


# ---------------------------------------------------------------------------------------------
# Protocols.


@dataclasses.dataclass
class Measurement:
  """metrics: name -> float; image: what was measured (uint8 or float32 ``[H, W, 3]``)."""

  metrics: dict[str, float]
  image: np.ndarray


@dataclasses.dataclass(frozen=True)
class Protocol:
  """A named recipe. ``measure(output, target, with_lpips=True) -> Measurement``."""

  name: str
  title: str
  lpips_net: str
  options: dict[str, Any]
  _prepare: Callable[..., tuple[np.ndarray, dict[str, float], tuple[np.ndarray, np.ndarray]]]

  def measure(self, output, target, with_lpips=True):
    output = np.asarray(output, np.float32)
    target = np.asarray(target)
    if target.dtype != np.uint8:
      raise TypeError(f"protocol {self.name}: target must be uint8, got {target.dtype}")
    if output.shape != target.shape or output.ndim != 3 or output.shape[-1] != 3:
      raise ValueError(f"protocol {self.name}: output {output.shape} and target {target.shape} "
                       "must both be [H, W, 3]")
    image, metrics, lpips_pair = self._prepare(output, target, **self.options)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    metrics["mae"] = float(np.mean(np.abs(image.astype(np.float64) / scale - target / 255.0)))
    if with_lpips:
      from lljax.metrics import lpips  # pylint: disable=import-outside-toplevel

      metrics["lpips"] = float(lpips.get(self.lpips_net)(*lpips_pair))
    return Measurement(metrics, image)

  @property
  def spec(self):
    """``name`` or ``name:key=value,...`` (options that differ from the defaults)."""
    defaults = _DEFAULTS[self.name]
    extra = [f"{k}={_format(v)}" for k, v in self.options.items() if defaults.get(k) != v]
    return self.name + (":" + ",".join(extra) if extra else "")


def _format(value):
  return str(value).lower() if isinstance(value, bool) else str(value)


def _u8_pair(a, b):
  return a.astype(np.float32) / np.float32(255.0), b.astype(np.float32) / np.float32(255.0)


def _llflow(output, target, **options):
  mean_gt = float(opencv_bgr2gray_float(target).mean(dtype=np.float32)) / 255.0
  mean_out = max(float(output.mean(dtype=np.float32)), 1e-8)
  scale = mean_gt / mean_out if options["gt_mean"] else 1.0
  image = truncate_u8(output * np.float32(scale))
  gray_out, gray_gt = opencv_rgb2gray_u8(image), opencv_rgb2gray_u8(target)
  metrics = {
      "psnr": psnr(image, target, 255),
      "ssim_column": ssim_columnwise(gray_out, gray_gt),
      "ssim_gray2d": ssim(gray_out, gray_gt, data_range=255),
      "ssim_rgb": ssim(image, target, data_range=255),
      "gt_mean_scale": scale,
  }
  metrics["ssim"] = metrics["ssim_column" if options["ssim"] == "column" else "ssim_gray2d"]
  return image, metrics, _u8_pair(image, target)


def _ssflow(output, target, **options):
  return _llflow(np.where(np.isnan(output), np.float32(1.0), output), target, **options)


def _uptflow(output, target):
  image = truncate_u8(output)
  metrics = {"psnr": psnr(image, target, 255), "ssim": ssim(image, target, data_range=255)}
  return image, metrics, _u8_pair(image, target)


def _basicsr(output, target, crop_border=0, y=True):
  image = round_u8(output)
  c = int(crop_border)
  crop = (lambda x: x[c:-c, c:-c]) if c else (lambda x: x)
  a, b = crop(image), crop(target)
  if y:
    a, b = basicsr_y(a), basicsr_y(b)
  metrics = {"psnr": psnr(a, b, 255),
             "ssim": ssim(a, b, data_range=255, window="gaussian", sample_covariance=False)}
  return image, metrics, _u8_pair(image, target)


def _lednet(output, target, bgr=True):
  image = round_u8(output)
  a, b = (image[..., ::-1], target[..., ::-1]) if bgr else (image, target)
  fa, fb = _u8_pair(a, b)
  mse = float(np.mean((fa.astype(np.float64) - fb) ** 2))
  metrics = {
      "psnr": float(10.0 * np.log10(1.0 / (mse + 1e-8))),
      "ssim": ssim(pyiqa_y(a), pyiqa_y(b), data_range=255, window="gaussian",
                   sample_covariance=False, nonneg_cs=True),
  }
  return image, metrics, (fa, fb)


def _infwide(output, target):
  gt = target.astype(np.float32) / np.float32(255.0)
  diff = output - gt
  mse = float(np.mean(diff * diff, dtype=np.float64))
  metrics = {
      "psnr": float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse)),
      "ssim": ssim(output, gt, data_range=1.0),
      "out_of_range": float(np.mean((output < 0) | (output > 1))),
  }
  return output, metrics, (np.clip(output, 0.0, 1.0), gt)


def _devudp(output, target):
  image = wrap_u8(output)
  metrics = {
      "psnr": psnr(image, target, 255),
      "ssim": ssim(image, target, data_range=255, window="gaussian", sample_covariance=False),
      "out_of_range": float(np.mean(image != truncate_u8(output))),
  }
  return image, metrics, (np.clip(output, 0.0, 1.0), target.astype(np.float32) / np.float32(255.0))


def _honest(output, target):
  from lljax import metrics as jm  # pylint: disable=import-outside-toplevel

  image = to_uint8(np.clip(output, 0.0, 1.0))
  a, b = _u8_pair(image, target)
  metrics = {"psnr": float(jm.psnr(a, b)), "ssim": float(jm.ssim(a, b))}
  return image, metrics, (a, b)


# name -> (title, LPIPS net, prepare, default options)
_TABLE = {
    "llflow": ("LLFlow: GT-mean, truncated uint8, gray SSIM (column-wise, skimage 0.18)", "alex", _llflow,
               {"ssim": "column", "gt_mean": True}),
    "ssflow": ("SSFlow: LLFlow's recipe, NaN -> 1 (GT-mean, truncated uint8, gray SSIM)", "alex", _ssflow,
               {"ssim": "column", "gt_mean": True}),
    "uptflow": ("UPT-Flow: truncated uint8, RGB 7x7 SSIM, no GT-mean", "alex", _uptflow, {}),
    "basicsr": ("BasicSR: Y channel, crop border, Gaussian SSIM", "alex", _basicsr,
                {"crop_border": 0, "y": True}),
    "lednet": ("LEDNet (pyiqa): RGB PSNR, Y SSIM, LPIPS-VGG on BGR-read images", "vgg", _lednet,
               {"bgr": True}),
    "infwide": ("INFWIDE: unclipped float output, skimage 7x7 SSIM", "alex", _infwide, {}),
    "devudp": ("DEvUDP/FCL-GAN: np.uint8 cast, Gaussian SSIM", "alex", _devudp, {}),
    "honest": ("honest: no GT information, rounded uint8, RGB Gaussian SSIM (dm-pix)", "alex", _honest, {}),
}
_DEFAULTS = {name: row[3] for name, row in _TABLE.items()}
_CHOICES = {("llflow", "ssim"): ("column", "gray2d"), ("ssflow", "ssim"): ("column", "gray2d")}

PROTOCOLS = tuple(_TABLE)
# The protocol of each model family's paper (families not listed use "honest" only).
PAPER_PROTOCOL = {"llflow": "llflow", "ssflow": "ssflow", "uptflow": "uptflow", "devudp": "devudp",
                  "infwide": "infwide", "lednet": "lednet"}


def names():
  return PROTOCOLS


def _parse_value(name, key, text, default):
  if isinstance(default, bool):
    return config_lib.parse_bool(text, f"protocol {name}: option {key}", ValueError)
  if isinstance(default, int):
    try:
      value = int(text)
    except ValueError:
      raise ValueError(f"protocol {name}: option {key} takes an integer, got {text!r}") from None
    if value < 0:
      raise ValueError(f"protocol {name}: option {key} must be >= 0, got {value}")
    return value
  choices = _CHOICES.get((name, key))
  if choices and text not in choices:
    raise ValueError(f"protocol {name}: option {key} is one of {', '.join(choices)}, got {text!r}")
  return text


def get(spec):
  """``"name"`` or ``"name:key=value,..."`` -> Protocol; ValueError naming what is allowed."""
  name, _, rest = str(spec).partition(":")
  if name not in _TABLE:
    raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
  title, net, prepare, defaults = _TABLE[name]
  options = dict(defaults)
  for token in filter(None, (t.strip() for t in rest.split(","))):
    key, eq, text = token.partition("=")
    if key not in defaults or not eq:
      allowed = ", ".join(f"{k}=..." for k in defaults) or "none"
      raise ValueError(f"protocol {name}: bad option {token!r}; options: {allowed}")
    options[key] = _parse_value(name, key, text, defaults[key])
  return Protocol(name, title, net, options, prepare)
