"""Manual downloads: their layout, the errors they raise, and checked image reading.

A builder describes its official layout with a `Layout` (the directories and
files that must exist under the dataset's root folder, and the archive names
it is published as); `lljax.imaging.finder.locate(manual_dir, layout)` finds
that root, in a folder or an archive, and returns a `DataRoot`. A `DataRoot`
reads images with full validation (`read`), remembers the sha256 of every
file it read, and names files the way the user sees them
(`archive.zip:inner/path.png` or the real path).

Every problem raises `ManualDataError` with one line that names the file (or
folder, or archive) and says what was expected.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import os
import pathlib
import shutil
import threading
from typing import Any, Iterable

import numpy as np
from PIL import Image

from lljax.utils import images

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm')
# Files operating systems drop into folders; never data.
_OS_JUNK = ('thumbs.db', 'desktop.ini', '.ds_store')


class ManualDataError(ValueError):
  """The manually downloaded data is missing, incomplete or malformed."""


@dataclasses.dataclass(frozen=True)
class Layout:
  """The official folder layout of a dataset.

  Attributes:
    dataset: dataset name used in messages, e.g. 'LOL'.
    description: the expected tree, shown in errors, e.g.
      'LOLdataset/{our485,eval15}/{low,high}/<n>.png'.
    required_dirs: directories that must exist below the root (posix paths
      relative to the root; '*' and '?' match case-insensitively, e.g.
      'train/*/sharp').
    required_files: files that must exist below the root (same syntax).
    archives: names the archive is published under (case-insensitive).
    extract: patterns of what to take out of an archive (a member is taken
      when its path below the root matches a pattern or lies below a match);
      default: the required entries.
  """

  dataset: str
  description: str
  required_dirs: tuple[str, ...]
  required_files: tuple[str, ...] = ()
  archives: tuple[str, ...] = ()
  extract: tuple[str, ...] | None = None

  @property
  def required(self) -> tuple[str, ...]:
    return self.required_dirs + self.required_files

  @property
  def extract_patterns(self) -> tuple[str, ...]:
    return self.extract if self.extract is not None else self.required

  def expected(self) -> str:
    names = ', '.join(self.archives) if self.archives else 'the archive'
    return f'{names} or its extracted folder laid out as {self.description}'


def is_junk(name: str) -> bool:
  """Hidden files and the files operating systems drop into folders (never data)."""
  return name.startswith('.') or name.lower() in _OS_JUNK


def is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_SUFFIXES)


def matches(path: str, pattern: str) -> bool:
  """Case-insensitive glob match of a posix path ('*' may cross '/')."""
  return fnmatch.fnmatchcase(path.lower(), pattern.lower())


# ----------------------------------------------------------------------------
# Reading.


@dataclasses.dataclass
class CheckedImage:
  """An image read from the dataset and checked.

  Attributes:
    array: uint8 [H, W, 3] RGB.
    data: bytes to store: the file itself when it is an 8-bit RGB PNG, else
      a lossless PNG of `array`.
    converted: what was converted (e.g. 'grayscale -> RGB'), or None.
  """

  array: np.ndarray
  data: bytes
  converted: str | None


_GRAY_MODES = ('L', 'LA', 'La', '1', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N')


def to_rgb8(array: np.ndarray, info: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
  """Converts `lljax.utils.images.read_image` output to uint8 RGB.

  Grayscale was already replicated to RGB by `read_image`; 16-bit values
  are rounded to 8 bit (round(v * 255 / 65535)); an alpha channel is dropped
  when fully opaque.

  Args:
    array: uint8 or uint16 [H, W, 3] from `read_image`.
    info: its info dict.

  Returns:
    (uint8 [H, W, 3], notes describing each conversion made).

  Raises:
    ValueError: transparent pixels (the reason, without the file name).
  """
  notes = []
  alpha = info['alpha']
  if alpha is not None:
    if alpha.size and alpha.min() < np.iinfo(alpha.dtype).max:
      raise ValueError('has transparent pixels (an alpha channel); lljax needs opaque '
                       'RGB images: flatten it onto a background first')
    notes.append('opaque alpha dropped')
  if array.dtype == np.uint16:
    array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    notes.append('16-bit -> 8-bit')
  if info['mode'] in _GRAY_MODES:
    notes.append('grayscale -> RGB')
  if info['orientation'] != 1:
    notes.append(f"EXIF orientation {info['orientation']} applied")
  return array, notes


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG', compress_level=compress_level)
  return buffer.getvalue()


class DataRoot:
  """The dataset's root folder (real or extracted) and what was read from it.

  Attributes:
    path: the folder (an extracted copy for archives).
    layout: the layout it satisfies.
    sources: [{'kind': 'zip'|'tar'|'folder', 'path', 'sha256', ...}].
    file_sha256: {relative posix path: sha256} of every file read so far.
    ignored: non-image files met while listing image folders.
    converted: {relative path: what was converted} for images not stored
      byte for byte (grayscale, 16-bit, JPEG, ...).
  """

  def __init__(self, path: pathlib.Path, layout: Layout, *, display: str,
               sources: list[dict[str, Any]], temporary: pathlib.Path | None = None):
    self.path = path
    self.layout = layout
    self.sources = sources
    self.file_sha256: dict[str, str] = {}
    self.ignored: list[str] = []
    self.converted: dict[str, str] = {}
    self._display = display
    self._temporary = temporary
    self._lock = threading.Lock()

  def __enter__(self) -> DataRoot:
    return self

  def __exit__(self, *exc) -> None:
    self.cleanup()

  def cleanup(self) -> None:
    """Removes the temporary extraction folder (if any)."""
    if self._temporary is not None:
      shutil.rmtree(self._temporary, ignore_errors=True)
      self._temporary = None

  def display(self, rel: str) -> str:
    """How the user finds `rel`: 'archive.zip:root/rel' or '/real/path/rel'."""
    if self._display.endswith(':') or self._display.endswith('/'):
      return self._display + rel
    return f'{self._display}/{rel}' if rel else self._display

  def error(self, rel: str, problem: str) -> ManualDataError:
    return ManualDataError(f'{self.display(rel)}: {problem}')

  def exists(self, rel: str) -> bool:
    return (self.path / rel).exists()

  def list_dir(self, rel: str) -> list[str]:
    """Names in a directory (sorted, OS junk removed); error if it is missing."""
    directory = self.path / rel
    if not directory.is_dir():
      raise self.error(rel, f'missing directory; expected {self.layout.description}')
    return sorted(name for name in os.listdir(directory) if not is_junk(name))

  def list_images(self, rel: str, recursive: bool = False) -> list[str]:
    """Image files below directory `rel` (posix paths relative to the root).

    Non-image files are not returned but recorded in `ignored` (reported by
    the builders); subdirectories are descended into when `recursive`, else
    reported as unexpected.
    """
    out = []
    for name in self.list_dir(rel):
      child = f'{rel}/{name}' if rel else name
      if (self.path / child).is_dir():
        if not recursive:
          raise self.error(child, f'unexpected folder; expected {self.layout.description}')
        out.extend(self.list_images(child, recursive=True))
      elif is_image_name(name):
        out.append(child)
      else:
        self.ignored.append(child)
    return out

  def read_text(self, rel: str) -> str:
    try:
      data = (self.path / rel).read_bytes()
    except OSError as e:
      raise self.error(rel, f'cannot read ({e.strerror or e})') from e
    self._record(rel, data)
    try:
      return data.decode('utf-8')
    except UnicodeDecodeError as e:
      raise self.error(rel, 'not a UTF-8 text file') from e

  def _record(self, rel: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    with self._lock:
      self.file_sha256[rel] = digest

  def read(self, rel: str) -> CheckedImage:
    """Reads and checks one image.

    Grayscale (replicated to RGB), palette, EXIF-rotated and 16-bit images
    (rounded to 8 bit: round(v * 255 / 65535)) are converted; an alpha
    channel is dropped when fully opaque and refused otherwise.

    Raises:
      ManualDataError: missing, unreadable, corrupt, truncated or
        transparent image (names the file).
    """
    path = self.path / rel
    try:
      data = path.read_bytes()
      array, info = images.read_image(path)
    except FileNotFoundError as e:
      raise self.error(rel, 'file not found') from e
    except images.ImageReadError as e:
      raise self.error(rel, e.reason) from e
    except OSError as e:
      raise self.error(rel, f'cannot read ({e.strerror or e})') from e
    self._record(rel, data)
    try:
      array, notes = to_rgb8(array, info)
    except ValueError as e:
      raise self.error(rel, str(e)) from e
    plain_png = info['format'] == 'PNG' and info['mode'] == 'RGB' and not notes
    if not plain_png and info['format'] != 'PNG':
      notes.append(f"{info['format']} -> PNG")
    elif not plain_png and not notes:
      notes.append(f"PNG mode {info['mode']} -> RGB")
    stored = data if plain_png else encode_png(array)
    if notes:
      with self._lock:
        self.converted[rel] = '; '.join(notes)
    return CheckedImage(array, stored, '; '.join(notes) or None)

  def read_pair(self, low_rel: str, normal_rel: str) -> tuple[CheckedImage, CheckedImage]:
    """Reads two aligned images and checks that their sizes agree."""
    low, normal = self.read(low_rel), self.read(normal_rel)
    if low.array.shape != normal.array.shape:
      (lh, lw), (nh, nw) = low.array.shape[:2], normal.array.shape[:2]
      raise ManualDataError(
          f'size mismatch within a pair: {self.display(low_rel)} is {lw}x{lh} '
          f'(WxH) but {self.display(normal_rel)} is {nw}x{nh}')
    return low, normal

  def metadata(self) -> dict[str, Any]:
    """JSON-able record of what was read: sources, per-file sha256, digest."""
    lines = ''.join(f'{rel}\t{sha}\n' for rel, sha in sorted(self.file_sha256.items()))
    return {
        'sources': self.sources,
        'files_sha256': dict(sorted(self.file_sha256.items())),
        'files_digest': hashlib.sha256(lines.encode('utf-8')).hexdigest(),
        'num_files': len(self.file_sha256),
        'ignored_files': sorted(self.ignored),
        'converted_files': dict(sorted(self.converted.items())),
    }


def match_pairs(root: DataRoot, low: Iterable[str], normal: Iterable[str],
                key_low, key_normal) -> list[tuple[str, str]]:
  """Pairs two file lists by key; any file without a partner is an error.

  Args:
    root: for messages.
    low, normal: relative paths.
    key_low, key_normal: functions path -> pairing key.

  Returns:
    [(low_path, normal_path)] sorted by key.

  Raises:
    ManualDataError: naming the first unmatched file (and how many more).
  """
  lows = {key_low(p): p for p in low}
  normals = {key_normal(p): p for p in normal}
  for side, mine, other, other_name in [('input', lows, normals, 'target'),
                                        ('target', normals, lows, 'input')]:
    lonely = sorted(set(mine) - set(other))
    if lonely:
      more = f' (and {len(lonely) - 1} more)' if len(lonely) > 1 else ''
      raise ManualDataError(
          f'{root.display(mine[lonely[0]])}: {side} image without its {other_name} '
          f'{lonely[0]!r}{more}')
  return [(lows[k], normals[k]) for k in sorted(lows)]
