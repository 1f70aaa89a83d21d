"""Host preprocessing of exported artefacts: photos -> the artefact's inputs, output -> photos.

An artefact (``python -m lljax.export``) takes model-ready inputs; ``PATH.report.json`` holds its
``signature``, and with it::

  feeds, crop = prepare(report["signature"], images, kernels)   # numpy, by input name
  out = finish(run_artefact(feeds), crop)                          # (B, H, W, 3) in [0, 1]

``prepare`` does what ``lljax.load(DIR).enhance`` does before its compiled program:

1. images (HWC or NHWC; uint8, uint16 or float in [0, 1]) become float32 NHWC in [0, 1];
2. host features on the unpadded image: LLFlow's ``histeq`` is OpenCV's ``equalizeHist`` of
   each channel of the uint8 image (``floor(x * 255 + 0.5)``), divided by 255;
3. image and features are reflect-padded at the bottom/right (edge-padded for 1-pixel sides)
   to the signature's height and width: a multiple of ``pad_multiple`` for symbolic sizes, the
   fixed ``size`` otherwise (an image larger than it is an error);
4. INFWIDE: each blur kernel (non-negative, any size up to ``kernel_size``) is normalised to
   unit sum and zero-padded around its centre pixel ``(kh // 2, kw // 2)`` to
   ``kernel_size x kernel_size``. INFWIDE's Wiener stage pads the image by the kernel's size, so
   a padded kernel gives the artefact's result for that size, which differs near the borders from
   ``enhance`` with the unpadded kernel;
5. a fixed batch is filled by repeating the last image (``finish`` drops the copies).

``finish`` crops the output back to the images' size and batch and clips it to [0, 1].
"""

import numpy as np

from lljax import inference, models, tiling
from lljax.api import _as_images  # the API's own checks (NHWC RGB, finite, [0, 1])
from lljax.utils.images import to_float01
from lljax.utils.kernels import check_kernels


def _as_batch(images):
  x = np.asarray(images)
  return _as_images(to_float01(x) if x.dtype in (np.uint8, np.uint16) else x)


def _target_size(signature, h, w):
  size = signature.get("size")
  if size is None:
    m = signature["pad_multiple"]
    return tiling.round_up(h, m), tiling.round_up(w, m)
  if h > size[0] or w > size[1]:
    raise ValueError(f"a {h}x{w} image does not fit this artefact's fixed {size[0]}x{size[1]} input; "
                     "export with a larger --shape, or without --shape where the model allows symbolic sizes")
  return tuple(size)


def _pad_kernels(kernels, batch, size):
  k = check_kernels(kernels, batch, size)
  out = np.zeros((batch, size, size), np.float32)
  top, left = size // 2 - k.shape[1] // 2, size // 2 - k.shape[2] // 2
  out[:, top:top + k.shape[1], left:left + k.shape[2]] = k
  return out


def prepare(signature, images, kernels=None):
  """Photos -> ({input name: float32 array}, crop) for an artefact with ``signature``.

  Args:
    signature: the ``signature`` of the artefact's report.
    images: (B, H, W, 3) or (H, W, 3), uint8/uint16 or float in [0, 1].
    kernels: deblurring artefacts (a "kernel" input) only: (kh, kw) for every image or
      (B, kh, kw), non-negative.

  Returns:
    (feeds, crop): feeds in the artefact's input order; crop = (B, H, W) for ``finish``.
  """
  family = models.get(signature["model"])
  low = _as_batch(images)
  b, h, w = low.shape[:3]
  names = [i["name"] for i in signature["inputs"]]
  if ("kernel" in names) != (kernels is not None):
    raise ValueError(f"{signature['model']}: " + ("pass a blur kernel per image" if kernels is None
                                                   else "this artefact takes no blur kernel"))
  hp, wp = _target_size(signature, h, w)
  arrays = inference.model_inputs(family, low)
  feeds = {k: np.stack([tiling.pad_reflect(im, hp, wp) for im in v]) for k, v in arrays.items()}
  if kernels is not None:
    feeds["kernel"] = _pad_kernels(kernels, b, signature["kernel_size"])
  batch = signature["inputs"][0]["shape"][0]
  if isinstance(batch, int):
    if b > batch:
      raise ValueError(f"{b} images for an artefact with a fixed batch of {batch}; run them in groups")
    feeds = {k: np.concatenate([v, np.repeat(v[-1:], batch - b, axis=0)]) for k, v in feeds.items()}
  return {n: np.ascontiguousarray(feeds[n], np.float32) for n in names}, (b, h, w)


def finish(output, crop, clip=True):
  """The artefact's output (B', H', W', 3) -> (B, H, W, 3) of the photos, clipped to [0, 1]."""
  b, h, w = crop
  out = np.asarray(output, np.float32)[:b, :h, :w]
  return np.clip(out, 0.0, 1.0) if clip else out
