"""Random-access data sources over prepared TFDS datasets (no TensorFlow).

`open_source("embedded_photos/lowlight", "train")` returns a TFDS
`ArrayRecordDataSource`: `len(source)`, `source[i]` and
`source.__getitems__([i, j])` give dicts of numpy arrays (Image features as
uint8 HxWx3, Text features as bytes, float scalars as Python floats).
The embedded dataset is built on first use; every other dataset must have
been prepared beforehand.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterator

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
  """Opens a prepared TFDS dataset split as a random-access source.

  Args:
    name: 'dataset[/config][:version]', e.g. 'embedded_photos/lowlight'.
    split: TFDS split spec, e.g. 'train', 'test', 'train[:10]'.
    data_dir: TFDS data directory; None means `DEFAULT_DATA_DIR`
      (env TFDS_DATA_DIR, else ~/tensorflow_datasets).

  Returns:
    A TFDS data source: `len()`, `[i]`, `__getitems__`; items are dicts of
    numpy arrays (images uint8 HxWx3) and bytes (text).

  Raises:
    DatasetNotPreparedError: (a FileNotFoundError) `name` is not the
      embedded dataset and is not prepared in `data_dir`.
  """
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
