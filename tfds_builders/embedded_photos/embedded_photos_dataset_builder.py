"""`embedded_photos` dataset: synthetic degradations of scikit-image photos.

Needs no download and no TensorFlow: images are fed to TFDS as PNG bytes and
the builder writes `array_record` by default (read it with
`tfds.data_source`). Building is deterministic: same pixels every time.
"""

from __future__ import annotations

from concurrent import futures
import dataclasses
import functools
import io
import os
import zlib
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from lljax.data import degrade
from lljax.data import photos

# Crops keep the top-left corner and make H and W multiples of this, so that
# models that downsample by 2, 4 or 8 see whole images.
SIZE_MULTIPLE = 8


def crop_to_multiple(image: np.ndarray, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
  """Top-left aligned crop of an HxWxC array to H, W multiples of `multiple`."""
  h, w = image.shape[:2]
  return image[: h - h % multiple, : w - w % multiple]


def variant_seed(photo: str, variant: int) -> int:
  """Seed of one variant: CRC-32 of '<photo>/<variant>' (stable everywhere)."""
  return zlib.crc32(f'{photo}/{variant}'.encode('utf-8'))


def encode_png(image: np.ndarray) -> bytes:
  """uint8 HxWx3 -> PNG bytes (PIL; deterministic, lossless)."""
  buffer = io.BytesIO()
  # Level 1: noisy images barely compress better at higher levels (~15%)
  # but encode 3-4x slower, and build time matters more here.
  Image.fromarray(image).save(buffer, format='PNG', compress_level=1)
  return buffer.getvalue()


@dataclasses.dataclass(eq=False)
class EmbeddedPhotosConfig(tfds.core.BuilderConfig):
  """Which degradations a config applies and how many variants per photo.

  Attributes:
    lowlight: apply `lljax.data.degrade.synthesize_low_light`.
    lowlight_params: its parameter ranges.
    train_variants: degraded variants of each train photo.
    test_variants: degraded variants of each test photo.
  """

  # Later configs ('blur', 'lowlight_blur') add a flag and features here.
  lowlight: bool = False
  lowlight_params: degrade.LowLightParams = degrade.LowLightParams()
  train_variants: int = 8
  test_variants: int = 2


class Builder(tfds.core.GeneratorBasedBuilder):
  """Low-light pairs made from photos that ship inside scikit-image."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': (
          "Initial release: config 'lowlight' (exposure 0.01-0.1 in linear "
          'RGB, Poisson-Gaussian noise, 8-bit sRGB); train 5 photos x 8 '
          'variants, test 2 photos x 2 variants.'
      ),
  }
  BUILDER_CONFIGS = [
      EmbeddedPhotosConfig(
          name='lowlight',
          description=(
              'Under-exposure in linear RGB + Poisson shot noise + Gaussian '
              'read noise, 8-bit sRGB output.'
          ),
          lowlight=True,
      ),
  ]

  def __init__(self, *, file_format: str | None = None, **kwargs: Any):
    # TFDS defaults to tfrecord, which needs TensorFlow to write.
    super().__init__(file_format=file_format or 'array_record', **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    image = lambda doc: tfds.features.Image(
        shape=(None, None, 3), dtype=np.uint8, encoding_format='png', doc=doc)
    scalar = lambda doc: tfds.features.Scalar(dtype=np.float32, doc=doc)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'low': image('degraded sRGB image, uint8 HxWx3'),
            'normal': image('reference sRGB image (the cropped photo)'),
            'name': tfds.features.Text(doc='unique id, <photo>_v<variant:02d>'),
            'photo': tfds.features.Text(doc='source photo name'),
            'exposure': scalar('exposure factor in linear RGB'),
            'photons': scalar('photo-electrons at white after darkening'),
            'read_sigma': scalar('read noise std, linear units of white'),
        }),
        supervised_keys=('low', 'normal'),
        homepage='https://scikit-image.org/docs/stable/api/skimage.data.html',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    return {
        'train': self._generate_examples(photos.TRAIN_PHOTOS, config.train_variants),
        'test': self._generate_examples(photos.TEST_PHOTOS, config.test_variants),
    }

  def _degrade(self, normal: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Applies the config's degradations to uint8 HxWx3 `normal`."""
    config = self.builder_config
    if not config.lowlight:
      raise NotImplementedError(f'config {config.name!r} has no degradation')
    return degrade.synthesize_low_light(normal, seed, config.lowlight_params)

  def _generate_examples(
      self, photo_names: Sequence[str], num_variants: int
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    # Variants are independent (own seed), so threads (numpy and PIL release
    # the GIL) cut the build time without changing any pixel.
    with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
      for photo in photo_names:
        normal = crop_to_multiple(photos.load_photo(photo))
        normal_png = encode_png(normal)
        make = functools.partial(self._make_example, photo, normal=normal,
                                 normal_png=normal_png)
        yield from pool.map(make, range(num_variants))

  def _make_example(
      self, photo: str, variant: int, normal: np.ndarray, normal_png: bytes
  ) -> tuple[str, dict[str, Any]]:
    low, info = self._degrade(normal, variant_seed(photo, variant))
    name = f'{photo}_v{variant:02d}'
    return name, {
        'low': encode_png(low),
        'normal': normal_png,
        'name': name,
        'photo': photo,
        'exposure': np.float32(info['exposure']),
        'photons': np.float32(info['photons']),
        'read_sigma': np.float32(info['read_sigma']),
    }
