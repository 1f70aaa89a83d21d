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
  return _devudp_dir(tmp_path_factory, "devudp_tiny")


@pytest.fixture(scope="module")
def devudp_plain_dir(tmp_path_factory):
  """DEvUDP tiny without normalisation, with the input shortcut: its output level follows its input's."""
  return _devudp_dir(tmp_path_factory, "devudp_plain", norm="none", shortcut=True)


def _devudp_dir(tmp_path_factory, name, **overrides):
  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel

  family = models.get("devudp")
  config = {**family.VARIANTS["tiny"], **overrides}
  module = family.Model(**config)
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  out = tmp_path_factory.mktemp("models") / name
  checkpoint.export_model(out, "devudp", config, params)
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


def test_instance_norm_moments_stay_per_frame():
  """Self-normalising statistics (lljax.nn.image_stats.PER_FRAME) keep each frame's own value."""
  values = [{"block": {"instance_moments": (np.float32(v), np.float32(v))}, "gate": np.float32(v)} for v in (1, 2, 3)]
  out = [o[1] for o in video.smooth(zip("abc", values, [True, False, False]), window=3)]
  assert [float(o["gate"]) for o in out] == [1.5, 2, 2.5]
  assert [float(o["block"]["instance_moments"][1]) for o in out] == [1, 2, 3]


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


def test_shared_context_lowers_flicker(llflow_small_dir, clip, tmp_path):
  """The smoothed global context (window 9) against frame-by-frame enhancement (window 1), on the
  synthetic clip: lower brightness and colour flicker and temporal-difference error."""
  low, ref, cut = clip
  source = tmp_path / "clip.mkv"
  _write(low, source)
  restorer = lljax.load(llflow_small_dir)
  metrics = {w: video_flicker.flicker_of(restorer, None, source, ref, cut, w, tmp_path) for w in (1, 9)}
  assert metrics[1]["cuts"] == metrics[9]["cuts"] == [cut]
  for key in ("brightness_flicker", "colour_flicker", "tde"):
    assert metrics[9][key] < 0.85 * metrics[1][key], (key, metrics)


def test_frames_and_their_tiles_get_the_window_mean_context(llflow_small_dir, clip, tmp_path):
  """Each frame is enhanced (here in tiles) with the mean of its shot's contexts within the centred
  window; the shot after a cut does not see the frames before it."""
  low = clip[0][:6]
  restorer = lljax.load(llflow_small_dir)
  detector = video.CutDetector()
  cuts = [t for t, f in enumerate(low) if detector.update(f / 255.0)]
  assert cuts == [0]
  calls = []
  enhance_image = restorer.enhance_image
  restorer.enhance_image = lambda x, kernel=None, **kw: calls.append(kw) or enhance_image(x, kernel, **kw)
  frames = list(low[:3]) + list(clip[0][-3:])  # a cut at frame 3
  paths = []
  for t, frame in enumerate(frames):
    paths.append(tmp_path / f"{t}.png")
    save_png(paths[-1], frame)
  result = video.enhance_video(restorer, paths, tmp_path / "o.mp4", window=3, max_pixels=48 * 64, tile=48, overlap=16)
  assert result.cuts == [3] and result.frames == 6 and len(calls) == 6
  own = [restorer.global_context(f / 255.0, pixels=48 * 64) for f in frames]
  assert own[0].factor == 2  # the frame's context is computed downscaled, as enhance_image's tiles' would be
  shots = [[0, 1], [0, 1, 2], [1, 2], [3, 4], [3, 4, 5], [4, 5]]
  for kw, peers in zip(calls, shots):
    assert kw["max_pixels"] == 48 * 64
    np.testing.assert_allclose(kw["context"].prior, np.mean([own[p].prior for p in peers], 0), atol=1e-6)


def test_exposure_gain_is_smoothed_like_the_context(devudp_plain_dir, clip, tmp_path):
  """--exposure in a clip: one gain per frame (the search ``adjust_exposure`` does), its log averaged
  over the window and shot, applied with the same highlight roll-off. (A model without
  normalisation: an instance-norm model's output level hardly follows its input's.)"""
  low = [to_uint8(f / 255.0 * g) for f, g in zip(clip[0][:5], (1.0, 1.3, 0.95, 1.25, 1.0))]  # no cut (< 1.5x)
  restorer = lljax.load(devudp_plain_dir)
  paths = []
  for t, frame in enumerate(low):
    paths.append(tmp_path / f"{t}.png")
    save_png(paths[-1], frame)
  video.enhance_video(restorer, paths, tmp_path / "o.mkv", window=3, exposure=0.3, quality="lossless")
  got = np.stack(list(video.read_video(tmp_path / "o.mkv", video.probe(tmp_path / "o.mkv"))))
  own = [restorer.global_context(f / 255.0) for f in low]
  window_mean = lambda t: video._tree_mean(own[max(t - 1, 0):t + 2], own[t])  # pylint: disable=protected-access
  plain = [restorer.enhance_image(f / 255.0, context=window_mean(t)) for t, f in enumerate(low)]
  assert abs(temporal.global_stats(video.apply_gain(plain[0], video.exposure_gain(plain[0], 0.3)))[0] - 0.3) < 2e-3
  log_gains = [np.log(video.exposure_gain(p, 0.3)) for p in plain]
  for t, out in enumerate(plain):
    mean = np.mean(log_gains[max(t - 1, 0):t + 2])
    assert np.abs(got[t].astype(int) - to_uint8(video.apply_gain(out, np.exp(mean)))).max() <= 1
  assert np.std(log_gains) > 0.05  # the frames' own gains differ: the smoothing is visible


def test_high_quality_output_is_close_and_unbiased(clip, tmp_path):
  """quality="high" (H.264 CRF 14, BT.709 4:2:0, exact RGB<->YUV rounding) on natural frames."""
  ref = clip[1][:4]
  writer = video.VideoWriter(tmp_path / "hq.mp4", 96, 64, 25, "high")
  for frame in ref:
    writer.write(frame)
  writer.close()
  back = np.stack(list(video.read_video(tmp_path / "hq.mp4", video.probe(tmp_path / "hq.mp4")))).astype(int) - ref
  assert np.abs(back).mean() < 3 and np.all(np.abs(back.reshape(-1, 3).mean(0)) < 0.4), back.reshape(-1, 3).mean(0)
