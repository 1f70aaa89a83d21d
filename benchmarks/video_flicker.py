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
INFWIDE gets one 9x9 motion kernel for the clip) enhances the clip with ``window=1`` (frame by
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
MODELS = ("llflow", "uptflow", "ssflow", "devudp", "infwide")
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
  """An lljax Restorer of ``model``'s converted small fixture (as benchmarks/tile_seams.py)."""
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
