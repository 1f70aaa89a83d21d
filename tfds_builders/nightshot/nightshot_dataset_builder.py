"""`nightshot` dataset: NightShot (Zhang et al., INFWIDE, TIP 2023), 3 000 / 200 night photos.

NightShot ships sharp night photos only. Each example gets a blurred, noisy
input synthesised deterministically with INFWIDE's recipe
(`lljax.imaging.camera.synthesize_night_blur`: a random camera-trajectory
kernel in a 37x37 support, circular blur, INFWIDE's CMOS low-light noise
model); the kernel and the drawn noise parameters are stored with the
example. Built from NightShot.zip or its extracted folder; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from tfds_builders import manual_builder
from lljax.imaging import camera
from lljax.imaging import manual
from lljax.imaging import motion

tfds = manual_builder.tfds

TRAIN_NOISE = camera.CameraNoiseParams()  # kc in {4, ..., 15}, as INFWIDE trains.


@dataclasses.dataclass(eq=False)
class NightShotConfig(tfds.core.BuilderConfig):
  """Attributes:
    train_noise: camera-noise parameters of the train split.
    test_noise: camera-noise parameters of the test split.
  """

  train_noise: camera.CameraNoiseParams = TRAIN_NOISE
  test_noise: camera.CameraNoiseParams = dataclasses.replace(TRAIN_NOISE, kc=8.0)


LAYOUT = manual.Layout(
    dataset='NightShot',
    description='NightShot/{train*,test*}/... images (.jpg/.png; e.g. NightShot/train_LR/)',
    required_dirs=('NightShot*/train*', 'NightShot*/test*'),
    archives=('NightShot.zip', 'NightShot.tar.gz', 'NightShot.tar'),
)


def example_seed(split: str, rel: str) -> int:
  """Seed of one example: CRC-32 of '<split>/<path inside the split folder>'."""
  return zlib.crc32(f'{split}/{rel}'.encode('utf-8'))


class Builder(manual_builder.ManualBuilder):
  """NightShot: sharp night photos, synthetic blurry noisy inputs, kernels."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: configs kc8 and kc4 (test gain).'}
  HOMEPAGE = 'https://github.com/zhihongz/INFWIDE'
  SYNTHETIC_LOW = True
  BUILDER_CONFIGS = [
      NightShotConfig(name='kc8', description=(
          'train: kc in {4..15}; test: kc = 8 (the gain of the paper benchmark folder blur_kc8).')),
      NightShotConfig(name='kc4', description=(
          "train: kc in {4..15}; test: kc = 4 (INFWIDE's demo test configuration)."),
                      test_noise=dataclasses.replace(TRAIN_NOISE, kc=4.0)),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download NightShot from the INFWIDE README (Google Drive file
  1woLLJU1RxsXehXOZpCRTX-1ep8IxIbTP, or BaiduDisk with password 0000) and put
  NightShot.zip -- or a folder NightShot/ holding one train* folder (e.g.
  train_LR/) and one test* folder of images -- into manual_dir. If the
  archive does not extract to a NightShot/ folder, extract it into one.
  """

  def _layout(self):
    return LAYOUT

  def _extra_features(self):
    scalar = lambda doc: tfds.features.Scalar(dtype=np.float32, doc=doc)
    return {
        'kernel': tfds.features.Tensor(shape=(motion.KERNEL_SIZE, motion.KERNEL_SIZE),
                                       dtype=np.float32, doc='blur kernel, unit sum'),
        'seed': tfds.features.Scalar(dtype=np.int64, doc='synthesis seed'),
        'kc': scalar('total camera gain kc'),
        'sigma_beta': scalar('row-gain noise std'),
        'sigma_r': scalar('read-noise std (electrons)'),
        'dark_current': scalar('mean dark current (electrons)'),
    }

  def _feature_docs(self):
    return ('blurred noisy camera output, uint8 RGB; INFWIDE input = '
            'lljax.imaging.camera.saturate(low)'), 'sharp photo, uint8 RGB'

  def _split_items(self, root):
    (dataset_dir,) = self._unique(root, '', 'nightshot*', must_hold=('train*', 'test*'))
    splits = {}
    for split in ('train', 'test'):
      (folder,) = self._unique(root, dataset_dir, f'{split}*')
      items = []
      for path in root.list_images(folder, recursive=True):
        rel = manual_builder.relative_to(path, folder)
        items.append(manual_builder.Item(rel.rsplit('.', 1)[0].replace('/', '_'), path, None,
                                         {'seed': example_seed(split, rel)}))
      splits[split] = items
    return splits

  def _unique(self, root, parent, pattern, must_hold=()):
    """The one sub-folder of `parent` matching `pattern` (holding `must_hold`)."""
    matches = []
    for name in root.list_dir(parent):
      child = f'{parent}/{name}' if parent else name
      if not manual.matches(name, pattern) or not (root.path / child).is_dir():
        continue
      if all(any(manual.matches(sub, p) for sub in root.list_dir(child)) for p in must_hold):
        matches.append(child)
    if len(matches) != 1:
      found = ', '.join(matches) if matches else 'none'
      raise root.error(parent, f'expected exactly one folder matching {pattern!r} (found '
                       f'{found}); layout {LAYOUT.description}')
    return matches

  def _make_example(self, root, split, item):
    sharp = root.read(item.low)
    height, width = sharp.array.shape[:2]
    if min(height, width) < motion.KERNEL_SIZE:
      raise root.error(item.low, f'is {width}x{height}, smaller than the '
                       f'{motion.KERNEL_SIZE}x{motion.KERNEL_SIZE} blur kernel')
    config = self.builder_config
    noise = config.train_noise if split == 'train' else config.test_noise
    blurry, kernel, info = camera.synthesize_night_blur(sharp.array, item.extra['seed'], noise)
    return {
        'low': manual.encode_png(blurry),
        'normal': sharp.data,
        'normal_file': item.low,
        'kernel': kernel,
        'seed': np.int64(item.extra['seed']),
        **{key: np.float32(info[key]) for key in ('kc', 'sigma_beta', 'sigma_r', 'dark_current')},
    }
