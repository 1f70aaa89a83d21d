"""Metric logging to TensorBoard event files and a JSON-lines file.

``MetricWriter`` writes every scalar twice:

* to a TensorBoard event file under ``workdir/tensorboard`` (via tensorboardX;
  TensorFlow is not needed), for interactive plots;
* to ``workdir/metrics.jsonl``, one JSON object per ``write_scalars`` call,
  ``{"step": 120, "time": 1712345678.9, "loss": -3.21, ...}``, for scripts
  and tests. Non-finite floats are written as the strings ``"nan"``,
  ``"inf"`` and ``"-inf"`` so that every line is standard JSON;
  ``read_jsonl`` turns them back into floats.

Images and text go to TensorBoard only. In multi-process (multi-host) runs,
construct the writer with ``enabled=(jax.process_index() == 0)``: a disabled
writer creates no files and every method is a no-op.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import time
from typing import Any, Mapping

import numpy as np

__all__ = ["MetricWriter", "read_jsonl"]

JSONL_NAME = "metrics.jsonl"
TENSORBOARD_SUBDIR = "tensorboard"
_RESERVED_KEYS = ("step", "time")
_NONFINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_writer_ids = itertools.count()


def _to_json_number(value: Any) -> int | float | str:
  """Python number for JSON: ints stay ints, non-finite floats become strings."""
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  if isinstance(value, numbers.Integral):
    return int(value)
  array = np.asarray(value)  # also blocks on (and fetches) JAX arrays
  if array.size != 1:
    raise ValueError(f"scalar expected, got an array of shape {array.shape}")
  if np.issubdtype(array.dtype, np.integer):
    return int(array.reshape(()))
  number = float(array.reshape(()))
  if math.isfinite(number):
    return number
  return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


class MetricWriter:
  """Writes scalars, images and text for one training run.

  Files written (when enabled):
    ``workdir/metrics.jsonl``: appended to (a resumed run keeps earlier lines;
      steps may then repeat), flushed after every ``write_scalars`` call.
    ``workdir/tensorboard/events.out.tfevents.*``: a new file per writer.

  Usable as a context manager; ``close`` is idempotent.

  Args:
    workdir: Run directory; created if missing.
    enabled: If False, nothing is created or written (non-zero processes).
  """

  def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True):
    self.workdir = os.fspath(workdir)
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    # Imported lazily so that disabled writers never touch tensorboardX.
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

    os.makedirs(self.workdir, exist_ok=True)
    self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
    # tensorboardX names event files by whole seconds and hostname and opens
    # them with "wb", so a second writer (a restart, another writer in the
    # same process) within the same second would truncate the first file.
    suffix = f".{os.getpid()}.{next(_writer_ids)}"
    self._tb = SummaryWriter(logdir=self.tensorboard_dir, filename_suffix=suffix)

  @property
  def jsonl_path(self) -> str:
    return os.path.join(self.workdir, JSONL_NAME)

  @property
  def tensorboard_dir(self) -> str:
    return os.path.join(self.workdir, TENSORBOARD_SUBDIR)

  def _active(self) -> bool:
    if self.enabled and self._tb is None:
      raise RuntimeError("MetricWriter is closed")
    return self.enabled

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Logs scalars for one step.

    Args:
      step: Global training step.
      scalars: Name -> number (Python/NumPy number or a size-1 JAX/NumPy
        array; JAX arrays are fetched from the device). Names ``step`` and
        ``time`` are reserved for the JSONL record.
    """
    if not self._active():
      return
    step = int(step)
    values = {}
    for name, value in scalars.items():
      if name in _RESERVED_KEYS:
        raise ValueError(f"scalar name {name!r} is reserved in {JSONL_NAME}")
      values[name] = _to_json_number(value)
    record = {"step": step, "time": time.time(), **values}
    self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
    self._jsonl.flush()
    for name, value in values.items():
      number = _NONFINITE_NAMES[value] if isinstance(value, str) else value
      self._tb.add_scalar(name, number, global_step=step)

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    """Logs images to TensorBoard.

    Args:
      step: Global training step.
      images: Name -> uint8 array, ``[H, W, 3]`` (RGB) or ``[H, W]`` (gray).
    """
    if not self._active():
      return
    for name, image in images.items():
      image = np.asarray(image)
      if image.dtype != np.uint8 or not (
          image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(
            f"image {name!r}: expected uint8 HxWx3 or HxW, got {image.dtype}"
            f" {image.shape}; see lljax.utils.images.to_uint8")
      dataformats = "HW" if image.ndim == 2 else "HWC"
      self._tb.add_image(name, image, global_step=int(step), dataformats=dataformats)

  def write_text(self, step: int, texts: Mapping[str, str]) -> None:
    """Logs text (rendered as Markdown by TensorBoard).

    Args:
      step: Global training step.
      texts: Name -> text.
    """
    if not self._active():
      return
    for name, text in texts.items():
      self._tb.add_text(name, str(text), global_step=int(step))

  def flush(self) -> None:
    """Forces pending TensorBoard events to disk (the JSONL file always is)."""
    if self._tb is not None:
      self._jsonl.flush()
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes both files. Safe to call more than once."""
    if self._tb is None:
      return
    self._tb.close()
    self._jsonl.close()
    self._tb = None
    self._jsonl = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """Reads a ``metrics.jsonl`` file written by ``MetricWriter``.

  The strings ``"nan"``, ``"inf"`` and ``"-inf"`` are turned back into floats.
  An unparsable *last* line without a trailing newline (a write cut short by a
  crash) is skipped; any other unparsable line raises.

  Args:
    path: The JSONL file.

  Returns:
    One dict per record, in file order.

  Raises:
    ValueError: On a malformed line, naming the file and line number.
  """
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  # After splitting, a complete file ends with "" (its final newline).
  records = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      if number == len(lines):
        break  # unterminated last line: an interrupted write
      raise ValueError(f"{os.fspath(path)}:{number}: invalid JSON ({e})") from e
    records.append({
        k: _NONFINITE_NAMES.get(v, v) if isinstance(v, str) else v
        for k, v in record.items()
    })
  return records
