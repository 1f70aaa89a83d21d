"""Reads PyTorch ``torch.save`` checkpoints into numpy arrays, without torch and running no code.

Two on-disk formats are understood:

* **zip** (torch >= 1.6, the default): an uncompressed zip archive whose entries live under one
  top folder (its name varies, e.g. ``archive/`` or the file's stem). ``<top>/data.pkl`` is a
  pickle of the saved object in which every storage is a *persistent id*
  ``('storage', storage_type, key, location, numel)``; the bytes of storage ``key`` are the entry
  ``<top>/data/<key>``. Newer files add ``<top>/byteorder`` (``little`` or ``big``).
* **legacy** (``_use_new_zipfile_serialization=False`` and torch < 1.6): consecutive pickles of a
  magic number, a protocol version and a ``sys_info`` dict, then the main pickle (persistent ids
  ``('storage', storage_type, key, location, numel, view_metadata)``), then the list of storage
  keys, then for each key an 8-byte little-endian element count followed by the raw elements.

Tensors are rebuilt from ``(storage, storage_offset, size, stride)`` with numpy: views that share
one storage and non-contiguous (e.g. transposed) views come out exactly as torch sees them, each
as its own C-contiguous copy. Dtypes are kept as stored: bfloat16 and float8 tensors come back as
``ml_dtypes`` arrays, which callers cast as they need. The device a tensor was saved from is
ignored (everything is loaded as host memory). Only little-endian checkpoints are supported.

Safety: nothing a file names is imported or called; see ``lljax.convert.torch_pickle`` for the
restricted unpickler, the allow-list and ``stubs``.

Example:
  >>> state = read_state_dict("net_g.pth", key="params_ema")
  >>> state = strip_prefix(state, "module.")
"""

import io
import mmap
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lljax.convert import torch_pickle
from lljax.convert.torch_pickle import CheckpointFormatError, OpaqueObject, UnsafeCheckpointError

__all__ = [
    "CheckpointFormatError",
    "OpaqueObject",
    "UnsafeCheckpointError",
    "load",
    "read_state_dict",
    "strip_prefix",
]

# The magic number torch writes as the first pickle of a legacy file, and its protocol record.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_EMPTY_ARCHIVE = b"PK\x05\x06"

# Wrapper keys that training scripts commonly put a state_dict under.
_WRAPPER_KEYS = ("state_dict", "model", "params", "net", "netG", "params_ema")


def _open(filename: str):
  """Opens and memory-maps the file, with clear errors for missing and empty files."""
  try:
    f = open(filename, "rb")  # pylint: disable=consider-using-with
  except FileNotFoundError:
    raise CheckpointFormatError(f"{filename} does not exist") from None
  except IsADirectoryError:
    raise CheckpointFormatError(f"{filename} is a directory, not a checkpoint file") from None
  except OSError as e:
    raise CheckpointFormatError(f"{filename} cannot be opened: {e.strerror or e}") from None
  if os.fstat(f.fileno()).st_size == 0:
    f.close()
    raise CheckpointFormatError(f"{filename} is empty (0 bytes), not a PyTorch checkpoint")
  try:
    return f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
  except (OSError, ValueError) as e:
    f.close()
    raise CheckpointFormatError(f"{filename} cannot be memory-mapped: {e}") from None


def _close(f, mm) -> None:
  try:
    mm.close()
  except BufferError:
    pass  # A bare storage still views the map; it closes when that view is garbage collected.
  f.close()


def _stub_pair(stub) -> tuple[str, str]:
  if not (isinstance(stub, (tuple, list)) and len(stub) == 2
          and all(isinstance(x, str) for x in stub)):
    raise TypeError(f"stubs must be (module, qualname) string pairs, got {stub!r}")
  return tuple(stub)


