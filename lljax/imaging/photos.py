"""Real RGB photos that ship inside scikit-image (a hard dependency).

They are loaded from the installed package, never downloaded, so every
machine with scikit-image 0.26 gets bit-identical images. Sources and
licences (as documented by `skimage.data`): astronaut (NASA, public domain),
chelsea (Stefan van der Walt, CC0), coffee (Rachel Michetti / Pikolo
Espresso Bar, CC0), rocket (SpaceX, public domain), motorcycle left/right
(Middlebury 2014 stereo benchmark, Scharstein et al., GCPR 2014),
hubble_deep_field (NASA, public domain).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _skimage(fn_name: str, index: int | None = None) -> Callable[[], np.ndarray]:
  def load() -> np.ndarray:
    import skimage.data  # pylint: disable=g-import-not-at-top  (slow import)

    image = getattr(skimage.data, fn_name)()
    return image if index is None else image[index]

  return load


# name -> loader returning the photo as uint8 HxWx3.
EMBEDDED_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    'astronaut': _skimage('astronaut'),
    'chelsea': _skimage('chelsea'),
    'coffee': _skimage('coffee'),
    'rocket': _skimage('rocket'),
    'motorcycle_left': _skimage('stereo_motorcycle', 0),
    'motorcycle_right': _skimage('stereo_motorcycle', 1),
    'hubble_deep_field': _skimage('hubble_deep_field'),
}

# Test photos never appear in train. Both motorcycle views are train: they
# show the same scene, so one must not be used to test a model trained on the
# other.
TEST_PHOTOS: tuple[str, ...] = ('chelsea', 'coffee')
TRAIN_PHOTOS: tuple[str, ...] = tuple(
    name for name in EMBEDDED_PHOTOS if name not in TEST_PHOTOS)


def load_photo(name: str) -> np.ndarray:
  """Loads one embedded photo.

  Args:
    name: a key of `EMBEDDED_PHOTOS`.

  Returns:
    uint8 array HxWx3 (sRGB, C-contiguous, a fresh copy).
  """
  if name not in EMBEDDED_PHOTOS:
    raise KeyError(f'unknown photo {name!r}; known: {sorted(EMBEDDED_PHOTOS)}')
  image = np.ascontiguousarray(EMBEDDED_PHOTOS[name](), dtype=np.uint8)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'photo {name!r} has shape {image.shape}, expected HxWx3')
  return image.copy()
