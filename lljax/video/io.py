"""Video I/O through imageio-ffmpeg's ffmpeg binary: probing and decoding video files, reading image
sequences (a folder or a glob of frames, in natural order), and streaming frames into an H.264 file
(``VideoWriter``; ``quality`` "high" or "lossless", as the ``lljax.video`` docstring describes).
Frames are uint8 (uint16 for 16-bit image sequences) HWC RGB.
"""

import dataclasses
import fractions
import glob
import os
import pathlib
import re
import subprocess
import tempfile

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv")
QUALITIES = ("high", "lossless")
DEFAULT_FPS = 25
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
  """Streams uint8 RGB frames [H, W, 3] into ``path`` through ffmpeg (``quality``: see the
  ``lljax.video`` docstring); ``audio_from``: a video whose audio streams are copied. ``close()``
  finishes the file (VideoWriteError if ffmpeg failed); ``abort()`` stops without finishing it."""

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