def load(path: str | os.PathLike, *, stubs: Iterable[tuple[str, str]] = ()) -> Any:
  """Loads a ``torch.save`` file without torch and without executing pickled code.

  Args:
    path: the checkpoint file (zip or legacy format).
    stubs: (module, qualname) pairs of classes the caller accepts as inert data, e.g.
      ``[("omegaconf.dictconfig", "DictConfig")]``; instances become :class:`OpaqueObject`
      subclasses recording their constructor args, state and items. A qualname of ``"*"`` allows
      every name of that module. Never list anything whose real behaviour you need.

  Returns:
    The unpickled object: dicts (OrderedDicts stay OrderedDicts), lists, tuples, numbers and
    strings as they were saved; every tensor or Parameter as a C-contiguous numpy array of its
    stored dtype (bfloat16/float8 as ``ml_dtypes`` types; 0-d tensors as 0-d arrays).

  Raises:
    UnsafeCheckpointError: the pickle names a global outside the allow-list and ``stubs``.
    CheckpointFormatError: the file is missing, empty, truncated, corrupt, big-endian,
      TorchScript, or not a PyTorch checkpoint.
  """
  filename = os.fspath(path)
  stub_set = frozenset(_stub_pair(s) for s in stubs)
  f, mm = _open(filename)
  try:
    head = mm[:8]
    if head.startswith((_ZIP_LOCAL_HEADER, _ZIP_EMPTY_ARCHIVE)):
      return _load_zip(f, mm, filename, stub_set)
    if head.startswith(b"\x80") and _is_legacy(f, filename):
      return _load_legacy(f, mm, filename, stub_set)
    if mm[257:262] == b"ustar":
      raise CheckpointFormatError(
          f"{filename} is a tar archive: the oldest torch checkpoint format, which lljax does "
          "not read (re-save it with a recent torch)")
    raise CheckpointFormatError(
        f"{filename} is not a PyTorch checkpoint (neither a zip archive nor a legacy torch pickle)")
  finally:
    _close(f, mm)


# ----------------------------------------------------------------------------- zip format


def _open_zip(f, filename: str) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(f)
  except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as e:
    raise CheckpointFormatError(
        f"{filename} is truncated or corrupt: its zip directory cannot be read ({e})") from None


def _find_record_prefix(zf: zipfile.ZipFile, filename: str) -> str:
  """Returns the top folder (with trailing slash) holding data.pkl."""
  names = zf.namelist()
  pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
  if not pickles:
    raise CheckpointFormatError(
        f"{filename} is a zip archive but not a PyTorch checkpoint (it has no data.pkl)")
  prefix = min(pickles, key=len)[: -len("data.pkl")]
  if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
    raise CheckpointFormatError(
        f"{filename} is a TorchScript archive (torch.jit.save), which lljax does not read; "
        "load it with torch.jit.load and torch.save(model.state_dict()) instead")
  return prefix


def _member_bytes(zf: zipfile.ZipFile, mm, name: str, filename: str) -> np.ndarray:
  """The bytes of a zip member as a uint8 array: a view of the map if stored uncompressed."""
  try:
    info = zf.getinfo(name)
  except KeyError:
    raise CheckpointFormatError(f"{filename} is corrupt: missing storage {name!r}") from None
  if info.compress_type != zipfile.ZIP_STORED:
    try:
      return np.frombuffer(zf.read(name), np.uint8)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
      raise CheckpointFormatError(f"{filename} is truncated or corrupt: {name!r}: {e}") from None
  start = info.header_offset
  header = mm[start:start + 30]
  if len(header) < 30 or not header.startswith(_ZIP_LOCAL_HEADER):
    raise CheckpointFormatError(f"{filename} is corrupt: bad zip header for {name!r}")
  name_len, extra_len = struct.unpack("<HH", header[26:30])
  offset = start + 30 + name_len + extra_len
  if offset + info.file_size > len(mm):
    raise CheckpointFormatError(
        f"{filename} is truncated: storage {name!r} needs {info.file_size} bytes at offset "
        f"{offset}, the file has {len(mm)}")
  return np.frombuffer(mm, np.uint8, count=info.file_size, offset=offset)


