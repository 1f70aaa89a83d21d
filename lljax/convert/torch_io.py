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

Safety: a pickle can name any importable callable and make the loader call it. This module never
imports or calls anything a file names. Its unpickler resolves only a fixed allow-list of globals
(``collections.OrderedDict``, ``builtins.set``/``frozenset``, torch's tensor/parameter rebuild
functions, storage classes and dtypes) to lljax's own side-effect-free stand-ins; any other
global raises :class:`UnsafeCheckpointError`. Checkpoints that pickle whole training states with
third-party objects inside (configs, schedulers) can be read by listing those classes in
``stubs``: each becomes an :class:`OpaqueObject` subclass that only records the data the pickle
gives it.

Example:
  >>> state = read_state_dict("net_g.pth", key="params_ema")
  >>> state = strip_prefix(state, "module.")
"""

import collections
import io
import mmap
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ml_dtypes
import numpy as np

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

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("bool"),
    "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    # Untyped storages hold bytes; tensors on them name their dtype (_rebuild_tensor_v3).
    "UntypedStorage": np.dtype("u1"),
}

_TORCH_DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint64": np.dtype("<u8"),
    "uint32": np.dtype("<u4"),
    "uint16": np.dtype("<u2"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("bool"),
    "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
}


class CheckpointFormatError(ValueError):
  """The file is missing, truncated, corrupt or not a supported PyTorch checkpoint."""


class UnsafeCheckpointError(CheckpointFormatError):
  """The checkpoint's pickle names a global outside the allow-list (and outside ``stubs``).

  Attributes:
    module: module of the refused global, e.g. ``"os"``.
    name: qualified name of the refused global, e.g. ``"system"``.
  """

  def __init__(self, message: str, module: str, name: str):
    super().__init__(message)
    self.module = module
    self.name = name


class OpaqueObject:
  """Inert stand-in for an instance of a class the caller allowed via ``stubs``.

  Nothing of the original class runs: whichever pickle opcodes build the object, this just records
  the data it is given.

  Attributes:
    stub_module: module of the stubbed global (class attribute).
    stub_qualname: qualified name of the stubbed global (class attribute).
    args: positional arguments the pickle constructed or called it with.
    kwargs: keyword arguments (pickle protocol 4 ``NEWOBJ_EX`` only).
    state: the ``__setstate__`` payload (typically the instance ``__dict__``), or None.
    dict_items: items added by ``SETITEMS`` (for stubbed dict subclasses).
    list_items: items added by ``APPENDS`` (for stubbed list subclasses).
  """

  stub_module = ""
  stub_qualname = ""

  def __new__(cls, *args, **kwargs):
    obj = super().__new__(cls)
    obj.args = args
    obj.kwargs = kwargs
    obj.state = None
    obj.dict_items = {}
    obj.list_items = []
    return obj

  def __init__(self, *args, **kwargs):
    del args, kwargs  # Already recorded by __new__.

  def __setstate__(self, state):
    self.state = state

  def __setitem__(self, key, value):
    self.dict_items[key] = value

  def append(self, value):
    self.list_items.append(value)

  def extend(self, values):
    self.list_items.extend(values)

  def __repr__(self):
    return f"<OpaqueObject {self.stub_module}.{self.stub_qualname}>"


def _stub_class(module: str, qualname: str) -> type:
  """A fresh OpaqueObject subclass per stubbed global and load (a pickle may alter its classes)."""
  name = qualname.rsplit(".", 1)[-1]
  return type(name, (OpaqueObject,), {"stub_module": module, "stub_qualname": qualname})


class _Frozen:
  """Base of the internal objects a pickle gets hold of: BUILD cannot change their attributes."""

  __slots__ = ()

  def __init__(self, **fields):
    for k, v in fields.items():
      object.__setattr__(self, k, v)

  def __setattr__(self, name, value):
    raise AttributeError(f"{type(self).__name__} is read-only")


class _SafeCall(_Frozen):
  """Wraps an allow-listed function so that a pickle cannot set attributes on the function."""

  __slots__ = ("fn",)

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)


class _StorageType(_Frozen):
  """Marker for a pickled ``torch.*Storage`` class; never called, only read by persistent_load."""

  __slots__ = ("name", "dtype")


class _TorchDType(_Frozen):
  """Marker for a pickled ``torch.<dtype>`` global (used by ``_rebuild_tensor_v3``)."""

  __slots__ = ("name", "dtype")

  def __repr__(self):
    return f"torch.{self.name}"


class _Storage(_Frozen):
  """The bytes of one storage: a 1-D uint8 view of the file (or of a decompressed member).

  A bare storage (saved on its own, not through a tensor) is returned by ``load`` as this object;
  ``array`` gives a copy of its elements.
  """

  __slots__ = ("raw", "dtype", "name")

  def typed(self, dtype: np.dtype) -> np.ndarray:
    count = self.raw.nbytes // dtype.itemsize
    return self.raw[: count * dtype.itemsize].view(dtype)

  @property
  def array(self) -> np.ndarray:
    return self.typed(self.dtype).copy()

  def __repr__(self):
    return f"<torch storage {self.name!r} dtype={self.dtype} bytes={self.raw.nbytes}>"


class _TensorBuilder:
  """lljax's own implementations of the torch rebuild functions a checkpoint may name.

  Args:
    filename: the checkpoint path, for error messages.
    dry: if True, validate nothing and return None (first pass over a legacy pickle, made only to
      learn the storages' dtypes before their bytes can be located).
  """

  def __init__(self, filename: str, dry: bool = False):
    self.filename = filename
    self.dry = dry

  def rebuild_tensor(self, storage, storage_offset, size, stride):
    return self._array(storage, storage_offset, size, stride, None)

  def rebuild_tensor_v2(
      self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
      metadata=None):
    del requires_grad, backward_hooks, metadata
    return self._array(storage, storage_offset, size, stride, None)

  def rebuild_tensor_v3(
      self, storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
      metadata=None):
    del requires_grad, backward_hooks, metadata
    if not isinstance(dtype, _TorchDType):
      raise self._error(f"expected a torch dtype, got {type(dtype).__name__}")
    return self._array(storage, storage_offset, size, stride, dtype.dtype)

  def rebuild_parameter(self, data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data

  def rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
    del requires_grad, backward_hooks, state  # Python attributes set on the Parameter.
    return data

  def _error(self, what: str) -> CheckpointFormatError:
    return CheckpointFormatError(f"{self.filename} is corrupt: {what}")

  def _array(self, storage, offset, size, stride, dtype):
    if self.dry:
      return None
    if not isinstance(storage, _Storage):
      raise self._error(f"tensor data is a {type(storage).__name__}, not a storage")
    if not (_is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)
            and isinstance(offset, int) and offset >= 0
            and all(n >= 0 for n in size) and all(s >= 0 for s in stride)):
      raise self._error(
          f"bad tensor geometry offset={offset!r} size={size!r} stride={stride!r}")
    dtype = storage.dtype if dtype is None else dtype
    if 0 in size:
      return np.zeros(size, dtype)
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    needed = extent * dtype.itemsize
    if needed > storage.raw.nbytes:
      raise CheckpointFormatError(
          f"{self.filename} is truncated or corrupt: storage {storage.name!r} has "
          f"{storage.raw.nbytes} bytes, tensor needs {needed}")
    typed = storage.typed(dtype)[offset:]
    strides = tuple(s * dtype.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(typed, shape=size, strides=strides).copy()


def _is_int_tuple(value) -> bool:
  return isinstance(value, tuple) and all(isinstance(v, int) for v in value)


class _SafeUnpickler(pickle.Unpickler):
  """Unpickler whose only reachable callables are the allow-listed stand-ins and stubs.

  Args:
    file: binary file positioned at the pickle.
    filename: checkpoint path, for error messages.
    builder: rebuild functions for tensors.
    stubs: (module, qualname) pairs to resolve to OpaqueObject subclasses; qualname ``"*"``
      stands for every name in that module.
    storage: maps a persistent id tuple to a storage; None for pickles that must have none.
  """

  def __init__(self, file, *, filename: str, builder: _TensorBuilder,
               stubs: frozenset = frozenset(), storage: Callable[[tuple], Any] | None = None):
    super().__init__(file)
    self._filename = filename
    self._stubs = stubs
    self._storage = storage
    self._stub_classes = {}
    self._allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        # Protocol-2 pickles spell builtins with their Python 2 module name.
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
                 "_rebuild_parameter", "_rebuild_parameter_with_state"):
      self._allowed["torch._utils", name] = _SafeCall(fn=getattr(builder, name.lstrip("_")))

  def find_class(self, module, name):
    found = self._allowed.get((module, name))
    if found is not None:
      return found
    if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
      return _StorageType(name=name, dtype=_STORAGE_DTYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:
      return _TorchDType(name=name, dtype=_TORCH_DTYPES[name])
    if (module, name) in self._stubs or (module, "*") in self._stubs:
      if (module, name) not in self._stub_classes:
        self._stub_classes[module, name] = _stub_class(module, name)
      return self._stub_classes[module, name]
    raise UnsafeCheckpointError(
        f"refusing to load {self._filename}: it contains pickled code ('{module}.{name}'); "
        "lljax never executes pickled code. If this is a checkpoint from a known project, "
        "convert its state_dict with torch and torch.save(state_dict), or pass "
        f"stubs=[({module!r}, {name!r})] to read such objects as inert data",
        module, name)

  def persistent_load(self, pid):
    if self._storage is None:
      raise CheckpointFormatError(
          f"{self._filename} is corrupt: unexpected storage reference {pid!r}")
    return self._storage(pid)


def _parse_pid(pid, filename: str) -> tuple[np.dtype, str, int]:
  """Validates a storage persistent id; returns (dtype, key, numel)."""
  if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
      or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
      or not isinstance(pid[4], int) or pid[4] < 0):
    raise CheckpointFormatError(f"{filename} is corrupt: bad storage reference {pid!r}")
  return pid[1].dtype, pid[2], pid[4]


def _unpickle(file, filename: str, *, builder: _TensorBuilder | None = None,
              stubs: frozenset = frozenset(), storage=None, truncated_ok: bool = False):
  """Runs the safe unpickler, turning every failure into a one-line CheckpointFormatError.

  Args:
    truncated_ok: whether running out of data means the file was cut (legacy files, read
      sequentially) rather than that a complete pickle is corrupt.
  """
  unpickler = _SafeUnpickler(
      file, filename=filename, builder=builder or _TensorBuilder(filename), stubs=stubs,
      storage=storage)
  try:
    return unpickler.load()
  except CheckpointFormatError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if truncated_ok and (isinstance(e, EOFError) or "truncated" in str(e)):
      raise CheckpointFormatError(f"{filename} is truncated: the pickle ends early") from None
    raise CheckpointFormatError(
        f"{filename} is corrupt: cannot unpickle ({type(e).__name__}: {e})") from None


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
    dtype, key, _ = _parse_pid(pid, filename)
    name = f"{prefix}data/{key}"
    if name not in cache:
      cache[name] = _member_bytes(zf, mm, name, filename)
    return _Storage(raw=cache[name], dtype=dtype, name=name)

  try:
    data = zf.read(prefix + "data.pkl")
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
    raise CheckpointFormatError(f"{filename} is truncated or corrupt: data.pkl: {e}") from None
  return _unpickle(io.BytesIO(data), filename, stubs=stubs, storage=storage)


# -------------------------------------------------------------------------- legacy format


def _is_legacy(f, filename: str) -> bool:
  f.seek(0)
  try:
    return _unpickle(f, filename) == _LEGACY_MAGIC
  except CheckpointFormatError:
    return False


def _load_legacy(f, mm, filename: str, stubs: frozenset) -> Any:
  # _is_legacy has consumed the magic number.
  protocol = _unpickle(f, filename, truncated_ok=True)
  if protocol != _LEGACY_PROTOCOL:
    raise CheckpointFormatError(
        f"{filename} has unsupported legacy torch protocol version {protocol!r}")
  sys_info = _unpickle(f, filename, truncated_ok=True)
  if isinstance(sys_info, Mapping) and not sys_info.get("little_endian", True):
    raise CheckpointFormatError(
        f"{filename} was saved on a big-endian machine; only little-endian checkpoints are "
        "supported")

  # Storage bytes follow the main pickle, and their element sizes are only known from the
  # persistent ids inside it: a first pass records them, a second builds the tensors.
  main_start = f.tell()
  declared = {}

  def record(pid):
    dtype, key, numel = _parse_pid(pid, filename)
    declared.setdefault(key, (dtype, numel))

  _unpickle(f, filename, builder=_TensorBuilder(filename, dry=True), stubs=stubs,
            storage=record, truncated_ok=True)
  keys = _unpickle(f, filename, truncated_ok=True)
  if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
    raise CheckpointFormatError(f"{filename} is corrupt: bad storage key list")
  roots = _locate_legacy_storages(mm, f.tell(), keys, declared, filename)

  def storage(pid):
    dtype, key, numel = _parse_pid(pid, filename)
    if key not in roots:
      raise CheckpointFormatError(f"{filename} is corrupt: storage {key!r} has no data")
    raw = roots[key]
    view = pid[5] if len(pid) == 6 else None
    if view is not None:  # Pre-1.0 files could reference a slice (view_key, offset, size).
      _, start, count = view
      raw = raw[start * dtype.itemsize:(start + count) * dtype.itemsize]
    elif raw.nbytes < numel * dtype.itemsize:
      raise CheckpointFormatError(f"{filename} is corrupt: storage {key!r} is too small")
    return _Storage(raw=raw, dtype=dtype, name=key)

  f.seek(main_start)
  return _unpickle(f, filename, stubs=stubs, storage=storage, truncated_ok=True)


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
