"""Training-pipeline throughput (examples/s) and dataset build time; prints tables.

Builds, in a temporary TFDS data_dir, the `lol` and `gopro` builders from
fake trees with the official layouts and the real image sizes (600x400 and
1280x720 PNG of smooth scenes plus sensor-like noise, so decoding costs
about what real photos cost) and the embedded `lowlight` dataset; then reads
training batches of random crops through `lljax.data.pipeline.train_batches`
and reports examples/s beside a model's training rate measured in the same run
(``--model_case``, a ``train_speed.py`` case run in its own process; default
LLFlow `small`, batch 16 of 160x160, the fastest release train step here).

    python benchmarks/data_pipeline.py            # 2 reading threads, 256x256 crops
    python benchmarks/data_pipeline.py --threads 1 --steps 20 --model_case none
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_datasets as tfds

from lljax.data import pipeline, sources

HERE = pathlib.Path(__file__).resolve().parent


def model_examples_per_s(case: str) -> float:
  """Examples/s of the train step ``case`` (train_speed.py, its own process, 1 timed step)."""
  import harness  # pylint: disable=import-outside-toplevel
  rows = harness.run_cases(str(HERE / 'train_speed.py'), [case], ['--repeats', '1'])
  if not rows or rows[0]['median_s'] is None:
    raise SystemExit(f'the model step {case} did not run (see above); --model_case none skips it')
  return rows[0]['batch'] / rows[0]['median_s']


def _photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Smooth colour gradients + texture + noise: PNG sizes like real photos."""
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  base = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y
                                                   + rng.uniform()))
                   for _ in range(3)], -1)
  base += 0.03 * rng.standard_normal((height, width, 3))
  return np.clip(base * 255, 0, 255).astype(np.uint8)


def _save(path: pathlib.Path, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, compress_level=6)


def make_lol_tree(root: pathlib.Path, pairs: int) -> None:
  rng = np.random.default_rng(0)
  for folder, count in [('our485', pairs), ('eval15', 2)]:
    for i in range(count):
      high = _photo_like(rng, 400, 600)
      _save(root / f'LOLdataset/{folder}/high/{i}.png', high)
      _save(root / f'LOLdataset/{folder}/low/{i}.png', (high * 0.1).astype(np.uint8))


def make_gopro_tree(root: pathlib.Path, pairs: int) -> None:
  rng = np.random.default_rng(1)
  for split, count in [('train', pairs), ('test', 1)]:
    for i in range(count):
      sharp = _photo_like(rng, 720, 1280)
      for sub in ('sharp', 'blur_gamma'):
        _save(root / f'GOPRO_Large/{split}/GOPR0372_07_00/{sub}/{i:06d}.png', sharp)


def make_nightshot_tree(root: pathlib.Path, photos: int) -> None:
  rng = np.random.default_rng(2)
  for split, count in [('train_LR', photos), ('test_LR', 1)]:
    for i in range(count):
      image = (_photo_like(rng, 960, 1280) * 0.4).astype(np.uint8)
      path = root / f'NightShot/{split}/{i:04d}.jpg'
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(path, quality=92)


def build(name: str, manual_dir: pathlib.Path, data_dir: pathlib.Path) -> float:
  import importlib

  dataset, _, config = name.partition('/')
  module = importlib.import_module(f'tfds_builders.{dataset}')
  builder = module.Builder(config=config or None, data_dir=str(data_dir))
  start = time.perf_counter()
  with sources._quiet_tfds():  # pylint: disable=protected-access
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return time.perf_counter() - start


def throughput(source, batch: int, crop: int, steps: int, threads: int, host_fn=None,
               **kwargs) -> float:
  batches = pipeline.train_batches(source, batch_size=batch, crop_size=crop, seed=0,
                                   host_fn=host_fn, num_threads=threads, **kwargs)
  try:
    next(batches)  # Warm-up: thread start, permutation, first reads.
    start = time.perf_counter()
    for _ in range(steps):
      next(batches)
    return steps * batch / (time.perf_counter() - start)
  finally:
    batches.close()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--crop', type=int, default=256)
  parser.add_argument('--steps', type=int, default=8)
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--lol_pairs', type=int, default=48)
  parser.add_argument('--gopro_pairs', type=int, default=24)
  parser.add_argument('--nightshot_photos', type=int, default=6)
  parser.add_argument('--model_case', default='llflow/small@16x160x160',
                      help='train_speed.py case whose examples/s the pipeline rates are compared '
                           'with (none: no comparison)')
  args = parser.parse_args()
  model_rate = None if args.model_case == 'none' else model_examples_per_s(args.model_case)

  tmp = pathlib.Path(tempfile.mkdtemp(prefix='lljax-bench-data-'))
  try:
    data_dir = tmp / 'tfds'
    print(f'cpus: {os.cpu_count()}  reading threads: {args.threads}  batch {args.batch}, '
          f'crop {args.crop}x{args.crop}\n')
    make_lol_tree(tmp / 'lol_manual', args.lol_pairs)
    make_gopro_tree(tmp / 'gopro_manual', args.gopro_pairs)
    make_nightshot_tree(tmp / 'nightshot_manual', args.nightshot_photos)
    builds = [('lol (600x400)', build('lol', tmp / 'lol_manual', data_dir), args.lol_pairs + 2),
              ('gopro/blur_gamma (1280x720)',
               build('gopro/blur_gamma', tmp / 'gopro_manual', data_dir), args.gopro_pairs + 1),
              ('nightshot/kc8 (1280x960 JPEG, synthesis)',
               build('nightshot/kc8', tmp / 'nightshot_manual', data_dir),
               args.nightshot_photos + 1)]
    start = time.perf_counter()
    sources.ensure_embedded('lowlight', data_dir)
    builds.append(('embedded_photos/lowlight', time.perf_counter() - start, 44))
    print('| build (fake trees at the real image sizes) | examples | seconds | examples/s |')
    print('|---|---|---|---|')
    for name, seconds, pairs in builds:
      print(f'| {name} | {pairs} | {seconds:.1f} | {pairs / seconds:.1f} |')

    from lljax.models import llflow

    hist_eq = lambda ex: llflow.host_features(np.asarray(ex['low']))
    rows = [
        ('embedded_photos/lowlight', 'embedded_photos/lowlight', {}, None),
        ('embedded_photos/lowlight + LLFlow hist-eq', 'embedded_photos/lowlight', {}, hist_eq),
        ('lol (600x400)', 'lol', {}, None),
        ('lol + LLFlow hist-eq', 'lol', {}, hist_eq),
        ('lol + flips + rot90', 'lol', {'vflip': True, 'rot90': True}, None),
        ('gopro (1280x720)', 'gopro/blur_gamma', {}, None),
        ('gopro unpaired + resize 384 (DEvUDP)', 'gopro/blur_gamma',
         {'unpaired': True, 'resize_short': int(1.5 * args.crop)}, None),
    ]
    versus = f' x {args.model_case} step ({model_rate:.2f} ex/s, measured above) |' if model_rate else ''
    print(f'\n| train pipeline | examples/s |{versus}')
    print('|---|---|' + ('---|' if model_rate else ''))
    for label, name, kwargs, host_fn in rows:
      source = sources.open_source(name, 'train', data_dir)
      rate = throughput(source, args.batch, args.crop, args.steps, args.threads, host_fn,
                        **kwargs)
      print(f'| {label} | {rate:.1f} |' + (f' {rate / model_rate:.0f}x |' if model_rate else ''), flush=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  main()