def _load_zip(f, mm, filename: str, stubs: frozenset) -> Any:
  zf = _open_zip(f, filename)
  prefix = _find_record_prefix(zf, filename)
  if prefix + "byteorder" in zf.NameToInfo:
    order = zf.read(prefix + "byteorder").strip().decode("ascii", "replace")
    if order != "little":
      raise CheckpointFormatError(
          f"{filename} was saved on a {order!r}-endian machine; only little-endian "
          "checkpoints are supported")
  cache = {}

  def storage(pid):
    dtype, key, _ = torch_pickle.parse_pid(pid, filename)
    name = f"{prefix}data/{key}"
    if name not in cache:
      cache[name] = _member_bytes(zf, mm, name, filename)
    return torch_pickle.Storage(raw=cache[name], dtype=dtype, name=name)

  try:
    data = zf.read(prefix + "data.pkl")
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
    raise CheckpointFormatError(f"{filename} is truncated or corrupt: data.pkl: {e}") from None
  return torch_pickle.unpickle(io.BytesIO(data), filename, stubs=stubs, storage=storage)


# -------------------------------------------------------------------------- legacy format


def _is_legacy(f, filename: str) -> bool:
  f.seek(0)
  try:
    return torch_pickle.unpickle(f, filename) == _LEGACY_MAGIC
  except CheckpointFormatError:
    return False


def _load_legacy(f, mm, filename: str, stubs: frozenset) -> Any:
  # _is_legacy has consumed the magic number.
  protocol = torch_pickle.unpickle(f, filename, truncated_ok=True)
  if protocol != _LEGACY_PROTOCOL:
    raise CheckpointFormatError(
        f"{filename} has unsupported legacy torch protocol version {protocol!r}")
  sys_info = torch_pickle.unpickle(f, filename, truncated_ok=True)
  if isinstance(sys_info, Mapping) and not sys_info.get("little_endian", True):
    raise CheckpointFormatError(
        f"{filename} was saved on a big-endian machine; only little-endian checkpoints are "
        "supported")

  # Storage bytes follow the main pickle, and their element sizes are only known from the
  # persistent ids inside it: a first pass records them, a second builds the tensors.
  main_start = f.tell()
  declared = {}

  def record(pid):
    dtype, key, numel = torch_pickle.parse_pid(pid, filename)
    declared.setdefault(key, (dtype, numel))

  torch_pickle.unpickle(f, filename, builder=torch_pickle.TensorBuilder(filename, dry=True),
                        stubs=stubs, storage=record, truncated_ok=True)
  keys = torch_pickle.unpickle(f, filename, truncated_ok=True)
  if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
    raise CheckpointFormatError(f"{filename} is corrupt: bad storage key list")
  roots = _locate_legacy_storages(mm, f.tell(), keys, declared, filename)

  def storage(pid):
    dtype, key, numel = torch_pickle.parse_pid(pid, filename)
    if key not in roots:
      raise CheckpointFormatError(f"{filename} is corrupt: storage {key!r} has no data")
    raw = roots[key]
    view = pid[5] if len(pid) == 6 else None
    if view is not None:  # Pre-1.0 files could reference a slice (view_key, offset, size).
      _, start, count = view
      raw = raw[start * dtype.itemsize:(start + count) * dtype.itemsize]
    elif raw.nbytes < numel * dtype.itemsize:
      raise CheckpointFormatError(f"{filename} is corrupt: storage {key!r} is too small")
    return torch_pickle.Storage(raw=raw, dtype=dtype, name=key)

  f.seek(main_start)
  return torch_pickle.unpickle(f, filename, stubs=stubs, storage=storage, truncated_ok=True)


