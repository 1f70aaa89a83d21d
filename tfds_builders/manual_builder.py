"""Base of lljax's builders for manually downloaded image datasets.

Subclasses describe the official layout (`_layout`), list the examples of
each split (`_split_items`: pairing is checked here, before anything is
written) and may add features (`_extra_features`) or replace example making
(`_make_example`). The base finds the data under `manual_dir` (an archive or
its extracted folder, see `lljax.imaging.finder`), reads every image with full
validation on a thread pool, writes `array_record` (no TensorFlow needed)
and saves, in the dataset's `metadata.json`, the sha256 of the archive and
of every file it read.

Feature convention of all paired lljax datasets: `low` is the degraded input
(dark, blurry or both) and `normal` the clean reference, both uint8 RGB
PNG; `name` is a unique id; `low_file` / `normal_file` the source files'
paths inside the dataset root.
"""

from __future__ import annotations

import collections
from concurrent import futures
import dataclasses
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from lljax.imaging import finder
from lljax.imaging import manual


@dataclasses.dataclass(frozen=True)
class Item:
  """One example to build.

  Attributes:
    name: unique id within the split (also the TFDS key).
    low: input file, relative to the dataset root.
    normal: target file, relative to the dataset root (None: unpaired).
    extra: further feature values (e.g. {'scene': ...}).
  """

  name: str
  low: str
  normal: str | None = None
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def image_feature(doc: str) -> tfds.features.Image:
  return tfds.features.Image(shape=(None, None, 3), dtype=np.uint8,
                             encoding_format='png', doc=doc)


def bounded_map(fn: Callable[[Any], Any], items: Iterable[Any],
                threads: int | None = None) -> Iterator[Any]:
  """`map(fn, items)` on a thread pool, in order, with few results in flight."""
  threads = threads or os.cpu_count() or 1
  with futures.ThreadPoolExecutor(threads) as pool:
    pending: collections.deque = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 2 * threads:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


class ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A `GeneratorBasedBuilder` over a manual download checked by lljax.imaging.manual."""

  HOMEPAGE = ''
  # True when `low` is synthesised by the builder (no low_file feature).
  SYNTHETIC_LOW = False

  def __init__(self, *, file_format: str | None = None,
               extract_dir: str | os.PathLike[str] | None = None, **kwargs: Any):
    """Args as tfds.core.GeneratorBasedBuilder, plus:

    Args:
      file_format: default 'array_record' (tfrecord needs TensorFlow).
      extract_dir: where archives are extracted temporarily (default:
        <data_dir>/downloads/extracted); the copy is removed after building.
    """
    super().__init__(file_format=file_format or 'array_record', **kwargs)
    self._extract_dir = extract_dir
    self._roots: list[manual.DataRoot] = []

  # To override ---------------------------------------------------------------

  def _layout(self) -> manual.Layout:
    raise NotImplementedError

  def _split_items(self, root: manual.DataRoot) -> dict[str, Sequence[Item]]:
    raise NotImplementedError

  def _extra_features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {}

  def _make_example(self, root: manual.DataRoot, split: str, item: Item) -> dict[str, Any]:
    low, normal = root.read_pair(item.low, item.normal)
    return {'low': low.data, 'normal': normal.data, 'low_file': item.low,
            'normal_file': item.normal, **item.extra}

  def _feature_docs(self) -> tuple[str, str]:
    return 'degraded input, uint8 RGB', 'clean reference, uint8 RGB'

  # TFDS hooks ----------------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    low_doc, normal_doc = self._feature_docs()
    features = {
        'low': image_feature(low_doc),
        'normal': image_feature(normal_doc),
        'name': tfds.features.Text(doc='unique id of the example'),
        'low_file': tfds.features.Text(doc='source file of low, relative to the dataset root'),
        'normal_file': tfds.features.Text(doc='source file of normal, relative to the dataset root'),
        **self._extra_features(),
    }
    if self.SYNTHETIC_LOW:
      del features['low_file']
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=('low', 'normal'),
        homepage=self.HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = self._locate(dl_manager)
    splits = self._split_items(root)
    for split, items in splits.items():
      if not items:
        raise manual.ManualDataError(f'{root.display("")}: no images for split {split!r}')
      names = collections.Counter(item.name for item in items)
      duplicate = next((n for n, c in names.items() if c > 1), None)
      if duplicate is not None:
        raise manual.ManualDataError(
            f'{root.display("")}: two {split} examples would be named {duplicate!r}')
    return {split: self._generate(root, split, items) for split, items in splits.items()}

  def _download_and_prepare(self, dl_manager, download_config):  # pytype: disable=signature-mismatch
    try:
      result = super()._download_and_prepare(dl_manager, download_config)
      for root in self._roots:
        _report(self.name, root)
      return result
    finally:
      for root in self._roots:
        root.cleanup()
      self._roots.clear()

  def _generate_examples(self, *args, **kwargs):  # Unused: see _generate.
    raise NotImplementedError

  # Internals -----------------------------------------------------------------

  def _locate(self, dl_manager: tfds.download.DownloadManager) -> manual.DataRoot:
    layout = self._layout()
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError as e:  # TFDS: missing or empty manual_dir.
      missing = getattr(dl_manager, '_manual_dir', None)
      raise manual.ManualDataError(
          f'manual_dir {missing} is missing or empty; put {layout.expected()} '
          f'there (see MANUAL_DOWNLOAD_INSTRUCTIONS of {self.name})') from e
    extract_dir = self._extract_dir or os.fspath(dl_manager.download_dir / 'extracted')
    root = finder.locate(manual_dir, layout, extract_dir)
    self._roots.append(root)
    logging.info('%s: reading %s', self.name, root.display(''))
    return root

  def _generate(self, root: manual.DataRoot, split: str,
                items: Sequence[Item]) -> Iterator[tuple[str, dict[str, Any]]]:
    def make(item: Item) -> tuple[str, dict[str, Any]]:
      return item.name, {'name': item.name, **self._make_example(root, split, item)}

    yield from bounded_map(make, items)
    self.info.metadata.update(root.metadata())


def _report(name: str, root: manual.DataRoot) -> None:
  """Logs the files that were not stored byte for byte or not read at all."""
  if root.ignored:
    logging.warning('%s: ignored %d non-image files, e.g. %s (listed in metadata.json)',
                    name, len(root.ignored), root.display(root.ignored[0]))
  if root.converted:
    rel, note = next(iter(sorted(root.converted.items())))
    logging.warning('%s: converted %d images, e.g. %s (%s; listed in metadata.json)',
                    name, len(root.converted), root.display(rel), note)


def stem(path: str) -> str:
  """'a/b/c.png' -> 'c'."""
  name = path.rsplit('/', 1)[-1]
  return name.rsplit('.', 1)[0] if '.' in name else name


def relative_to(path: str, folder: str) -> str:
  """'f/x/y.png' relative to 'f' -> 'x/y.png'."""
  return path[len(folder) + 1:] if folder else path
