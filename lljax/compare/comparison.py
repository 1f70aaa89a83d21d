"""``compare``: every model on one photo, in Python: checks the photo, target and kernel, runs the
models (``lljax.compare.models``) and draws their panels (``lljax.compare.sheet``) into a
``Comparison``.
"""

from typing import NamedTuple

import numpy as np

from lljax.compare.models import _run_one, load_models
from lljax.compare.sheet import PANEL_WIDTH, _seconds_text, label_lines, render_sheet, thumbnail
from lljax.enhance import UsageError, max_pixels


class Comparison(NamedTuple):
  """``sheet``: uint8 [H, W, 3]; ``rows``: one dict per model (see ``compare``); ``panels``:
  input, target (when given), then one ``Panel`` per model in the order of ``rows``."""

  sheet: np.ndarray
  rows: list
  panels: list


def _as_float_image(image, name):
  """uint8/uint16/float HWC (or gray HW) -> float32 HWC RGB in [0, 1]."""
  from lljax.utils.images import to_float01  # pylint: disable=import-outside-toplevel

  x = np.asarray(image)
  x = to_float01(x) if x.dtype in (np.uint8, np.uint16) else x.astype(np.float32)
  if x.ndim == 2:
    x = np.repeat(x[..., None], 3, axis=-1)
  if x.ndim != 3 or x.shape[-1] != 3:
    raise UsageError(f"the {name} must be an HxWx3 RGB image, got shape {x.shape}")
  return x


def _check_inputs(image, target, exposure):
  """(float image, uint8 target or None); UsageError for a target of another size or a bad exposure."""
  from lljax.imaging.exposure import target_of  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  try:
    target_of(exposure)
  except ValueError as e:
    raise UsageError(f"--exposure: {e}") from None
  image = _as_float_image(image, "photo")
  if target is not None:
    target = to_uint8(_as_float_image(target, "target"))
    if target.shape != image.shape:
      raise UsageError(f"the target is {target.shape[1]}x{target.shape[0]} pixels and the photo "
                       f"{image.shape[1]}x{image.shape[0]}: a ground truth must have the photo's size")
  return image, target


def _check_kernel(kernel, loaded):
  """UsageError when a deblurring model has no (valid) kernel."""
  from lljax.utils.kernels import check_kernel  # pylint: disable=import-outside-toplevel

  for directory, (restorer, _) in loaded:
    if not restorer.needs_kernel:
      continue
    if kernel is None:
      raise UsageError(f"--models {directory}: {restorer.model_name} is a non-blind deblurring model and needs "
                       "the photo's blur kernel (--kernel FILE, or photo_kernel.png/.npy next to the photo)")
    try:
      check_kernel(kernel, restorer.family.KERNEL_SIZE, "--kernel")
    except ValueError as e:
      raise UsageError(str(e)) from None


def _cells(image, target, rows, outputs, panel_width, image_name, target_name):
  """``render_sheet``'s cells: input, target (if any), then each model's output or failure."""
  h, w = image.shape[:2]
  named = lambda what, name: f"{what}: {name}" if name else what
  cells = [("input", thumbnail(image, panel_width), [named("input", image_name), f"{w}x{h} pixels"], False)]
  if target is not None:
    cells.append(("target", thumbnail(target, panel_width), [named("target", target_name), "ground truth"], False))
  for row, output in zip(rows, outputs):
    failed = output is None
    cells.append((row["label"], None if failed else thumbnail(output, panel_width), label_lines(row), failed))
  return cells


def compare(model_dirs, image, target=None, kernel=None, *, panel_width=PANEL_WIDTH, columns=None,
            precision="highest", max_megapixels=None, warm=False, lpips=False, image_name=None,
            target_name=None, log=None, **enhance_options):
  """Runs every model on one photo and draws the labelled contact sheet.

  Args:
    model_dirs: model directories (converted releases or training workdirs), in panel order.
    image: the photo, HWC (or HW gray) float in [0, 1], uint8 or uint16.
    target: optional ground truth of the same size (uint8, uint16 or float in [0, 1]): adds its
      panel and each model's PSNR/SSIM under its paper's protocol and ``honest``.
    kernel: the photo's (kh, kw) blur kernel, for non-blind deblurring models (ignored by others).
    panel_width: panel width on the sheet in pixels (the models run at full resolution).
    columns: grid columns (default: at most MAX_COLUMNS, rows as even as possible).
    precision: of every model (``lljax.load``). max_megapixels: tile above this (default: each
      model's own, as ``lljax.enhance``). warm: run each model a second time and report that time.
    lpips: add LPIPS to the metrics (loads the LPIPS network). image_name, target_name: shown in
      those panels' labels. log: optional ``callable(str)`` told about progress.
    **enhance_options: passed to ``Restorer.enhance_image`` (tile, overlap, exposure,
      self_ensemble, bucket, ...).

  Returns:
    ``Comparison(sheet, rows, panels)``: ``sheet`` uint8 [H, W, 3]; ``rows`` one dict per model:
    ``directory``, ``model``, ``label``, ``load_seconds``, ``seconds`` (the first run, which
    includes XLA compilation when ``includes_compilation``), ``seconds_warm`` (None unless
    ``warm``), ``paper_protocol``, ``metrics`` ({protocol spec: {"psnr", "ssim", ...}} or None
    without a target) and ``error`` (None, or why the model failed: its panel is grey).

  Raises:
    UsageError: no models, a directory that is not a model, a target of another size, a
      deblurring model without a kernel, a bad ``exposure``; nothing has run then.
  """
  log = log or (lambda text: None)
  model_dirs = list(model_dirs)
  image, target = _check_inputs(image, target, enhance_options.get("exposure"))
  loaded = list(zip(model_dirs, load_models(model_dirs, precision)))
  _check_kernel(kernel, loaded)
  rows, outputs = [], []
  for i, (directory, (restorer, load_seconds)) in enumerate(loaded, start=1):
    options = {"max_pixels": max_pixels(restorer.family, max_megapixels), **enhance_options, "clip": False}
    row, output = _run_one(directory, restorer, load_seconds, image, target, kernel, options, warm, lpips)
    log(f"{i}/{len(loaded)} {row['label']}: " + (f"failed: {row['error']}" if row["error"] else _seconds_text(row)))
    rows.append(row)
    outputs.append(output)
  cells = _cells(image, target, rows, outputs, panel_width, image_name, target_name)
  sheet, panels = render_sheet(cells, panel_width, columns)
  return Comparison(sheet, rows, panels)