def _locate_legacy_storages(mm, pos: int, keys: Sequence[str], declared: dict,
                            filename: str) -> dict[str, np.ndarray]:
  """Maps each storage key to a uint8 view of its bytes, walking the count-prefixed blocks."""
  roots = {}
  for key in keys:
    if key not in declared:
      raise CheckpointFormatError(
          f"{filename} is corrupt: storage {key!r} is listed but never referenced")
    dtype, _ = declared[key]
    if pos + 8 > len(mm):
      raise CheckpointFormatError(f"{filename} is truncated: storage {key!r} is missing")
    (count,) = struct.unpack("<q", mm[pos:pos + 8])
    nbytes = count * dtype.itemsize
    pos += 8
    if count < 0 or pos + nbytes > len(mm):
      raise CheckpointFormatError(
          f"{filename} is truncated: storage {key!r} needs {nbytes} bytes at offset {pos}, "
          f"the file has {len(mm)}")
    roots[key] = np.frombuffer(mm, np.uint8, count=nbytes, offset=pos)
    pos += nbytes
  return roots


# ------------------------------------------------------------------------------ state dicts


def _is_array_dict(obj) -> bool:
  return isinstance(obj, dict) and all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def _describe_keys(obj: dict) -> str:
  keys = list(obj)
  shown = ", ".join(repr(k) for k in keys[:20])
  return shown + (f", ... ({len(keys)} keys)" if len(keys) > 20 else "")


def read_state_dict(path: str | os.PathLike, *, key: str | Sequence[str] | None = None,
                    stubs: Iterable[tuple[str, str]] = ()) -> dict[str, np.ndarray]:
  """Reads a checkpoint's flat ``{name: array}`` state dict.

  Without ``key``, the top-level object is used if it is a dict of arrays; otherwise, if it is a
  dict with exactly one of the wrapper keys ``state_dict``, ``model``, ``params``, ``net``,
  ``netG``, ``params_ema`` whose value is a dict of arrays, that value is used (two such keys,
  e.g. BasicSR's ``params`` and ``params_ema``, are ambiguous and need ``key``). Key names are
  returned unchanged; see :func:`strip_prefix` for ``module.`` and similar prefixes.

  Args:
    path: the checkpoint file.
    key: name (or sequence of names, for nested dicts) of the entry holding the state dict.
    stubs: classes to read as inert data; see :func:`load`.

  Returns:
    Names to numpy arrays (stored dtypes), in file order.

  Raises:
    CheckpointFormatError: also when no state dict is found; the message lists the top-level keys.
  """
  filename = os.fspath(path)
  obj = load(filename, stubs=stubs)
  if key is not None:
    for k in [key] if isinstance(key, str) else key:
      if not isinstance(obj, dict) or k not in obj:
        where = f"its keys are {_describe_keys(obj)}" if isinstance(obj, dict) else (
            f"it holds a {type(obj).__name__}")
        raise CheckpointFormatError(f"{filename} has no entry {k!r}: {where}")
      obj = obj[k]
    if not _is_array_dict(obj):
      raise CheckpointFormatError(
          f"{filename}: entry {key!r} is a {type(obj).__name__}, not a dict of arrays")
    return dict(obj)
  if _is_array_dict(obj):
    return dict(obj)
  if not isinstance(obj, dict):
    raise CheckpointFormatError(
        f"{filename} holds a {type(obj).__name__}, not a dict of arrays")
  wrapped = [k for k in _WRAPPER_KEYS if k in obj and _is_array_dict(obj[k])]
  if len(wrapped) == 1:
    return dict(obj[wrapped[0]])
  candidates = [k for k, v in obj.items() if _is_array_dict(v)]
  hint = f" (dicts of arrays: {', '.join(map(repr, candidates))})" if candidates else ""
  raise CheckpointFormatError(
      f"{filename} does not hold a flat dict of arrays; its top-level keys are "
      f"{_describe_keys(obj)}{hint}; pass key=... to choose one")


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
  """Removes ``prefix`` (e.g. ``"module."``) from the keys that start with it.

  Keys without the prefix are kept as they are; order is preserved.

  Raises:
    ValueError: stripping would make two keys equal.
  """
  out = {}
  for k, v in state.items():
    new = k[len(prefix):] if k.startswith(prefix) else k
    if new in out:
      raise ValueError(f"stripping {prefix!r} makes key {k!r} collide with {new!r}")
    out[new] = v
  return out
