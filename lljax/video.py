"""Enhance video clips and image sequences without flicker.

  python -m lljax.enhance clip.mp4 --model DIR --output out/            # -> out/clip.mp4
  python -m lljax.enhance frames/ --video --fps 30 --model DIR --output out/   # -> out/frames.mp4
  lljax.video.enhance_video(lljax.load(DIR), "clip.mov", "out/clip.mov")

Sources: .mp4/.mov/.avi/.mkv files (the first video stream; frames as decoded, rotation applied),
or image sequences: a folder of frames or a glob, in natural order (``f2.png`` before ``f10.png``),
all of one size. Frames are streamed: memory holds about ``window`` frames plus one batch,
whatever the clip's length. Frames at the API are HWC: uint8 as read and written, float32 in
[0, 1] for the model.

Output: one video with the source's frame rate (image sequences: ``fps``), size and frame count;
audio streams of a video source are copied unchanged. ``quality="high"`` (default): H.264, CRF 14,
BT.709 4:2:0 (4:4:4 for odd sizes), visually lossless and plays everywhere; ``"lossless"``:
bit-exact RGB H.264 (libx264rgb, CRF 0; large files, fewer players). The container is the
source's (image sequences: .mp4). Written to a hidden temporary file and renamed when complete;
an input is never overwritten. A corrupt or truncated source stops with a ``VideoReadError``
naming the frame; every frame read before it is enhanced and kept, in ``<name>.partial<ext>``.

Temporal consistency (``window`` > 1, default ``DEFAULT_WINDOW`` = 9 frames): the whole-image
quantities a model's output depends on (``Restorer.global_context``: the flows' prior colour map
at reduced resolution, per-layer global statistics such as instance-norm moments, attention
matrices and noise estimates) are computed for every frame and replaced by their mean over a
centred window of ``window`` frames (``window // 2`` before and after, so a steady change of light
is followed without lag), restricted to the current shot: a scene cut, detected from the input
(``CutDetector``: a jump of the downscaled frame's mean-normalised colour layout or of its mean
brightness), starts a new window. Large frames are tiled and every tile uses the frame's smoothed
context. ``exposure`` (as ``Restorer.enhance_image``) uses one gain per frame smoothed the same
way. ``window=1`` enhances frame by frame (each frame's own context), batching ``batch`` frames
per model call where frames are not tiled.

Per model (what ``global_context`` holds): LLFlow and SSFlow share their prior colour map (and
any whole-image statistic); UPT-Flow shares its channel gates and transposed-attention matrices;
DEvUDP shares its instance-norm moments (the batch-norm variants "dt" and "fclgan" have no
whole-image statistic, so their frames are independent and ``window`` changes nothing); INFWIDE
takes one blur kernel for the whole clip (``kernel``; a kernel sequence is not supported) and
shares its noise-to-signal estimates. LLFlow's histogram-equalised input is still each frame's.

Frame rate: the header's (average) rate, exact for NTSC rates (30000/1001, ...); a variable-rate
clip is written at that constant rate with every decoded frame once.

The command reports the output's flicker (``lljax.metrics.temporal``: mean frame-to-frame change
of global brightness and colour, scene cuts left out).

Needs ``imageio-ffmpeg`` (it ships an ffmpeg binary): ``pip install lljax[video]``.
"""

import collections
import dataclasses
import fractions
import glob
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv")
QUALITIES = ("high", "lossless")
DEFAULT_WINDOW = 9
DEFAULT_FPS = 25
DEFAULT_BATCH = 4
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}
# RGB <-> YUV conversions with exact rounding: swscale's default fast path darkens by ~1 level.
_SWS_FLAGS = "accurate_rnd+full_chroma_int"


class VideoDependencyError(ImportError):
  """imageio-ffmpeg (the ffmpeg binary) is not installed."""


class VideoReadError(ValueError):
  """A source could not be read (fully); ``frames``: how many frames were read before the error."""

  def __init__(self, message, frames=0):
    super().__init__(message)
    self.frames = frames


class VideoWriteError(OSError):
  """ffmpeg could not write the output."""


def ffmpeg_exe():
  """The path of imageio-ffmpeg's ffmpeg binary; VideoDependencyError naming the extra if missing."""
  try:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise VideoDependencyError("reading and writing videos needs imageio-ffmpeg: pip install lljax[video]") from None
  return imageio_ffmpeg.get_ffmpeg_exe()


def is_video_file(path):
  return pathlib.Path(path).suffix.lower() in VIDEO_EXTENSIONS


