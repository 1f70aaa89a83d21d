"""Flicker and throughput of video enhancement, per model: shared (smoothed) global context
against frame-by-frame enhancement.

  python benchmarks/video_flicker.py                    # the tables in README.md ("Video")
  python benchmarks/video_flicker.py --models llflow devudp --frames 24 --throughput_frames 4

The clip (``synthetic_clip``, also the tests'): the embedded photo ``chelsea`` (2x box-downscaled)
panned slowly (2 px per frame), darkened to 4 % exposure in linear light with Poisson-Gaussian
sensor noise drawn afresh for every frame (``lljax.imaging.lowlight``: 400 electrons at white,
read noise 1.5 DN at black); the light is constant, then dims by 7 % per frame, then a scene cut
to ``coffee`` (constant light). The reference is the same pan at normal light, with the same
light changes and no noise.

Each model's converted small fixture (``tests/fixtures/<model>/small.pth``: the official small
configuration with perturbed random weights; magnitudes are indicative, not a trained model's;
INFWIDE gets one 9x9 motion kernel for the clip; DEvUDP's fixture uses batch norm, which has no
whole-image statistic, so ``devudp-in``, the instance-norm ``small`` variant at random
initialisation as in ``tile_seams.py``, stands for the released instance-norm generator) enhances the clip with ``window=1`` (frame by
frame) and ``--window`` (default 9, the command's) into lossless videos; the outputs are read
back and measured with ``lljax.metrics.temporal`` (scene cut left out): brightness and colour
flicker and the temporal-difference error against the reference. Throughput: frames/s of
``window=1`` and of the smoothed path on a 720p clip (``--throughput_frames`` frames after one
warm-up frame, which compiles) on this machine; CPU figures of the small fixtures, not of the
released models.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MODELS = ("llflow", "uptflow", "ssflow", "devudp", "devudp-in", "infwide")
SIZE = (64, 96)


def synthetic_clip(frames=16, size=SIZE, cut=None, seed=0):
  """(low uint8 [T, H, W, 3], reference uint8 [T, H, W, 3], index of the scene cut).

  Photo ``chelsea`` until ``cut`` (default 2/3 of the clip), then ``coffee``; both 2x
  box-downscaled and panned right 2 px per frame. Light: constant, then dimming 7 % per frame
  from frame ``cut // 3`` to ``2 * cut // 3`` (then steady until the cut; constant after it). Low frames:
  exposure 0.04 times that light, Poisson-Gaussian noise (400 e- at white, read sigma 1.5 DN at
  black) with a new seed per frame, sRGB, 8 bit. Reference: the light-scaled clean frames.
  """
  from lljax import tiling  # pylint: disable=import-outside-toplevel
  from lljax.imaging import lowlight, photos, srgb  # pylint: disable=import-outside-toplevel

  h, w = size
  cut = frames * 2 // 3 if cut is None else cut
  dim = (cut // 3, 2 * cut // 3)
  scenes = {}
  for name in ("chelsea", "coffee"):
    linear = srgb.u8_to_linear(photos.load_photo(name))
    scenes[name] = tiling.box_downscale(linear.astype(np.float32), 2)
  low, ref = [], []
  for t in range(frames):
    scene = scenes["chelsea" if t < cut else "coffee"]
    x0 = 2 * (t if t < cut else t - cut)
    crop = scene[10:10 + h, 10 + x0:10 + x0 + w].astype(np.float64)
    light = 1.0 if t < cut else 0.9
    if t < cut:
      light *= 0.93 ** (min(max(t, dim[0]), dim[1]) - dim[0])
    noisy = lowlight.poisson_gaussian_noise(lowlight.darken(crop, 0.04 * light), np.random.default_rng([seed, t]),
                                            400.0, 1.5 / 255 / srgb.LINEAR_SLOPE)
    low.append(srgb.quantize_u8(srgb.linear_to_srgb(noisy)))
    ref.append(srgb.quantize_u8(srgb.linear_to_srgb(np.clip(crop * light, 0, 1))))
  return np.stack(low), np.stack(ref), cut


def restorer_of(model):
  """An lljax Restorer of ``model``'s converted small fixture ("devudp-in": see tile_seams.py)."""
  from tile_seams import restorer_of as of  # pylint: disable=import-outside-toplevel
  return of(model)


def clip_kernel(model):
  """INFWIDE's one kernel for the clip (a 9x9 motion kernel), None for the others."""
  if model != "infwide":
    return None
  from lljax.imaging import motion  # pylint: disable=import-outside-toplevel
  return motion.motion_kernel(np.random.default_rng(3), 9)[0]


def write_clip(frames, path, fps=25):
  """uint8 frames [T, H, W, 3] -> a lossless video at ``path``."""
  from lljax import video  # pylint: disable=import-outside-toplevel
  writer = video.VideoWriter(path, frames.shape[2], frames.shape[1], fps, "lossless")
  for frame in frames:
    writer.write(frame)
  writer.close()


