"""``enhance_video``: a clip (a video file or an image sequence) enhanced frame by frame with its
global context and exposure gain smoothed over time, streamed from ``lljax.video.io``'s reader into
its writer; the output checks and the ``<name>.partial<ext>`` kept after a read error.
"""

import dataclasses
import fractions
import os
import pathlib
import time

import numpy as np

from lljax.video.io import (_MUXERS, QUALITIES, VIDEO_EXTENSIONS, VideoReadError, VideoWriter, is_video_file,
                            open_source)
from lljax.video.temporal import CutDetector, apply_gain, exposure_gain, smooth

DEFAULT_WINDOW = 9
DEFAULT_BATCH = 4


@dataclasses.dataclass
class VideoResult:
  """What ``enhance_video`` wrote: ``output`` (None if nothing), frames, size, rate, the frames that
  start a new shot (``cuts``, frame 0 left out), the output's flicker (``lljax.metrics.temporal``)
  and the wall time."""

  source: str
  output: pathlib.Path | None
  frames: int
  width: int
  height: int
  fps: fractions.Fraction
  cuts: list
  flicker: dict
  seconds: float


def _guarded(frames, failure):
  """``frames`` until it ends or raises VideoReadError (kept in ``failure``)."""
  try:
    yield from frames
  except VideoReadError as e:
    failure.append(e)


def _with_context(restorer, frames, detector, window, kernel, pixels):
  """uint8/uint16 frames -> (float frame, its global context or None, starts a shot); the context
  is computed on the frame box-downscaled to at most ``pixels`` (None: whole)."""
  from lljax.utils.images import to_float01  # pylint: disable=import-outside-toplevel

  for frame in frames:
    x = to_float01(frame)
    new_shot = detector.update(x)
    context = restorer.global_context(x, kernel=kernel, pixels=pixels) if window > 1 else None
    yield x, context, new_shot


def _enhanced(restorer, stream, batch, kernel, options):
  """(frame, context, new shot) -> (enhanced HWC float32 [0, 1], new shot), ``batch`` frames per
  model call where frames are whole (not tiled) and carry no context, else one by one."""
  group = []

  def run(group):
    frames = [g[0] for g in group]
    h, w = frames[0].shape[:2]
    whole = options["max_pixels"] is None or h * w <= options["max_pixels"]
    if len(group) > 1 and whole and all(g[1] is None for g in group):
      outs = restorer.enhance(np.stack(frames), kernel, temperature=options["temperature"], seed=options["seed"])
    else:
      outs = [restorer.enhance_image(x, kernel, **options, **({} if c is None else {"context": c})) for x, c, _ in group]
    return [(out, g[2]) for out, g in zip(outs, group)]

  for item in stream:
    group.append(item)
    if len(group) >= batch:
      yield from run(group)
      group = []
  if group:
    yield from run(group)


def _exposed(stream, target, window):
  """(enhanced frame, new shot) -> the same with one exposure gain per frame, its log smoothed
  over the window and shot (``smooth``); target None passes frames through."""
  if target is None:
    yield from stream
    return
  gains = ((out, np.log(exposure_gain(out, target)), new_shot) for out, new_shot in stream)
  for out, log_gain, new_shot in smooth(gains, window):
    yield apply_gain(out, np.exp(log_gain)), new_shot


def _same_file(a, b):
  a, b = pathlib.Path(a), pathlib.Path(b)
  try:
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
  except OSError:
    return False


def _check_output(output, source, protect, overwrite):
  """The output path, checked: a video extension, not an input, not existing unless ``overwrite``."""
  output = pathlib.Path(output)
  if output.suffix.lower() not in VIDEO_EXTENSIONS:
    raise ValueError(f"{output}: the output must be a video file ({', '.join(VIDEO_EXTENSIONS)})")
  inputs = [source] if isinstance(source, (str, os.PathLike)) else list(source)
  for path in [*inputs, *protect]:
    if _same_file(path, output):
      raise ValueError(f"refusing to overwrite the input {path} with the output")
  if output.exists() and not overwrite:
    raise FileExistsError(f"{output} exists (overwrite=True / --overwrite to replace it)")
  return output


