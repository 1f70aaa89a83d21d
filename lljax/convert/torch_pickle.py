"""The restricted unpickler of ``torch.save`` files and the tensors it rebuilds (no torch).

Safety: a pickle can name any importable callable and make the loader call it. This module never
imports or calls anything a file names. Its unpickler resolves only a fixed allow-list of globals
(``collections.OrderedDict``, ``builtins.set``/``frozenset``, torch's tensor/parameter rebuild
functions, storage classes and dtypes) to lljax's own side-effect-free stand-ins; any other
global raises :class:`UnsafeCheckpointError`. Checkpoints that pickle whole training states with
third-party objects inside (configs, schedulers) can be read by listing those classes in
``stubs``: each becomes an :class:`OpaqueObject` subclass that only records the data the pickle
gives it.

Tensors are rebuilt from ``(storage, storage_offset, size, stride)`` with numpy
(:class:`TensorBuilder`): views that share one storage and non-contiguous (e.g. transposed)
views come out exactly as torch sees them, each as its own C-contiguous copy. Dtypes are kept as
stored: bfloat16 and float8 tensors come back as ``ml_dtypes`` arrays.

Where the pickles and the storage bytes sit in a file (zip or legacy format) is
``lljax.convert.torch_io``'s business; it hands :func:`unpickle` a ``storage`` callback that
maps each persistent id to a :class:`Storage`.
"""

import collections
import pickle
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

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


class Storage(_Frozen):
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


class TensorBuilder:
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
    if not isinstance(storage, Storage):
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

  def __init__(self, file, *, filename: str, builder: TensorBuilder,
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
        f"refusing to load {self._filename}: its pickle names '{module}.{name}', which is not part of "
        "a state_dict (tensors, dicts, numbers); lljax never imports or runs pickled code. "
        "If the file is yours, save the plain state_dict with torch "
        "(torch.save(model.state_dict(), path)) and convert that file",
        module, name)

  def persistent_load(self, pid):
    if self._storage is None:
      raise CheckpointFormatError(
          f"{self._filename} is corrupt: unexpected storage reference {pid!r}")
    return self._storage(pid)


def parse_pid(pid, filename: str) -> tuple[np.dtype, str, int]:
  """Validates a storage persistent id; returns (dtype, key, numel)."""
  if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
      or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
      or not isinstance(pid[4], int) or pid[4] < 0):
    raise CheckpointFormatError(f"{filename} is corrupt: bad storage reference {pid!r}")
  return pid[1].dtype, pid[2], pid[4]


def unpickle(file, filename: str, *, builder: TensorBuilder | None = None,
             stubs: frozenset = frozenset(), storage=None, truncated_ok: bool = False):
  """Runs the safe unpickler, turning every failure into a one-line CheckpointFormatError.

  Args:
    file: binary file positioned at the pickle.
    filename: checkpoint path, for error messages.
    builder: rebuild functions for tensors (default: a validating ``TensorBuilder``).
    stubs: (module, qualname) pairs to read as inert data (see ``_SafeUnpickler``).
    storage: maps a persistent id tuple to a ``Storage``; None for pickles that must have none.
    truncated_ok: whether running out of data means the file was cut (legacy files, read
      sequentially) rather than that a complete pickle is corrupt.
  """
  unpickler = _SafeUnpickler(
      file, filename=filename, builder=builder or TensorBuilder(filename), stubs=stubs,
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