# ---------------------------------------------------------------------------------------------
# Reading.


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """A source's frame size, rate and (estimated) frame count; ``has_audio`` for video files."""

  width: int
  height: int
  fps: fractions.Fraction
  frames: int  # exact for image sequences, duration x fps (an estimate) for video files
  has_audio: bool = False


def _fps_of(text):
  """'25', '29.97', '23.98' (ffmpeg's rounded rates) -> an exact Fraction (NTSC rates /1001)."""
  value = float(text)
  ntsc = round(value * 1.001)
  if abs(value - ntsc / 1.001) < 0.006 and abs(value - ntsc) > 0.006:
    return fractions.Fraction(ntsc * 1000, 1001)
  return fractions.Fraction(text).limit_denominator(1000)


def probe(path):
  """VideoInfo of a video file from ffmpeg's stream header; VideoReadError if it has no video."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist")
  text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                        check=False).stderr.decode(errors="replace")
  video = re.search(r"Stream #\S+.*?: Video: .*", text)
  size = video and re.search(r", (\d{2,5})x(\d{2,5})", video.group(0))
  if not size:
    detail = [ln.strip() for ln in text.splitlines() if ln.strip() and "output file" not in ln]
    raise VideoReadError(f"{path}: not a readable video ({detail[-1] if detail else 'no video stream'})")
  rate = re.search(r"([\d.]+) (?:fps|tbr)", video.group(0))
  fps = _fps_of(rate.group(1)) if rate else fractions.Fraction(DEFAULT_FPS)
  width, height = int(size.group(1)), int(size.group(2))
  if re.search(r"rotation of -?(90|270)\.00", text):  # ffmpeg applies the display rotation
    width, height = height, width
  duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
  seconds = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)) if duration else 0
  return VideoInfo(width, height, fps, max(1, round(seconds * fps)), bool(re.search(r"Stream #\S+.*?: Audio:", text)))


def read_video(path, info):
  """Decodes ``path`` -> uint8 frames [H, W, 3] (a generator); VideoReadError on a decoding error
  or a truncated file, after the frames decoded before it."""
  cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-sws_flags", _SWS_FLAGS, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
  size = info.width * info.height * 3
  with tempfile.TemporaryFile() as log:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    count = 0
    try:
      while True:
        data = proc.stdout.read(size)
        if len(data) < size:
          break
        count += 1
        yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
      code = proc.wait()
      log.seek(0)
      message = log.read().decode(errors="replace").strip()
      if data or code or message:
        reason = message.splitlines()[-1] if message else f"ffmpeg exited with status {code}"
        raise VideoReadError(f"{path}: corrupt or truncated video: cannot read frame {count + 1} ({reason})", count)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      proc.stdout.close()


def _natural_key(path):
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def sequence_files(spec):
  """The frames of an image sequence (a folder or a glob), in natural order."""
  from lljax.enhance import IMAGE_EXTENSIONS  # pylint: disable=import-outside-toplevel
  from lljax.utils.kernels import is_kernel_file  # pylint: disable=import-outside-toplevel

  path = pathlib.Path(spec)
  if path.is_dir():
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
  else:
    files = [pathlib.Path(m) for m in glob.glob(str(spec)) if os.path.isfile(m)]
  files = sorted((p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not is_kernel_file(p)),
                 key=_natural_key)
  if not files:
    raise VideoReadError(f"{spec}: no image frames found")
  return files


def read_sequence(files):
  """uint8 or uint16 frames [H, W, 3] of image files (a generator); VideoReadError on an unreadable
  frame or a frame whose size differs from the first one's."""
  from lljax.utils.images import read_image  # pylint: disable=import-outside-toplevel

  shape = None
  for i, path in enumerate(files):
    try:
      frame, _ = read_image(path)
    except (OSError, ValueError) as e:
      raise VideoReadError(f"frame {i + 1} of the sequence: {e}", i) from None
    shape = shape or frame.shape
    if frame.shape != shape:
      raise VideoReadError(f"{path}: frame {i + 1} is {frame.shape[1]}x{frame.shape[0]}, the sequence's first "
                           f"frame {shape[1]}x{shape[0]}", i)
    yield frame


def open_source(source, fps=None):
  """(VideoInfo, frame generator) of a video file, a folder of frames, a glob or a list of frame
  paths. ``fps``: the rate of image sequences (default ``DEFAULT_FPS``); ignored for videos."""
  if isinstance(source, (str, os.PathLike)) and is_video_file(source) and not glob.has_magic(str(source)):
    info = probe(source)
    return info, read_video(source, info)
  files = [pathlib.Path(f) for f in source] if isinstance(source, (list, tuple)) else sequence_files(source)
  first = next(read_sequence(files[:1]))
  rate = fractions.Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
  return VideoInfo(first.shape[1], first.shape[0], rate, len(files)), read_sequence(files)


