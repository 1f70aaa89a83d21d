"""Pixel losses of supervised restoration models (NHWC float images), and INFWIDE's objective.

``tv`` is INFWIDE's (KAIR-style) squared total variation: 2 * (sum of squared vertical
differences / (C (H-1) W) + sum of squared horizontal differences / (C H (W-1))) / B.
``ssim`` is pytorch_msssim's (11x11 Gaussian, sigma 1.5, data range 1, 'valid' filtering, mean
over positions, channels and batch) = ``lljax.metrics.ssim`` averaged over the batch.
"""

import jax.numpy as jnp

from lljax.metrics import ssim as ssim_per_image
from lljax.nn import resize_bilinear
from lljax.nn.fft import circular_conv


def l1(x, y):
  return jnp.mean(jnp.abs(x - y))


def mse(x, y):
  return jnp.mean((x - y) ** 2)


def tv(x):
  """Squared total variation of x (B, H, W, C) (the official ``TVLoss``, weight 1)."""
  b, h, w, c = x.shape
  dh = jnp.sum((x[:, 1:] - x[:, :-1]) ** 2) / (c * (h - 1) * w)
  dw = jnp.sum((x[:, :, 1:] - x[:, :, :-1]) ** 2) / (c * h * (w - 1))
  return 2.0 * (dh + dw) / b


def ssim(x, y):
  return jnp.mean(ssim_per_image(x, y))


def weighted(x, y, weights):
  """sum_k weights[k] * term_k(x, y) over "l1", "mse", "ssim" (as 1 - SSIM) and "tv" (of x)."""
  terms = {"l1": lambda: l1(x, y), "mse": lambda: mse(x, y), "ssim": lambda: 1.0 - ssim(x, y),
           "tv": lambda: tv(x)}
  unknown = set(weights) - set(terms)
  if unknown:
    raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {sorted(terms)}")
  return sum(w * terms[k]() for k, w in weights.items() if w)


# INFWIDE (conf/network/infwide.yaml and the trainer): weights of each part and of their terms.
INFWIDE_WEIGHTS = dict(
    main=1.0, main_terms=dict(l1=0.4, mse=0.2, ssim=0.2, tv=0.2),
    denoise=0.5, denoise_terms=dict(l1=0.5, mse=0.3, tv=0.2),
    forward=0.5,
)


def infwide_loss(outputs, batch, weights=None):
  """INFWIDE's training objective; returns (total, {part: value}).

  Args:
    outputs: the model's {"half", "full", "denoised"} (NHWC).
    batch: {"normal": sharp target (B, H, W, 3), "kernel": (B, kh, kw), "clean_blurry": the
      target blurred by the kernel before noise and saturation}.
    weights: overrides of ``INFWIDE_WEIGHTS``.

  Total = main(half vs bilinearly downscaled target) + main(full vs target) (each weighted
  ``main``) + ``denoise`` * terms(denoised vs clean_blurry) + ``forward`` * L1(circular re-blur
  of the full output by the kernel, clean_blurry).
  """
  w = {**INFWIDE_WEIGHTS, **(weights or {})}
  target = batch["normal"]
  half_target = resize_bilinear(target, outputs["half"].shape[1:3])
  parts = {
      "main_half": weighted(outputs["half"], half_target, w["main_terms"]),
      "main_full": weighted(outputs["full"], target, w["main_terms"]),
      "denoise": weighted(outputs["denoised"], batch["clean_blurry"], w["denoise_terms"]),
      "forward": l1(circular_conv(outputs["full"], batch["kernel"]), batch["clean_blurry"]),
  }
  total = (w["main"] * (parts["main_half"] + parts["main_full"]) + w["denoise"] * parts["denoise"]
           + w["forward"] * parts["forward"])
  return total, parts