def enhance_video(restorer, source, output, *, kernel=None, fps=None, window=DEFAULT_WINDOW, batch=DEFAULT_BATCH,
                  quality="high", max_pixels=None, tile=512, overlap=128, prior_pixels=None, temperature=0.0,
                  seed=0, exposure=None, overwrite=False, progress=None, cut_detector=None, protect=()):
  """Enhances a clip frame by frame with temporally smoothed global quantities (see the
  ``lljax.video`` docstring).

  Args:
    restorer: a ``lljax.api.Restorer``.
    source: a .mp4/.mov/.avi/.mkv file, a folder of frames, a glob, or a list of frame paths.
    output: the video file to write; its extension (.mp4/.mov/.avi/.mkv) picks the container.
    kernel: deblurring models (INFWIDE): the (kh, kw) blur kernel of the whole clip.
    fps: frame rate of image sequences (default 25); videos keep their own.
    window: frames the global context (and exposure gain) is averaged over, centred, within a
      shot; 1: frame by frame (each frame's own context, batched model calls).
    batch: frames per model call where frames are whole and carry no context.
    quality: "high" (H.264 CRF 14) or "lossless" (bit-exact RGB).
    max_pixels, tile, overlap, prior_pixels, temperature, seed, exposure: as
      ``Restorer.enhance_image`` (frames above ``max_pixels`` are tiled).
    overwrite: replace an existing ``output`` (never an input: ``protect`` names more inputs).
    progress: a text stream for progress lines (frames/s, ETA), or None.
    cut_detector: a ``CutDetector`` (default thresholds if None).

  Returns:
    VideoResult. Raises VideoReadError (after keeping the frames read before the error in
    ``<name>.partial<ext>``, named in the message) for a corrupt or truncated source,
    VideoDependencyError without imageio-ffmpeg, FileExistsError for an existing output.
  """
  from lljax.imaging import exposure as exposure_lib  # pylint: disable=import-outside-toplevel
  from lljax.metrics.temporal import FlickerMeter  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel
  from lljax.utils.progress import Progress  # pylint: disable=import-outside-toplevel

  target, window, batch = exposure_lib.target_of(exposure), int(window), int(batch)
  if window < 1 or batch < 1 or quality not in QUALITIES:
    raise ValueError(f"need window >= 1, batch >= 1 and quality in {QUALITIES}")
  output = _check_output(output, source, protect, overwrite)
  start = time.monotonic()
  info, frames = open_source(source, fps)
  is_video = isinstance(source, (str, os.PathLike)) and is_video_file(source)
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
  writer = VideoWriter(tmp, info.width, info.height, info.fps, quality, source if is_video and info.has_audio else None,
                       _MUXERS[output.suffix.lower()])
  failure, cuts, meter = [], [], FlickerMeter()
  detector = cut_detector or CutDetector()
  options = dict(max_pixels=max_pixels, tile=tile, overlap=overlap, prior_pixels=prior_pixels,
                 temperature=temperature, seed=seed)
  meter_progress = Progress(max(info.frames, 1), every_seconds=5, stream=progress, unit="frame") if progress else None
  try:
    frames = _with_context(restorer, _guarded(frames, failure), detector, window, kernel, prior_pixels or max_pixels)
    stream = smooth(frames, window)
    for t, (out, new_shot) in enumerate(_exposed(_enhanced(restorer, stream, batch, kernel, options), target, window)):
      frame = to_uint8(out)
      writer.write(frame)
      meter.update(frame, cut=new_shot and t > 0)
      if new_shot and t > 0:
        cuts.append(t)
      if meter_progress:
        meter_progress.update(min(t + 1, meter_progress.total_steps))
    writer.close()
  except BaseException:
    writer.abort()
    tmp.unlink(missing_ok=True)
    raise
  finally:
    if meter_progress:
      meter_progress.close()
  result = VideoResult(str(source), output, writer.frames, info.width, info.height, info.fps, cuts, meter.result(),
                       time.monotonic() - start)
  if failure:
    return _keep_partial(result, tmp, failure[0])
  os.replace(tmp, output)
  return result


def _keep_partial(result, tmp, error):
  """Moves what was written before a read error to ``<name>.partial<ext>``; raises the error."""
  partial = result.output.with_name(f"{result.output.stem}.partial{result.output.suffix}")
  if result.frames:
    os.replace(tmp, partial)
    message = f"{error}; the {result.frames} frames before it are enhanced in {partial}"
  else:
    tmp.unlink(missing_ok=True)
    partial, message = None, str(error)
  result.output = partial
  failure = VideoReadError(message, result.frames)
  failure.result = result
  raise failure