# ---------------------------------------------------------------------------------------------
# Writing.


def _codec_args(quality, width, height):
  if quality == "lossless":
    return ["-c:v", "libx264rgb", "-crf", "0", "-preset", "medium"]
  if quality != "high":
    raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
  chroma = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
  return ["-vf", f"scale=out_color_matrix=bt709:out_range=tv:flags={_SWS_FLAGS}", "-c:v", "libx264", "-crf", "14",
          "-preset", "medium", "-pix_fmt", chroma, "-colorspace", "bt709", "-color_primaries", "bt709",
          "-color_trc", "bt709", "-color_range", "tv"]


class VideoWriter:
  """Streams uint8 RGB frames [H, W, 3] into ``path`` through ffmpeg (``quality``: see the module
  docstring); ``audio_from``: a video whose audio streams are copied. ``close()`` finishes the
  file (VideoWriteError if ffmpeg failed); ``abort()`` stops without finishing it."""

  def __init__(self, path, width, height, fps, quality="high", audio_from=None, container=None):
    container = container or _MUXERS.get(pathlib.Path(path).suffix.lower(), "mp4")
    self.path, self.frames, self.shape = pathlib.Path(path), 0, (height, width, 3)
    audio = ["-i", str(audio_from), "-map", "1:a?", "-c:a", "copy"] if audio_from else []
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fractions.Fraction(fps)), "-i", "-", *audio, "-map", "0:v:0",
           *_codec_args(quality, width, height), "-f", container, str(self.path)]
    self._log = tempfile.TemporaryFile()
    self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

  def write(self, frame):
    frame = np.ascontiguousarray(frame, np.uint8)
    if frame.shape != self.shape:
      raise ValueError(f"frame of shape {frame.shape}, the video's is {self.shape}")
    try:
      self._proc.stdin.write(frame.tobytes())
    except BrokenPipeError:
      raise VideoWriteError(f"{self.path}: ffmpeg stopped: {self._message()}") from None
    self.frames += 1

  def _message(self):
    self._proc.wait()
    self._log.seek(0)
    return self._log.read().decode(errors="replace").strip() or f"exit status {self._proc.returncode}"

  def close(self):
    try:
      self._proc.stdin.close()
    except BrokenPipeError:
      pass
    if self._proc.wait():
      raise VideoWriteError(f"{self.path}: ffmpeg could not write the video: {self._message()}")
    self._log.close()

  def abort(self):
    if self._proc.poll() is None:
      self._proc.kill()
    self._proc.wait()
    self._log.close()


# ---------------------------------------------------------------------------------------------
# Scene cuts and temporal smoothing.


class CutDetector:
  """Detects scene cuts from input frames, one ``update(frame)`` per frame (HWC float [0, 1]).

  A frame starts a new shot when, against the previous frame, the mean absolute change of its
  ``grid x grid`` thumbnail of block-mean colours, each thumbnail divided by its own mean (so a
  uniform change of light does not count), exceeds ``layout_threshold``, or its mean brightness
  changes by more than a factor ``light_ratio`` (a light switched on or off). A slow pan changes
  the thumbnail a little per frame; a cut changes it whole. The first frame starts a shot.
  """

  def __init__(self, layout_threshold=0.25, light_ratio=1.5, grid=8):
    self.layout_threshold, self.light_ratio, self.grid = layout_threshold, light_ratio, grid
    self._previous = None
    self.scores = None  # (layout change, brightness ratio) of the latest update

  def _thumbnail(self, frame):
    h, w = frame.shape[:2]
    rows, cols = np.linspace(0, h, min(self.grid, h) + 1).astype(int), np.linspace(0, w, min(self.grid, w) + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(np.asarray(frame, np.float64)[..., :3], rows[:-1], 0), cols[:-1], 1)
    return sums / (np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None])

  def update(self, frame):
    thumb = self._thumbnail(frame)
    mean = float(thumb.mean()) + 1.0 / 255
    current = (thumb / mean, mean)
    previous, self._previous = self._previous, current
    if previous is None:
      return True
    layout = float(np.mean(np.abs(current[0] - previous[0])))
    ratio = max(current[1], previous[1]) / min(current[1], previous[1])
    self.scores = (layout, ratio)
    return layout > self.layout_threshold or ratio > self.light_ratio


