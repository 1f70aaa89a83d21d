"""lljax.video and ``python -m lljax.enhance clip.mp4``: streaming I/O that keeps the clip's frame
count, rate, size and audio; image sequences; safety; corrupt and truncated sources; scene cuts;
the temporally smoothed global context (lower flicker than frame by frame); lljax.metrics.temporal.

Frames are 64x96 (one compiled shape per model); the clip is benchmarks/video_flicker.py's
synthetic one (a slow pan, constant then dimming light, a scene cut, sensor noise).
"""

import fractions
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import lljax
from lljax import enhance, video
from lljax.metrics import temporal
from lljax.utils.images import save_png, to_uint8

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import video_flicker  # noqa: E402  pylint: disable=wrong-import-position

NTSC = fractions.Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip():
  return video_flicker.synthetic_clip(16)


@pytest.fixture(scope="module")
def devudp_dir(tmp_path_factory):
  """A DEvUDP tiny model directory (random weights: fast, and enough for the I/O path)."""
  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel

  family = models.get("devudp")
  module = family.Model(**family.VARIANTS["tiny"])
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  out = tmp_path_factory.mktemp("models") / "devudp_tiny"
  checkpoint.export_model(out, "devudp", family.VARIANTS["tiny"], params)
  return out


def _write(frames, path, fps=25, audio=False):
  """uint8 frames -> a lossless video (with a sine audio track when ``audio``)."""
  if not audio:
    video_flicker.write_clip(frames, path, fps)
    return
  silent = path.with_name("silent" + path.suffix)
  video_flicker.write_clip(frames, silent, fps)
  seconds = len(frames) / float(fps)
  subprocess.run([video.ffmpeg_exe(), "-v", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i",
                  f"sine=frequency=440:duration={seconds}", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                  "-c:a", "aac", str(path)], check=True)
  silent.unlink()


def _run(capsys, *argv):
  code = enhance.main([str(a) for a in argv])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_flicker_metric():
  """Brightness/colour flicker and the temporal-difference error on frames with known values."""
  grey = lambda v: np.full((4, 6, 3), v, np.float32)
  assert temporal.flicker([grey(0.3)] * 4)["brightness_flicker"] == 0
  steady = temporal.flicker([grey(0.2), grey(0.4), grey(0.2), grey(0.4)], cuts=[2])
  assert steady["pairs"] == 2 and steady["brightness_flicker"] == pytest.approx(0.2)
  assert steady["colour_flicker"] == pytest.approx(0.0, abs=1e-7) and "tde" not in steady
  red = np.zeros((4, 6, 3), np.float32) + [0.4, 0.2, 0.2]
  assert temporal.flicker([grey(0.4), red])["colour_flicker"] == pytest.approx(0.5 - 1 / 3)
  frames = [grey(0.1), grey(0.3), grey(0.6)]
  assert temporal.flicker(frames, frames)["tde"] == 0  # the reference's own changes do not count
  moved = temporal.flicker(frames, [grey(0.1), grey(0.1), grey(0.1)])
  assert moved["tde"] == pytest.approx(0.25) and moved["brightness_tde"] == pytest.approx(0.25)
  assert temporal.flicker([to_uint8(f) for f in frames])["brightness_flicker"] == pytest.approx(0.25, abs=1 / 255)


def test_cut_detector_finds_the_cut_not_the_pan_or_the_light(clip):
  low, _, cut = clip
  detector = video.CutDetector()
  assert [t for t, frame in enumerate(low) if detector.update(frame / 255.0)] == [0, cut]
  light = video.CutDetector()  # a light switched on is a cut too
  assert [light.update(low[0] / 255.0 * g) for g in (1, 1.1, 2.0)] == [True, False, True]


def test_smoothing_is_a_centred_window_mean_restarted_at_cuts():
  values = [{"x": np.float32(v)} for v in (1, 2, 3, 4, 10, 20)]
  new_shot = [True, False, False, False, True, False]
  out = list(video.smooth(zip("abcdef", values, new_shot), window=3))
  assert [o[0] for o in out] == list("abcdef") and [o[2] for o in out] == new_shot
  assert [float(o[1]["x"]) for o in out] == [1.5, 2, 3, 3.5, 15, 15]
  out = list(video.smooth(zip("abc", [None] * 3, [True, False, False]), window=9))
  assert [o[1] for o in out] == [None] * 3
  assert [float(o[1]["x"]) for o in video.smooth(zip("abcdef", values, new_shot), window=1)] == [1, 2, 3, 4, 10, 20]


