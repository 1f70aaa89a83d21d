"""Finding a manual download: an extracted folder or a known archive.

`locate(manual_dir, layout)` finds the dataset's root (the folder that holds
every entry of its `lljax.imaging.manual.Layout`) either as an extracted
folder under `manual_dir` (searched a few levels deep) or inside a known
archive (.zip, .tar, .tar.gz/.tgz), which is then extracted -- only the
members the layout needs -- into a private temporary folder. The result is a
`lljax.imaging.manual.DataRoot` that also records the archive's sha256.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import zipfile
from typing import Iterator, Sequence

from lljax.imaging import manual

_SEARCH_DEPTH = 3  # Levels below manual_dir searched for an extracted root.


def _missing(present: set[str], root: str, layout: manual.Layout) -> list[str]:
  prefix = f'{root}/' if root else ''
  missing = []
  for req in layout.required:
    if any(ch in req for ch in '*?['):
      pattern = prefix + req
      if not any(manual.matches(p, pattern) for p in present):
        missing.append(req)
    elif prefix + req not in present:
      missing.append(req)
  return missing


def _best_root(paths: set[str], layout: manual.Layout) -> tuple[str | None, str | None, list[str]]:
  """Among the directories of `paths`, the root with every required entry.

  Args:
    paths: posix paths (directories and files) relative to a container.
    layout: the expected layout.

  Returns:
    (root, None, []) when exactly one root holds everything ('' = the
    container itself); (None, partial_root, missing) for the candidate that
    holds the most required entries otherwise (partial_root None when no
    directory holds any).

  Raises:
    manual.ManualDataError: several complete roots (ambiguous).
  """
  dirs = {''} | {p.rsplit('/', 1)[0] if '/' in p else '' for p in paths}
  complete, best, best_missing = [], None, None
  for root in sorted(dirs):
    missing = _missing(paths, root, layout)
    if not missing:
      complete.append(root)
    elif len(missing) < len(layout.required) and (
        best_missing is None or len(missing) < len(best_missing)):
      best, best_missing = root, missing
  if len(complete) > 1:
    raise manual.ManualDataError(
        f'{layout.dataset}: found several copies of the dataset: '
        f"{', '.join(repr(c or '.') for c in complete)}; keep one")
  if complete:
    return complete[0], None, []
  return None, best, best_missing or []


def _walk_dirs(top: pathlib.Path, depth: int) -> Iterator[tuple[pathlib.Path, int]]:
  yield top, 0
  if depth == 0:
    return
  try:
    entries = sorted(os.scandir(top), key=lambda e: e.name)
  except OSError:
    return
  for entry in entries:
    if entry.is_dir(follow_symlinks=True) and not manual.is_junk(entry.name):
      for sub, level in _walk_dirs(pathlib.Path(entry.path), depth - 1):
        yield sub, level + 1


def _folder_paths(base: pathlib.Path, depth: int, file_names: set[str]) -> set[str]:
  """Posix paths under `base` (`depth` levels): all directories, and the
  files whose name is in `file_names`."""
  out = set()
  for directory, _ in _walk_dirs(base, depth):
    rel = directory.relative_to(base).as_posix()
    if rel != '.':
      out.add(rel)
    if file_names:
      for name in os.listdir(directory):
        if name in file_names and (directory / name).is_file():
          out.add(f'{rel}/{name}' if rel != '.' else name)
  return out


def _file_names(layout: manual.Layout) -> set[str]:
  return {req.rsplit('/', 1)[-1] for req in layout.required_files}


def _required_depth(layout: manual.Layout) -> int:
  return max(req.count('/') + 1 for req in layout.required)


def locate(manual_dir: os.PathLike[str] | str, layout: manual.Layout,
           extract_dir: os.PathLike[str] | str | None = None) -> manual.DataRoot:
  """Finds the dataset under `manual_dir`: an extracted folder, else an archive.

  Args:
    manual_dir: the folder the user downloaded to.
    layout: the dataset's official layout.
    extract_dir: where a private temporary folder for archive members is
      made (default: the system temp dir); removed by `manual.DataRoot.cleanup`.

  Returns:
    A `manual.DataRoot`.

  Raises:
    manual.ManualDataError: missing manual_dir, no data, wrong layout, ambiguity.
  """
  manual_dir = pathlib.Path(manual_dir).expanduser()
  if manual_dir.is_file():
    raise manual.ManualDataError(
        f'manual_dir {manual_dir} is a file; pass the folder that holds it')
  if not manual_dir.is_dir():
    raise manual.ManualDataError(
        f'manual_dir {manual_dir} does not exist; download {layout.dataset} '
        f'there: {layout.expected()}')
  depth = _SEARCH_DEPTH + _required_depth(layout)
  paths = _folder_paths(manual_dir, depth, _file_names(layout))
  root, partial, missing = _best_root(paths, layout)
  if root is not None:
    folder = manual_dir / root if root else manual_dir
    return manual.DataRoot(folder, layout, display=str(folder), sources=[
        {'kind': 'folder', 'path': folder.name or str(folder)}])
  archives = _find_archives(manual_dir, layout)
  if archives:
    return _from_archive(archives[0], layout, extract_dir)
  if partial is not None:
    where = manual_dir / partial if partial else manual_dir
    raise manual.ManualDataError(
        f'{where}: wrong layout for {layout.dataset}: missing '
        f"{', '.join(missing)}; expected {layout.description}")
  raise manual.ManualDataError(
      f'no {layout.dataset} data in manual_dir {manual_dir}: expected '
      f'{layout.expected()}')


def _find_archives(manual_dir: pathlib.Path, layout: manual.Layout) -> list[pathlib.Path]:
  """Known archive names in manual_dir or one level below, shallowest first."""
  wanted = {name.lower() for name in layout.archives}
  found = []
  for directory, _ in _walk_dirs(manual_dir, 1):
    with os.scandir(directory) as entries:
      for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_file() and entry.name.lower() in wanted:
          found.append(pathlib.Path(entry.path))
  return found


class _Archive:
  """Uniform listing/extraction of zip and tar archives."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    try:
      if zipfile.is_zipfile(path):
        self.kind = 'zip'
        with zipfile.ZipFile(path) as z:
          infos = [i for i in z.infolist() if not i.is_dir()]
        self._members = {self._clean(i.filename): i.filename for i in infos}
      else:
        self.kind = 'tar'
        with tarfile.open(path, 'r:*') as t:
          infos = [m for m in t.getmembers() if m.isfile()]
        self._members = {self._clean(m.name): m.name for m in infos}
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
      raise manual.ManualDataError(
          f'{path}: cannot read the archive ({type(e).__name__}: {e})') from e

  def _clean(self, name: str) -> str:
    parts = name.replace('\\', '/').split('/')
    if name.startswith('/') or '..' in parts:
      raise manual.ManualDataError(f'{self.path}: unsafe member path {name!r}')
    return '/'.join(part for part in parts if part not in ('', '.'))

  def paths(self, file_names: set[str]) -> set[str]:
    """All directories of the archive, and the files named in `file_names`."""
    out = set()
    for name in self._members:
      parts = name.split('/')
      if manual.is_junk(parts[-1]):
        continue
      if parts[-1] in file_names or len(parts) == 1:
        out.add(name)
      out.update('/'.join(parts[:i]) for i in range(1, len(parts)))
    return out

  def extract(self, prefix: str, patterns: Sequence[str], dest: pathlib.Path) -> None:
    """Extracts the members below `prefix` that match a pattern (or lie below a match)."""
    selected = {}
    for clean, raw in self._members.items():
      if not clean.startswith(prefix) or manual.is_junk(clean.rsplit('/', 1)[-1]):
        continue
      rel = clean[len(prefix):]
      if any(manual.matches(rel, p) or manual.matches(rel, p + '/*') for p in patterns):
        selected[clean] = raw

    def target(clean: str) -> pathlib.Path:
      out = dest / clean
      out.parent.mkdir(parents=True, exist_ok=True)
      return out

    try:
      if self.kind == 'zip':
        with zipfile.ZipFile(self.path) as z:
          for clean, raw in selected.items():
            with z.open(raw) as src, open(target(clean), 'wb') as dst:
              shutil.copyfileobj(src, dst, 1 << 20)
      else:
        raw_to_clean = {raw: clean for clean, raw in selected.items()}
        with tarfile.open(self.path, 'r|*') as t:  # One streaming pass.
          for member in t:
            clean = raw_to_clean.get(member.name)
            if clean is not None and member.isfile():
              src = t.extractfile(member)
              with open(target(clean), 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
      raise manual.ManualDataError(
          f'{self.path}: the archive is damaged or truncated ({type(e).__name__}: {e})') from e


def _from_archive(path: pathlib.Path, layout: manual.Layout,
                  extract_dir: os.PathLike[str] | str | None) -> manual.DataRoot:
  archive = _Archive(path)
  paths = archive.paths(_file_names(layout))
  root, partial, missing = _best_root(paths, layout)
  if root is None:
    top = sorted({p.split('/')[0] for p in paths})[:8]
    where = f'{path}:{partial}' if partial else str(path)
    detail = f"missing {', '.join(missing)}" if partial is not None else (
        f"it holds {', '.join(top) or 'nothing'}")
    raise manual.ManualDataError(
        f'{where}: wrong layout for {layout.dataset}: {detail}; expected '
        f'{layout.description}')
  prefix = f'{root}/' if root else ''
  if extract_dir is not None:
    pathlib.Path(extract_dir).mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'lljax-{layout.dataset}-', dir=extract_dir))
  try:
    archive.extract(prefix, layout.extract_patterns, tmp)
    with open(path, 'rb') as f:
      sha = hashlib.file_digest(f, 'sha256').hexdigest()
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  source = {'kind': archive.kind, 'path': path.name, 'bytes': path.stat().st_size,
            'sha256': sha, 'root': root}
  return manual.DataRoot(tmp / root if root else tmp, layout, display=f'{path}:{prefix}',
                         sources=[source], temporary=tmp)