def read_clip(path):
  from lljax import video  # pylint: disable=import-outside-toplevel
  return np.stack(list(video.read_video(path, video.probe(path))))


def flicker_of(restorer, kernel, source, reference, cut, window, folder):
  """The temporal metrics of ``source`` enhanced with ``window`` (lossless output, read back)."""
  from lljax import video  # pylint: disable=import-outside-toplevel
  from lljax.metrics import temporal  # pylint: disable=import-outside-toplevel

  out = pathlib.Path(folder) / f"{restorer.model_name}_w{window}.mkv"
  result = video.enhance_video(restorer, source, out, kernel=kernel, window=window, quality="lossless",
                               overwrite=True)
  frames = read_clip(out)
  assert len(frames) == len(reference), (len(frames), len(reference))
  metrics = temporal.flicker(frames, reference, cuts=[cut])
  return {**metrics, "cuts": result.cuts}


def throughput(restorer, kernel, frames, window, folder):
  """Frames/s of ``enhance_video`` on ``frames`` (uint8 [T, H, W, 3]) after a one-frame warm-up
  (compilation) at the same size; the whole path: decode, context, model, encode (high quality)."""
  from lljax import video  # pylint: disable=import-outside-toplevel

  folder = pathlib.Path(folder)
  write_clip(frames[:1], folder / "big_warm.mkv")
  write_clip(frames, folder / "big.mkv")
  video.enhance_video(restorer, folder / "big_warm.mkv", folder / "big_warm_out.mp4", kernel=kernel, window=window,
                      overwrite=True)
  start = time.perf_counter()
  result = video.enhance_video(restorer, folder / "big.mkv", folder / "big_out.mp4", kernel=kernel, window=window,
                               overwrite=True)
  return result.frames / (time.perf_counter() - start)


def big_clip(frames, size):
  """A ``size`` clip for throughput: the synthetic clip at 1/8 size, upscaled 8x (nearest)."""
  h, w = size
  small = synthetic_clip(frames, (h // 8, w // 8))[0]
  return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
  p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
  p.add_argument("--frames", type=int, default=24, help="frames of the flicker clip (64x96)")
  p.add_argument("--window", type=int, default=9, help="the smoothed run's window (the command's default: 9)")
  p.add_argument("--throughput_frames", type=int, default=3, help="frames of the 720p clip (0: skip)")
  p.add_argument("--json", default=None, help="also write the numbers here")
  p.add_argument("--tables", default=None, help="only print the tables of an earlier --json file")
  args = p.parse_args(argv)
  if args.tables:
    saved = json.loads(pathlib.Path(args.tables).read_text())
    as_int = lambda d: {m: {int(w): v for w, v in r.items()} for m, r in d.items()}
    print_tables(as_int(saved["flicker"]), as_int(saved["throughput"]), args)
    return
  low, ref, cut = synthetic_clip(args.frames)
  rows, speed = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    write_clip(low, tmp / "clip.mkv")
    for model in args.models:
      restorer, kernel = restorer_of(model), clip_kernel(model)
      rows[model] = {w: flicker_of(restorer, kernel, tmp / "clip.mkv", ref, cut, w, tmp) for w in (1, args.window)}
      print(model, json.dumps(rows[model]), flush=True)
      if args.throughput_frames:
        big = big_clip(args.throughput_frames, (720, 1280))
        speed[model] = {w: throughput(restorer, kernel, big, w, tmp) for w in (1, args.window)}
        print(model, "720p frames/s", speed[model], flush=True)
  print_tables(rows, speed, args)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps({"flicker": rows, "throughput": speed}, indent=1))


def print_tables(rows, speed, args):
  w = args.window
  print(f"\nFlicker ({args.frames} frames 64x96, scene cut left out; frame by frame -> window {w}):\n")
  print("| model | brightness flicker | colour flicker | TDE vs reference | brightness TDE |")
  print("| --- | --- | --- | --- | --- |")
  for model, r in rows.items():
    cells = [f"{r[1][k]:.3g} -> {r[w][k]:.3g} ({r[w][k] / max(r[1][k], 1e-12):.2f}x)"
             for k in ("brightness_flicker", "colour_flicker", "tde", "brightness_tde")]
    print(f"| {model} | " + " | ".join(cells) + " |")
  if speed:
    print(f"\nThroughput (720x1280, {args.throughput_frames} frames after a warm-up, frames/s):\n")
    print(f"| model | frame by frame | window {w} |")
    print("| --- | --- | --- |")
    for model, s in speed.items():
      print(f"| {model} | {s[1]:.3f} | {s[w]:.3f} |")


if __name__ == "__main__":
  main()