def test_video_keeps_frames_rate_size_and_audio(devudp_dir, clip, tmp_path, capsys):
  """mp4 in, mp4 out: the same frame count, rate (NTSC 29.97 exactly), size and an audio track;
  frames in batches equal frame-by-frame enhance_image; progress and flicker are reported."""
  low = clip[0]
  source = tmp_path / "clip.mp4"
  _write(low, source, NTSC, audio=True)
  code, stdout, stderr = _run(capsys, source, "--model", devudp_dir, "--output", tmp_path / "out", "--window", "1",
                              "--video_quality", "lossless", "--batch", "4")
  assert code == 0, stderr
  target = tmp_path / "out" / "clip.mp4"
  info = video.probe(target)
  assert (info.width, info.height, info.fps, info.has_audio) == (96, 64, NTSC, True)
  frames = np.stack(list(video.read_video(target, info)))
  assert frames.shape == low.shape
  restorer = lljax.load(devudp_dir)
  expected = np.stack([to_uint8(restorer.enhance_image(f / 255.0)) for f in low])
  assert np.abs(frames.astype(int) - expected).max() <= 1  # batched vs one by one: float rounding
  assert "frame 16/16" in stdout and "frames/s" in stdout and "ETA" in stdout
  assert "16 frames 96x64 at 29.97 fps, 1 scene cut" in stdout and "flicker" in stdout
  assert "1 video enhanced" in stdout
  code, stdout, _ = _run(capsys, source, "--model", devudp_dir, "--output", tmp_path / "out", "--window", "1")
  assert code == 0 and "1 skipped" in stdout  # an existing output is kept without --overwrite


def test_image_sequence_and_inputs_never_overwritten(devudp_dir, clip, tmp_path, capsys):
  low = clip[0][:6]
  frames = tmp_path / "frames"
  frames.mkdir()
  for t, frame in enumerate(low):
    save_png(frames / f"f{5 * (t + 1)}.png", frame)  # f10 sorts before f5 without natural order
  code, stdout, stderr = _run(capsys, frames, "--video", "--fps", "12", "--model", devudp_dir, "--output", frames,
                              "--window", "1", "--video_quality", "lossless")
  assert code == 0, stderr
  info = video.probe(frames / "frames.mp4")
  assert (info.width, info.height, info.fps) == (96, 64, 12)
  got = np.stack(list(video.read_video(frames / "frames.mp4", info)))
  assert np.abs(got[-1].astype(int) - to_uint8(lljax.load(devudp_dir).enhance_image(low[-1] / 255.0))).max() <= 1
  source = tmp_path / "clip.mkv"
  _write(low, source)
  before = source.read_bytes()
  code, _, stderr = _run(capsys, source, "--model", devudp_dir, "--output", tmp_path, "--window", "1", "--overwrite")
  assert code == 1 and "refusing to overwrite the input" in stderr and source.read_bytes() == before
  code, _, stderr = _run(capsys, source, frames / "f1.png", "--model", devudp_dir, "--output", tmp_path / "o")
  assert code == 2 and "not a video" in stderr
  code, _, stderr = _run(capsys, source, "--model", devudp_dir, "--output", tmp_path / "o", "--self_ensemble")
  assert code == 2 and "--self_ensemble" in stderr and not (tmp_path / "o").exists()


def test_truncated_or_corrupt_video_keeps_the_frames_before_the_error(devudp_dir, clip, tmp_path, capsys):
  low = clip[0]
  source = tmp_path / "cut.mkv"
  _write(low, source)
  data = source.read_bytes()
  source.write_bytes(data[: len(data) * 6 // 10])
  out = tmp_path / "out"
  code, stdout, stderr = _run(capsys, source, "--model", devudp_dir, "--output", out, "--window", "1",
                              "--video_quality", "lossless")
  assert code == 1 and "corrupt or truncated" in stderr and "1 failed" in stdout
  partial = out / "cut.partial.mkv"
  assert str(partial) in stderr and not (out / "cut.mkv").exists()
  kept = np.stack(list(video.read_video(partial, video.probe(partial))))
  assert 0 < len(kept) < len(low) and f"cannot read frame {len(kept) + 1}" in stderr
  restorer = lljax.load(devudp_dir)
  assert np.abs(kept[-1].astype(int) - to_uint8(restorer.enhance_image(low[len(kept) - 1] / 255.0))).max() <= 1
  (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
  code, _, stderr = _run(capsys, tmp_path / "junk.mp4", "--model", devudp_dir, "--output", out, "--window", "1")
  assert code == 1 and "junk.mp4: not a readable video" in stderr and not list(out.glob("junk*"))


def test_missing_dependency_names_the_extra(devudp_dir, tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
  with pytest.raises(video.VideoDependencyError, match=r"pip install lljax\[video\]"):
    video.ffmpeg_exe()
  (tmp_path / "a.mp4").write_bytes(b"")
  code, _, stderr = _run(capsys, tmp_path / "a.mp4", "--model", devudp_dir, "--output", tmp_path / "o")
  assert code == 2 and "pip install lljax[video]" in stderr and not (tmp_path / "o").exists()