def _tree_mean(trees):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.map(lambda *leaves: np.mean(np.stack([np.asarray(x, np.float32) for x in leaves]), 0), *trees)


def smooth(stream, window):
  """(item, value, new_shot) in order -> (item, smoothed value, new_shot), ``window // 2`` frames late.

  The smoothed value of frame t is the mean (leaf by leaf, ``jax.tree.map``) of the values of
  frames t - window // 2 .. t + window // 2 of the same shot (a frame with ``new_shot`` starts
  one). ``value`` None passes through. Holds at most ``window`` entries.
  """
  half, entries, shot, emitted = max(int(window), 1) // 2, collections.deque(), -1, 0

  def emit(t):
    entry = entries[t - entries[0][0]]
    peers = [e[3] for e in entries if e[1] == entry[1] and abs(e[0] - t) <= half]
    value = None if entry[3] is None else (peers[0] if len(peers) == 1 else _tree_mean(peers))
    out, entry[2] = (entry[2], value, entry[4]), None
    while entries and entries[0][0] < t + 1 - half:
      entries.popleft()
    return out

  for t, (item, value, new_shot) in enumerate(stream):
    shot += bool(new_shot or t == 0)
    entries.append([t, shot, item, value, bool(new_shot)])
    while emitted <= t - half:
      yield emit(emitted)
      emitted += 1
  while entries and emitted <= entries[-1][0]:
    yield emit(emitted)
    emitted += 1


def exposure_gain(rgb, target, max_pixels=1 << 16):
  """The linear-light gain ``lljax.imaging.exposure.adjust_exposure`` would give HWC float ``rgb``
  to reach ``target`` mean brightness, searched on a box-downscaled copy (at most ``max_pixels``)."""
  from lljax import tiling  # pylint: disable=import-outside-toplevel
  from lljax.imaging import exposure, srgb  # pylint: disable=import-outside-toplevel

  factor = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / max_pixels))))
  linear = srgb.srgb_to_linear(np.clip(tiling.box_downscale(rgb[..., :3], factor), 0.0, 1.0).astype(np.float64))
  lo, hi = -np.log(256.0), np.log(256.0)
  for _ in range(40):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if exposure.brightness(exposure._apply(linear, np.exp(mid))) < target else (lo, mid)  # pylint: disable=protected-access
  return np.float32(np.exp(0.5 * (lo + hi)))


def apply_gain(rgb, gain):
  """HWC float sRGB [0, 1] times ``gain`` in linear light with exposure's highlight roll-off."""
  from lljax.imaging import exposure, srgb  # pylint: disable=import-outside-toplevel
  return exposure._apply(srgb.srgb_to_linear(np.clip(rgb, 0.0, 1.0)), gain).astype(np.float32)  # pylint: disable=protected-access


# ---------------------------------------------------------------------------------------------
# Enhancing.


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
  """Enhances a clip frame by frame with temporally smoothed global quantities (module docstring).

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


# ---------------------------------------------------------------------------------------------
# The command (``python -m lljax.enhance`` routes video inputs here).


def add_arguments(parser):
  """The video options of ``python -m lljax.enhance``."""
  g = parser.add_argument_group("videos (.mp4 .mov .avi .mkv inputs, or image sequences with --video)")
  g.add_argument("--video", action="store_true",
                 help="treat each folder or glob input as the frames of one clip (written as <name>.mp4)")
  g.add_argument("--fps", type=float, default=None, help=f"frame rate of image sequences (default {DEFAULT_FPS})")
  g.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                 help=f"frames the global prior/statistics and exposure are averaged over, centred, restarted "
                      f"at scene cuts (default {DEFAULT_WINDOW}; 1: frame by frame)")
  g.add_argument("--video_quality", choices=QUALITIES, default="high",
                 help="high: H.264 CRF 14, plays everywhere (default); lossless: bit-exact RGB H.264")
  g.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                 help=f"frames per model call when frames are enhanced one by one (default {DEFAULT_BATCH})")


def wants_video(args):
  """Whether ``python -m lljax.enhance`` was given videos (or ``--video``)."""
  return bool(getattr(args, "video", False)) or any(is_video_file(spec) for spec in args.inputs)


def plan_videos(args):
  """[(source, output path)] of the command's video inputs; UsageError for anything else."""
  from lljax.enhance import UsageError  # pylint: disable=import-outside-toplevel

  named = []
  for spec in args.inputs:
    path = pathlib.Path(spec)
    if is_video_file(spec) and glob.has_magic(spec):
      matches = sorted(pathlib.Path(m) for m in glob.glob(spec) if os.path.isfile(m))
      if not matches:
        raise UsageError(f"no files match {spec!r}")
      named += [(m, m.stem, m.suffix) for m in matches]
    elif is_video_file(spec):
      if not path.is_file():
        raise UsageError(f"{spec} does not exist")
      named.append((path, path.stem, path.suffix))
    elif args.video and (path.is_dir() or glob.has_magic(spec)):
      name = path.name if path.is_dir() else pathlib.Path(spec).parent.name
      named.append((spec, name or "frames", ".mp4"))
    else:
      raise UsageError(f"{spec}: not a video ({', '.join(VIDEO_EXTENSIONS)}); pass --video for a folder or glob of "
                       "frames, and enhance photos in a command of their own")
  planned, seen = [], {}
  for source, name, ext in named:
    target = pathlib.Path(args.output) / f"{name}{args.suffix}{ext}"
    key = os.path.normcase(str(target.resolve()))
    if key in seen:
      raise UsageError(f"{seen[key]} and {source} would both be written to {target}; use --suffix or two commands")
    seen[key] = source
    planned.append((source, target))
  return planned


