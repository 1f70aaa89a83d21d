"""Random-access data sources over prepared TFDS datasets (no TensorFlow).

`open_source("embedded_photos/lowlight", "train")` returns a TFDS
`ArrayRecordDataSource`: `len(source)`, `source[i]` and
`source.__getitems__([i, j])` give dicts of numpy arrays (Image features as
uint8 HxWx3, Text features as bytes, float scalars as Python floats).
The embedded dataset is built on first use; every other dataset must have
been prepared beforehand (`python -m lljax.data.prepare NAME ...`).

Two more kinds of names:
  * '+'-joined names, e.g. "lol_v2/real+lol_v2/synthetic", open one
    concatenated source (`ConcatSource`); its example names are prefixed
    with the part, e.g. "lol_v2/real:low00690".
  * "folder:PATH" opens a folder of images (`FolderSource`), e.g. the
    unpaired test sets LIME, MEF, DICM, NPE and VV or your own photos:
    examples {'low': uint8 HxWx3, 'name', 'file'}, no 'normal'.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterator, Sequence

import numpy as np

FOLDER_PREFIX = 'folder:'

EMBEDDED_DATASET = 'embedded_photos'

DEFAULT_DATA_DIR: str = os.environ.get('TFDS_DATA_DIR') or os.path.expanduser(
    '~/tensorflow_datasets')


class DatasetNotPreparedError(FileNotFoundError):
  """A dataset that is not on disk yet and cannot be built automatically."""


def _parse_name(name: str) -> tuple[str, str | None, str | None]:
  """'ds/config:1.0.0' -> ('ds', 'config', '1.0.0'); parts may be None."""
  name, _, version = name.partition(':')
  dataset, _, config = name.partition('/')
  return dataset, config or None, version or None


def _prepared_dirs(data_dir: pathlib.Path, dataset: str, config: str | None,
                   version: str | None) -> list[pathlib.Path]:
  """Version directories of `dataset` that hold a dataset_info.json."""
  version = version or '*'
  if config:
    patterns = [f'{config}/{version}']
  else:  # Datasets with configs, or without (<dataset>/<version>/).
    patterns = [f'*/{version}', version]
  root = data_dir / dataset
  return [info.parent for pattern in patterns
          for info in root.glob(f'{pattern}/dataset_info.json')
          if 'incomplete' not in info.parent.name]


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
  """Exclusive advisory lock (POSIX flock; no-op where unavailable)."""
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
  except ImportError:  # Windows: the temp-dir + rename below still applies.
    yield
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'a') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
  """Hides TFDS progress bars and its prints (they name the temp dir)."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top

  was_active = getattr(tqdm_utils, '_active', True)
  tqdm_utils.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    tqdm_utils.display_progress_bar(was_active)


