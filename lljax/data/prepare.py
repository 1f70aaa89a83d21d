"""Prepares lljax's TFDS datasets from manual downloads, without TensorFlow.

    python -m lljax.data.prepare lol --manual_dir ~/Downloads
    python -m lljax.data.prepare lol_v2/real gopro --manual_dir ~/data --data_dir ~/tensorflow_datasets
    python -m lljax.data.prepare embedded_photos/blur        # no download needed

NAME is a builder of `tfds_builders` (lol, lol_v2, lol_blur, gopro,
realblur_j, nightshot, embedded_photos), optionally with '/CONFIG'; without
a config every config is prepared. `--manual_dir` holds the downloaded
archive(s) or the extracted folder(s) (see tfds_builders/<name>/README.md).
Each dataset is built in a private temporary folder and moved into
`<data_dir>/<name>/<config>/<version>` only when complete, so an existing
copy is never lost; prepared copies are kept unless `--overwrite`. The sha256
of the archive and of every file read is saved in the dataset's
metadata.json and summarised here, so two builds can be compared.

With TensorFlow installed (the `tf` extra) the builders also work through
TFDS's own API, e.g. `Builder(file_format='tfrecord').download_and_prepare(
download_config=tfds.download.DownloadConfig(manual_dir=DIR))` and
`as_dataset()`. The `tfds build` CLI of tensorflow-datasets 4.9.10 in
addition imports apache_beam when it starts, and apache-beam's current
release pins pillow < 13 and protobuf < 7, which conflict with lljax's pins;
`python -m lljax.data.tfds_cli build tfds_builders/lol --manual_dir DIR`
runs that CLI unmodified without Beam (see `lljax.data.tfds_cli`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Any, Sequence

from lljax.data import sources
from lljax.imaging import manual

BUILDERS = ('lol', 'lol_v2', 'lol_blur', 'gopro', 'realblur_j', 'nightshot', 'embedded_photos')


class PrepareError(Exception):
  """A problem the user must fix (one line, no traceback)."""


def builder_class(dataset: str) -> Any:
  if dataset not in BUILDERS:
    raise PrepareError(f'unknown dataset {dataset!r}; known: {", ".join(BUILDERS)}')
  return importlib.import_module(f'tfds_builders.{dataset}').Builder


def _configs(builder_cls: Any, config: str | None) -> list[str | None]:
  names = [c.name for c in builder_cls.BUILDER_CONFIGS]
  if config is None:
    return names or [None]
  if config not in names:
    raise PrepareError(f'{builder_cls.name} has no config {config!r}; configs: {", ".join(names)}')
  return [config]


def _final_dir(data_dir: pathlib.Path, builder_cls: Any, config: str | None) -> pathlib.Path:
  parts = [builder_cls.name] + ([config] if config else []) + [str(builder_cls.VERSION)]
  return data_dir.joinpath(*parts)


def prepare(name: str, manual_dir: str | os.PathLike[str] | None,
            data_dir: str | os.PathLike[str], *, overwrite: bool = False,
            extract_dir: str | os.PathLike[str] | None = None,
            quiet: bool = False) -> list[dict[str, Any]]:
  """Builds every requested config of one dataset; returns one summary per config.

  Args:
    name: 'dataset' or 'dataset/config'.
    manual_dir: folder with the downloads (unused by embedded_photos).
    data_dir: TFDS data directory to prepare into.
    overwrite: rebuild configs that are already prepared.
    extract_dir: where archives are extracted temporarily (default: a
      folder inside the private build folder under data_dir).
    quiet: hide TFDS's progress bars.

  Raises:
    PrepareError, manual.ManualDataError: problems to report to the user.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  dataset, _, config = name.partition('/')
  builder_cls = builder_class(dataset)
  needs_manual = dataset != sources.EMBEDDED_DATASET
  if needs_manual:
    if manual_dir is None:
      raise PrepareError(f'{dataset} needs --manual_dir (the folder with your download)')
    manual_dir = pathlib.Path(manual_dir).expanduser()
    if manual_dir.is_file():
      raise PrepareError(f'manual_dir {manual_dir} is a file; pass the folder that holds it')
    if not manual_dir.is_dir():
      raise PrepareError(f'manual_dir {manual_dir} does not exist')
  data_dir = pathlib.Path(data_dir).expanduser().absolute()
  summaries = []
  for config_name in _configs(builder_cls, config or None):
    label = f'{dataset}/{config_name}' if config_name else dataset
    final = _final_dir(data_dir, builder_cls, config_name)
    if (final / 'dataset_info.json').exists() and not overwrite:
      print(f'{label}: already prepared in {final} (--overwrite to rebuild)', flush=True)
      summaries.append(summarize(label, final, None))
      continue
    print(f'{label}: preparing into {final}', flush=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{dataset}-build-', dir=data_dir))
    start = time.perf_counter()
    try:
      kwargs = {'config': config_name} if config_name else {}
      if needs_manual:
        kwargs['extract_dir'] = extract_dir
      builder = builder_cls(data_dir=str(tmp), **kwargs)
      download_config = tfds.download.DownloadConfig(
          manual_dir=str(manual_dir) if needs_manual else None)
      if quiet:
        with sources._quiet_tfds():  # pylint: disable=protected-access
          builder.download_and_prepare(download_config=download_config)
      else:
        builder.download_and_prepare(download_config=download_config)
      _move_into_place(tmp, data_dir, final, builder_cls.name)
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
    summaries.append(summarize(label, final, time.perf_counter() - start))
  return summaries


def _move_into_place(tmp: pathlib.Path, data_dir: pathlib.Path, final: pathlib.Path,
                     dataset: str) -> None:
  """Moves the finished build in `tmp` (a data_dir) to `final`, replacing it last."""
  built = tmp / final.relative_to(data_dir)
  final.parent.mkdir(parents=True, exist_ok=True)
  config_meta = tmp / dataset / '.config'
  if config_meta.exists():  # TFDS's per-dataset record of the default config.
    shutil.copytree(config_meta, data_dir / dataset / '.config', dirs_exist_ok=True)
  old = None
  if final.exists():
    old = final.with_name(f'.{final.name}.old-{os.getpid()}')
    os.rename(final, old)
  os.rename(built, final)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def summarize(label: str, path: pathlib.Path, seconds: float | None) -> dict[str, Any]:
  """Split sizes and provenance of a prepared dataset (from its JSON files)."""
  info = json.loads((path / 'dataset_info.json').read_text())
  splits = {s['name']: sum(int(n) for n in s.get('shardLengths', [])) for s in info.get('splits', [])}
  meta_path = path / 'metadata.json'
  meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
  return {'dataset': label, 'path': str(path), 'splits': splits, 'seconds': seconds,
          'sources': meta.get('sources', []), 'files_digest': meta.get('files_digest'),
          'num_files': meta.get('num_files'),
          'converted': len(meta.get('converted_files', {})),
          'ignored': len(meta.get('ignored_files', []))}


def _print_summary(summary: dict[str, Any]) -> None:
  splits = ', '.join(f'{name} {count}' for name, count in sorted(summary['splits'].items()))
  took = f' in {summary["seconds"]:.1f} s' if summary['seconds'] is not None else ''
  print(f'{summary["dataset"]}: {splits}{took} -> {summary["path"]}')
  for source in summary['sources']:
    sha = f' sha256 {source["sha256"]}' if 'sha256' in source else ''
    print(f'  read {source["kind"]} {source["path"]}{sha}')
  if summary['files_digest']:
    print(f'  {summary["num_files"]} files, digest of their sha256 list: {summary["files_digest"]}')
  if summary['converted'] or summary['ignored']:
    print(f'  {summary["converted"]} images converted, {summary["ignored"]} non-image files '
          'ignored (listed in metadata.json)')


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m lljax.data.prepare',
      description='Prepare TFDS datasets from manual downloads (no TensorFlow needed).')
  parser.add_argument('names', nargs='+', metavar='NAME',
                      help=f'dataset[/config]; datasets: {", ".join(BUILDERS)}')
  parser.add_argument('--manual_dir', help='folder holding the downloaded archive or folder')
  parser.add_argument('--data_dir', default=sources.DEFAULT_DATA_DIR,
                      help='TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)')
  parser.add_argument('--extract_dir', help='where archives are extracted temporarily')
  parser.add_argument('--overwrite', action='store_true', help='rebuild prepared datasets')
  parser.add_argument('--quiet', action='store_true', help='no progress bars')
  args = parser.parse_args(argv)
  try:
    for name in args.names:
      for summary in prepare(name, args.manual_dir, args.data_dir, overwrite=args.overwrite,
                             extract_dir=args.extract_dir, quiet=args.quiet):
        _print_summary(summary)
  except (PrepareError, manual.ManualDataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