def _check_cli(args):
  from lljax.enhance import UsageError  # pylint: disable=import-outside-toplevel

  photo_only = {"--self_ensemble": args.self_ensemble, "--recursive": args.recursive,
                "--format jpg": args.format != "png", "--bit_depth 16": args.bit_depth != 8,
                "--prior tile": args.prior == "tile", "--no_tiles": args.no_tiles}
  used = [name for name, on in photo_only.items() if on]
  if used:
    raise UsageError(f"{', '.join(used)}: for photos, not videos (frames use their whole frame's global prior)")
  if args.window < 1 or args.batch < 1 or (args.fps is not None and args.fps <= 0):
    raise UsageError("need --window >= 1, --batch >= 1 and --fps > 0")
  ffmpeg_exe()  # a missing dependency stops the command before anything is loaded


def summary(result):
  """One line about a VideoResult."""
  flicker = result.flicker
  fps = float(result.fps)
  line = (f"{result.source} -> {result.output}: {result.frames} frames {result.width}x{result.height} at "
          f"{fps:g} fps, {len(result.cuts)} scene cut{'s' if len(result.cuts) != 1 else ''}, "
          f"{result.frames / max(result.seconds, 1e-9):.2f} frames/s; flicker (mean change per frame, cuts left out): "
          f"brightness {flicker['brightness_flicker']:.4f}, colour {flicker['colour_flicker']:.4f}")
  return line


def run(args, out=None, err=None):
  """``python -m lljax.enhance`` on videos: returns the exit status (0 ok, 1 some failed)."""
  import lljax  # pylint: disable=import-outside-toplevel
  from lljax import checkpoint, enhance, models  # pylint: disable=import-outside-toplevel

  out, err = out or sys.stdout, err or sys.stderr
  _check_cli(args)
  family = models.get(checkpoint.read_model_spec(args.model)["model"])
  jobs = plan_videos(args)
  protect = [str(source) for source, _ in jobs if not glob.has_magic(str(source))]
  todo = [(s, t) for s, t in jobs if args.overwrite or not t.exists()]
  restorer = lljax.load(args.model, step=args.step, precision=args.precision) if todo else None
  failed = 0
  for source, target in todo:
    try:
      kernel = enhance._kernel_for(source, args, family.KERNEL_SIZE) if restorer.needs_kernel else None  # pylint: disable=protected-access
      result = enhance_video(
          restorer, source, target, kernel=kernel, fps=args.fps, window=args.window, batch=args.batch,
          quality=args.video_quality, max_pixels=enhance.max_pixels(family, args.max_megapixels), tile=args.tile,
          overlap=args.overlap, temperature=args.temperature, seed=args.seed, exposure=args.exposure,
          overwrite=args.overwrite, progress=out, protect=protect)
      print(summary(result), file=out)
    except (OSError, ValueError) as e:
      failed += 1
      print(f"{enhance.ERROR_PREFIX} {e}", file=err)
  skipped = len(jobs) - len(todo)
  line = f"{len(todo) - failed} video{'s' if len(todo) - failed != 1 else ''} enhanced into {args.output}"
  line += f", {skipped} skipped (output exists; --overwrite to replace)" if skipped else ""
  print(line + (f", {failed} failed" if failed else ""), file=out)
  return 1 if failed else 0