def ensure_embedded(config: str | None = None,
                    data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
  """Builds `embedded_photos/<config>` into `data_dir` unless it is there.

  Safe against concurrent callers (e.g. pytest-xdist workers): a lock file
  serialises builders and each build goes to a private temporary directory
  that is renamed into place only when complete.

  Args:
    config: builder config name; None means the default ('lowlight').
    data_dir: TFDS data directory; None means `DEFAULT_DATA_DIR`.

  Returns:
    The prepared version directory, <data_dir>/embedded_photos/<config>/<version>.
  """
  from tfds_builders.embedded_photos import Builder  # pylint: disable=g-import-not-at-top

  config = config or Builder.BUILDER_CONFIGS[0].name
  data_dir = pathlib.Path(data_dir or DEFAULT_DATA_DIR).expanduser().absolute()
  final = data_dir / EMBEDDED_DATASET / config / str(Builder.VERSION)
  if (final / 'dataset_info.json').exists():
    return final
  with _file_lock(data_dir / EMBEDDED_DATASET / f'.{config}.lock'):
    if (final / 'dataset_info.json').exists():  # Built while we waited.
      return final
    print(f'lljax: building {EMBEDDED_DATASET}/{config} into {final}', flush=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{config}-build-', dir=final.parent.parent))
    try:
      with _quiet_tfds():
        Builder(config=config, data_dir=tmp).download_and_prepare()
      built_root = tmp / EMBEDDED_DATASET
      # TFDS's per-dataset metadata (default config name).
      if not (final.parent.parent / '.config').exists():
        shutil.copytree(built_root / '.config', final.parent.parent / '.config',
                        dirs_exist_ok=True)
      built = built_root / config / str(Builder.VERSION)
      try:
        os.rename(built, final)
      except OSError:  # Another process (without flock) finished first.
        if not (final / 'dataset_info.json').exists():
          raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  return final


def open_source(name: str, split: str,
                data_dir: str | os.PathLike[str] | None = None) -> Any:
  """Opens a prepared TFDS dataset split (or a folder) as a random-access source.

  Args:
    name: 'dataset[/config][:version]', e.g. 'embedded_photos/lowlight';
      several joined by '+' for their concatenation, e.g.
      'lol_v2/real+lol_v2/synthetic'; or 'folder:PATH' for a folder of
      images (the split is then ignored).
    split: TFDS split spec, e.g. 'train', 'test', 'train[:10]'.
    data_dir: TFDS data directory; None means `DEFAULT_DATA_DIR`
      (env TFDS_DATA_DIR, else ~/tensorflow_datasets).

  Returns:
    A source with `len()`, `[i]` and `__getitems__`; items are dicts of
    numpy arrays (images uint8 HxWx3) and bytes (text).

  Raises:
    DatasetNotPreparedError: (a FileNotFoundError) a dataset other than the
      embedded one is not prepared in `data_dir`.
  """
  if name.startswith(FOLDER_PREFIX):
    return FolderSource(name[len(FOLDER_PREFIX):])
  if '+' in name:
    parts = [part.strip() for part in name.split('+')]
    if not all(parts):
      raise ValueError(f'bad source name {name!r}: empty part')
    return ConcatSource([(part, open_source(part, split, data_dir)) for part in parts])
  return _open_tfds(name, split, data_dir)


def _open_tfds(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> Any:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  data_dir = pathlib.Path(data_dir or DEFAULT_DATA_DIR).expanduser().absolute()
  dataset, config, version = _parse_name(name)
  if dataset == EMBEDDED_DATASET:
    ensure_embedded(config, data_dir)
  elif not _prepared_dirs(data_dir, dataset, config, version):
    raise DatasetNotPreparedError(
        f'Dataset {name!r} is not prepared in data_dir {data_dir} (found no '
        f'{dataset}/.../dataset_info.json there). Prepare it with\n'
        f'  python -m lljax.data.prepare {dataset} --manual_dir DIR\n'
        'where DIR holds the files you downloaded (see '
        f'tfds_builders/{dataset}/README.md), or point data_dir / '
        'TFDS_DATA_DIR at where it was prepared.')
  return tfds.data_source(name, split=split, data_dir=os.fspath(data_dir),
                          download=False)


def _as_bytes(value: Any) -> bytes:
  if isinstance(value, np.ndarray):
    value = value.item()
  return value if isinstance(value, bytes) else str(value).encode('utf-8')


def example_names(source: Any) -> list[str]:
  """Names of all examples of `source`, without decoding images where possible."""
  if hasattr(source, 'names'):
    return list(source.names())
  features = getattr(getattr(source, 'dataset_info', None), 'features', None)
  if features is not None and hasattr(source, 'decoders'):
    import dataclasses  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    skip = {key: tfds.decode.SkipDecoding() for key, feature in features.items()
            if isinstance(feature, (tfds.features.Image, tfds.features.Tensor))}
    source = dataclasses.replace(source, decoders=skip)
  return [_as_bytes(source[i]['name']).decode('utf-8') for i in range(len(source))]


def skip_decoding(source: Any, keys: Sequence[str]) -> Any:
  """A view of `source` whose image/tensor features `keys` stay encoded (bytes).

  Saves decoding images a consumer does not need (e.g. the unused side of a
  pair in unpaired training). Works on TFDS data sources and on
  `ConcatSource`s of them; other sources are returned unchanged.
  """
  if isinstance(source, ConcatSource):
    return ConcatSource([(label, skip_decoding(part, keys))
                         for label, part in zip(source.labels, source.parts)])
  features = getattr(getattr(source, 'dataset_info', None), 'features', None)
  if features is None or not hasattr(source, 'decoders'):
    return source
  import dataclasses  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  decoders = dict(source.decoders or {})
  decoders.update({key: tfds.decode.SkipDecoding() for key in keys if key in features})
  return dataclasses.replace(source, decoders=decoders)


class ConcatSource:
  """Several random-access sources read as one (indices run through them in order).

  Example names become '<part label>:<name>' so that they stay unique.
  """

  def __init__(self, parts: Sequence[tuple[str, Any]]):
    if not parts:
      raise ValueError('ConcatSource needs at least one part')
    self.labels = [label for label, _ in parts]
    self.parts = [source for _, source in parts]
    self._starts = list(np.cumsum([0] + [len(source) for source in self.parts]))

  def __len__(self) -> int:
    return int(self._starts[-1])

  def _locate(self, index: int) -> tuple[int, int]:
    if index < 0:
      index += len(self)
    if not 0 <= index < len(self):
      raise IndexError(f'index {index} out of range for {len(self)} examples')
    part = bisect.bisect_right(self._starts, index) - 1
    return part, index - int(self._starts[part])

  def __getitem__(self, index: int) -> dict[str, Any]:
    part, local = self._locate(int(index))
    example = dict(self.parts[part][local])
    example['name'] = self.labels[part].encode('utf-8') + b':' + _as_bytes(example['name'])
    return example

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def names(self) -> list[str]:
    return [f'{label}:{name}' for label, source in zip(self.labels, self.parts)
            for name in example_names(source)]

  def __repr__(self) -> str:
    return f"ConcatSource({' + '.join(self.labels)}, {len(self)} examples)"


class FolderSource:
  """The images of a folder and its sub-folders, sorted by path (unpaired).

  For test sets without references (LIME, MEF, DICM, NPE, VV) and your own
  photos. Items: {key: uint8 [H, W, 3] RGB, 'name': bytes (path below the
  folder without extension), 'file': bytes (path below the folder)}.
  Grayscale, palette and 16-bit files are converted to 8-bit RGB; an alpha
  channel is dropped when opaque and refused otherwise; corrupt or
  truncated files raise `lljax.utils.images.ImageReadError` naming the file.
  Files that are not images (by extension) are listed in `ignored`.
  """

  def __init__(self, path: str | os.PathLike[str], key: str = 'low'):
    from lljax.imaging import manual  # pylint: disable=g-import-not-at-top

    self.path = pathlib.Path(path).expanduser()
    self.key = key
    if not self.path.is_dir():
      raise FileNotFoundError(f'image folder {self.path} does not exist')
    files, self.ignored = [], []
    for directory, subdirs, names in os.walk(self.path):
      subdirs[:] = sorted(d for d in subdirs if not d.startswith('.'))
      for name in names:
        rel = os.path.relpath(os.path.join(directory, name), self.path).replace(os.sep, '/')
        if manual.is_junk(name):
          continue
        (files if manual.is_image_name(name) else self.ignored).append(rel)
    if not files:
      raise FileNotFoundError(f'image folder {self.path} holds no images '
                              f'({", ".join(manual.IMAGE_SUFFIXES)})')
    self.files = sorted(files)
    self._names = [rel.rsplit('.', 1)[0] for rel in self.files]
    seen = {}
    for rel, name in zip(self.files, self._names):
      if name in seen:
        raise ValueError(f'{self.path}: {seen[name]} and {rel} would share the name {name!r}')
      seen[name] = rel

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> dict[str, Any]:
    from lljax.imaging import manual  # pylint: disable=g-import-not-at-top
    from lljax.utils import images  # pylint: disable=g-import-not-at-top

    rel = self.files[index]
    path = self.path / rel
    array, info = images.read_image(path)
    try:
      array, _ = manual.to_rgb8(array, info)
    except ValueError as e:
      raise images.ImageReadError(path, str(e)) from e
    return {self.key: array, 'name': self._names[index].encode('utf-8'),
            'file': rel.encode('utf-8')}

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in indices]

  def names(self) -> list[str]:
    return list(self._names)

  def __repr__(self) -> str:
    return f'FolderSource({self.path}, {len(self)} images)'
