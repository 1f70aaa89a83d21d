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

from lljax.imaging import camera
from lljax.imaging import lowlight as lowlight_lib
from lljax.imaging import motion
from lljax.imaging import photos

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
    lowlight: darken + Poisson-Gaussian noise
      (`lljax.imaging.lowlight.synthesize_low_light`).
    blur: motion blur in linear light with a stored kernel; with `lowlight`
      the blur comes first (`lljax.imaging.lowlight.synthesize_low_light_blur`),
      alone it is `lljax.imaging.motion.synthesize_blur`.
    night_noise: instead, INFWIDE's recipe (`camera.synthesize_night_blur`:
      blur + INFWIDE's camera noise) with these parameters for train photos;
      test photos use them with kc = `night_test_kc`.
    night_test_kc: total camera gain of the test photos (night_noise only).
    lowlight_params: low-light parameter ranges.
    train_variants: degraded variants of each train photo.
    test_variants: degraded variants of each test photo.
    train_photos, test_photos: the photos of each split (default: the
      fixed split of `lljax.imaging.photos`).
  """

  lowlight: bool = False
  blur: bool = False
  night_noise: camera.CameraNoiseParams | None = None
  night_test_kc: float = 8.0
  lowlight_params: lowlight_lib.LowLightParams = lowlight_lib.LowLightParams()
  train_variants: int = 8
  test_variants: int = 2
  train_photos: tuple[str, ...] = photos.TRAIN_PHOTOS
  test_photos: tuple[str, ...] = photos.TEST_PHOTOS


class Builder(tfds.core.GeneratorBasedBuilder):
  """Low-light pairs made from photos that ship inside scikit-image."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': (
          "Initial release: config 'lowlight' (exposure 0.01-0.1 in linear "
          'RGB, Poisson-Gaussian noise, 8-bit sRGB); train 5 photos x 8 '
          "variants, test 2 photos x 2 variants. Configs 'blur', "
          "'lowlight_blur' and 'night_blur' were added later without "
          "changing 'lowlight'."
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
      EmbeddedPhotosConfig(
          name='blur',
          description=(
              'Motion blur (random camera-trajectory kernel, 37x37, circular) '
              'in linear RGB, 8-bit sRGB output; kernel stored.'
          ),
          blur=True,
      ),
      EmbeddedPhotosConfig(
          name='lowlight_blur',
          description=(
              'Motion blur in linear RGB, then the lowlight degradation; '
              'kernel stored.'
          ),
          lowlight=True,
          blur=True,
      ),
      EmbeddedPhotosConfig(
          name='night_blur',
          description=(
              "INFWIDE's recipe: circular motion blur of the sRGB image and "
              "INFWIDE's CMOS camera noise (train kc in 4..15, test kc 8); "
              'kernel stored.'
          ),
          night_noise=camera.CameraNoiseParams(),
      ),
  ]

  def __init__(self, *, file_format: str | None = None, **kwargs: Any):
    # TFDS defaults to tfrecord, which needs TensorFlow to write.
    super().__init__(file_format=file_format or 'array_record', **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    image = lambda doc: tfds.features.Image(
        shape=(None, None, 3), dtype=np.uint8, encoding_format='png', doc=doc)
    scalar = lambda doc: tfds.features.Scalar(dtype=np.float32, doc=doc)
    features = {
        'low': image('degraded sRGB image, uint8 HxWx3'),
        'normal': image('reference sRGB image (the cropped photo)'),
        'name': tfds.features.Text(doc='unique id, <photo>_v<variant:02d>'),
        'photo': tfds.features.Text(doc='source photo name'),
    }
    if config.lowlight:
      features.update({
          'exposure': scalar('exposure factor in linear RGB'),
          'photons': scalar('photo-electrons at white after darkening'),
          'read_sigma': scalar('read noise std, linear units of white'),
      })
    if config.blur or config.night_noise is not None:
      size = motion.KERNEL_SIZE
      features['kernel'] = tfds.features.Tensor(
          shape=(size, size), dtype=np.float32, doc='motion-blur kernel, unit sum')
    if config.night_noise is not None:
      features.update({
          'kc': scalar('total camera gain kc'),
          'sigma_beta': scalar('row-gain noise std'),
          'sigma_r': scalar('read-noise std (electrons)'),
          'dark_current': scalar('mean dark current (electrons)'),
      })
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('low', 'normal'),
        homepage='https://scikit-image.org/docs/stable/api/skimage.data.html',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    return {
        'train': self._generate_examples(config.train_photos, config.train_variants, 'train'),
        'test': self._generate_examples(config.test_photos, config.test_variants, 'test'),
    }

  def _degrade(self, normal: np.ndarray, seed: int,
               split: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Applies the config's degradations to uint8 HxWx3 `normal`.

    Returns (low uint8 HxWx3, the feature values the config stores).
    """
    config = self.builder_config
    if config.night_noise is not None:
      params = config.night_noise
      if split == 'test':
        params = dataclasses.replace(params, kc=config.night_test_kc)
      low, kernel, info = camera.synthesize_night_blur(normal, seed, params)
      keys = ('kc', 'sigma_beta', 'sigma_r', 'dark_current')
      return low, {'kernel': kernel, **{k: np.float32(info[k]) for k in keys}}
    if config.lowlight and config.blur:
      low, kernel, info = lowlight_lib.synthesize_low_light_blur(
          normal, seed, config.lowlight_params)
    elif config.blur:
      low, kernel, info = motion.synthesize_blur(normal, seed)
    elif config.lowlight:
      low, info = lowlight_lib.synthesize_low_light(normal, seed, config.lowlight_params)
      kernel = None
    else:
      raise NotImplementedError(f'config {config.name!r} has no degradation')
    values = {}
    if config.lowlight:
      values = {k: np.float32(info[k]) for k in ('exposure', 'photons', 'read_sigma')}
    if kernel is not None:
      values['kernel'] = kernel
    return low, values

  def _generate_examples(
      self, photo_names: Sequence[str], num_variants: int, split: str = 'train'
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    # Variants are independent (own seed), so threads (numpy and PIL release
    # the GIL) cut the build time without changing any pixel.
    with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
      for photo in photo_names:
        normal = crop_to_multiple(photos.load_photo(photo))
        normal_png = encode_png(normal)
        make = functools.partial(self._make_example, photo, normal=normal,
                                 normal_png=normal_png, split=split)
        yield from pool.map(make, range(num_variants))

  def _make_example(
      self, photo: str, variant: int, normal: np.ndarray, normal_png: bytes,
      split: str = 'train'
  ) -> tuple[str, dict[str, Any]]:
    low, values = self._degrade(normal, variant_seed(photo, variant), split)
    name = f'{photo}_v{variant:02d}'
    return name, {
        'low': encode_png(low),
        'normal': normal_png,
        'name': name,
        'photo': photo,
        **values,
    }
