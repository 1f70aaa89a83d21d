"""Photos through models, one at a time on a worker thread, with a progress line per photo.

A ``Job`` holds one decoded upload and its settings; the ``Worker`` runs jobs in order with
``Restorer.enhance_image`` — whole photos padded only to the model's multiple (exactly
``Restorer.enhance``), larger ones than the model's limit in the same tiles as ``python -m
lljax.enhance`` — and keeps the last ``keep`` jobs' results in memory. Nothing is written to disk.
Its ``Restorer.progress`` hook turns program runs into the stage the page shows ("compiling the
model for 600x400", "tile 3/12"), so a first call's compilation is visible, not a frozen page.
"""

import collections
import itertools
import queue
import sys
import threading
import time
import traceback

import numpy as np
from PIL import Image

from lljax import enhance
from lljax.demo.catalog import one_line
from lljax.utils.images import encode_png, to_float01, to_uint8

PREVIEW_SIDE = 2048  # the before/after pictures are at most this large; downloads are full size


class Job:
  """One photo and its settings.

  Attributes:
    id: str. entry: the catalog Entry. name: the upload's file name.
    rgb: uint8/uint16 [H, W, 3] until the job has run; info: ``decode_image``'s info (mode, bit
      depth, alpha). height, width: the photo's size.
    kernel: float32 (kh, kw) or None. options: extra ``enhance_image`` keyword arguments.
    state: "queued", "running", "done" or "error"; stage: what is happening now (one line).
    seconds: time in the model; compiled: whether that included compiling a new shape.
    result: {"png", "before", "after"} PNG bytes once done. error: one line, or None.
  """

  def __init__(self, job_id, entry, name, rgb, info, kernel=None, options=None):
    self.id, self.entry, self.name = job_id, entry, name
    self.rgb, self.info, self.kernel, self.options = rgb, info, kernel, dict(options or {})
    self.height, self.width = rgb.shape[:2]
    self.state, self.stage, self.error = "queued", "waiting for the photos before it", None
    self.created, self.started, self.finished = time.monotonic(), None, None
    self.seconds, self.compiled, self.result = None, False, None

  def status(self, ahead=0):
    """The page's view of the job (JSON-ready); ``ahead``: jobs still to run before it."""
    now = self.finished or time.monotonic()
    out = {"id": self.id, "name": self.name, "model": self.entry.index, "state": self.state,
           "stage": self.stage, "error": self.error, "width": self.width, "height": self.height,
           "bit_depth": self.info["bit_depth"], "elapsed": round(now - (self.started or self.created), 3),
           "ahead": ahead}
    if self.state == "done":
      out.update(seconds=round(self.seconds, 3), compiled=self.compiled,
                 result=f"api/jobs/{self.id}/result.png", before=f"api/jobs/{self.id}/before.png",
                 after=f"api/jobs/{self.id}/after.png")
    return out


def _preview(image_u8):
  """uint8 [H, W, 3] -> PNG bytes, downscaled to at most PREVIEW_SIDE pixels on the long side."""
  picture = Image.fromarray(image_u8)
  picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
  return encode_png(np.asarray(picture))


def encode_result(enhanced, rgb, info):
  """{"png": the download, "before"/"after": the slider's pictures}.

  The download is full size and keeps the input's bit depth, grayscale and alpha (as
  ``python -m lljax.enhance`` writes it); the pictures are 8-bit RGB.
  """
  full = enhance.to_output(enhanced, info, info["bit_depth"])
  return {"png": encode_png(full), "before": _preview(to_uint8(to_float01(rgb))),
          "after": _preview(to_uint8(enhanced))}


class Worker:
  """Runs submitted jobs one at a time (the model uses the whole CPU or accelerator)."""

  def __init__(self, max_megapixels=None, keep=16):
    self.max_megapixels, self.keep = max_megapixels, keep
    self._queue = queue.Queue()
    self._jobs = collections.OrderedDict()
    self._ids = itertools.count(1)
    self._lock = threading.Lock()
    self._thread = threading.Thread(target=self._loop, name="lljax-demo-worker", daemon=True)
    self._thread.start()

  def new_id(self):
    return str(next(self._ids))

  def submit(self, job):
    """Queues ``job``; the oldest finished jobs beyond ``keep`` are forgotten."""
    with self._lock:
      self._jobs[job.id] = job
      finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
      for old in finished[:max(0, len(self._jobs) - self.keep)]:
        del self._jobs[old.id]
    self._queue.put(job)
    return job

  def get(self, job_id):
    with self._lock:
      return self._jobs.get(job_id)

  def ahead(self, job):
    """How many jobs run before ``job`` (0 once it runs)."""
    with self._lock:
      if job.state != "queued":
        return 0
      return sum(1 for j in self._jobs.values() if j.state in ("queued", "running") and j.created < job.created)

  def close(self, timeout=5.0):
    """Stops after the running job (waits at most ``timeout`` s; a photo still in the model is abandoned)."""
    self._queue.put(None)
    self._thread.join(timeout)

  def _loop(self):
    while (job := self._queue.get()) is not None:
      self._run(job)

  def _run(self, job):
    job.state, job.started, job.stage = "running", time.monotonic(), "loading the model"
    restorer = None
    try:
      restorer = job.entry.restorer()
      restorer.progress = lambda *event: self._on_program(job, *event)
      start = time.monotonic()
      enhanced = restorer.enhance_image(
          to_float01(job.rgb), job.kernel, max_pixels=enhance.max_pixels(restorer.family, self.max_megapixels),
          tile=enhance.TILE, overlap=enhance.OVERLAP, **job.options)
      job.seconds = time.monotonic() - start
      job.stage = "encoding the PNG"
      job.result = encode_result(enhanced, job.rgb, job.info)
      job.state, job.stage = "done", "done"
    except Exception as e:  # pylint: disable=broad-except  # every failure is shown on the page
      if not isinstance(e, (ValueError, OSError)):
        traceback.print_exc(file=sys.stderr)
      job.state, job.error = "error", one_line(f"{job.name}: {e}")
    finally:
      job.finished, job.rgb = time.monotonic(), None  # the result is all that is kept
      if restorer is not None:
        restorer.progress = None

  @staticmethod
  def _on_program(job, program, shape, compiling, tile, tiles):
    """``Restorer.progress``: the stage line before each program run."""
    size = f"{shape[2]}x{shape[1]}"
    what = "the colour prior of the whole photo" if program == "prior" else (
        f"tile {tile}/{tiles}" if tiles > 1 else "the photo")
    job.compiled |= compiling
    job.stage = (f"compiling the model for {size} (once per size), then running {what}" if compiling
                 else f"running {what}")
