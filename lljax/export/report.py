"""The parity report of an artefact: its output against lljax's on sample photos.

Samples are two embedded photos (``lljax.imaging.photos``: chelsea and coffee, resized and
darkened to a quarter of their brightness) at two sizes; for INFWIDE each is blurred with a
sample motion kernel (``lljax.imaging.motion``, seed 0) that the artefact also gets. Both sides
receive the same host-prepared inputs (``lljax.export.host.prepare``); lljax runs its own jitted
enhance program, the artefact runs in its target runtime. Differences are taken on the raw
(unclipped) outputs over the photo's pixels: ``max_abs_diff`` = max |artefact - lljax| and
``max_rel_diff`` = max_abs_diff / max |lljax|.
"""

import numpy as np
from PIL import Image

from lljax import inference
from lljax.export import host
from lljax.imaging import motion, photos

PHOTOS = ("chelsea", "coffee")
DEFAULT_SIZES = ((64, 96), (45, 70))  # the second is not a multiple of 8: host padding is exercised
SAMPLE_KERNEL_SIZE = 15


def sample_sizes(signature):
  """Two photo sizes: the defaults for symbolic sizes; for a fixed size, it and a smaller one."""
  size = signature.get("size")
  if size is None:
    return DEFAULT_SIZES
  h, w = size
  return (h, w), (max(1, h - h // 4 - 1), max(1, w - w // 4 - 1))


def sample_photo(name, h, w):
  """An embedded photo resized to h x w and darkened: float32 (h, w, 3) in [0, 1]."""
  image = Image.fromarray(photos.load_photo(name)).resize((w, h), Image.BILINEAR)
  return np.asarray(image, np.float32) / np.float32(255.0) * np.float32(0.25)


def samples(signature):
  """[(label, images (1, H, W, 3), kernel or None)] for an artefact's signature."""
  kernel = None
  if any(i["name"] == "kernel" for i in signature["inputs"]):
    kernel, _ = motion.motion_kernel(np.random.default_rng(0), min(SAMPLE_KERNEL_SIZE, signature["kernel_size"]))
  out = []
  for name, (h, w) in zip(PHOTOS, sample_sizes(signature)):
    image = sample_photo(name, h, w)
    if kernel is not None and min(h, w) >= kernel.shape[0]:
      image = np.clip(motion.blur_circular(image, kernel), 0.0, 1.0).astype(np.float32)
    out.append((f"{name} {h}x{w}", image[None], kernel))
  return out


def reference(program):
  """lljax's jitted enhance program of ``program``'s model (feeds by name -> raw output)."""
  progs = inference.programs(program.model, program.config)
  return lambda feeds: np.asarray(progs.enhance(program.params, dict(feeds), np.float32(0.0), None))


def parity(signature, run_artefact, run_lljax):
  """[{"sample", "max_abs_diff", "max_rel_diff"}] of the artefact against lljax."""
  rows = []
  for label, images, kernel in samples(signature):
    feeds, crop = host.prepare(signature, images, kernel)
    got = host.finish(run_artefact(feeds), crop, clip=False)
    want = host.finish(run_lljax(feeds), crop, clip=False)
    if got.shape != want.shape:
      raise ValueError(f"{label}: the artefact returned {got.shape}, lljax {want.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
    rows.append({"sample": label, "max_abs_diff": diff,
                 "max_rel_diff": diff / max(float(np.max(np.abs(want))), 1e-12)})
  return rows
