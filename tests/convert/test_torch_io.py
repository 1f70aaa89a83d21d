"""Tests for the torch-free checkpoint reader (data from data/make_torch_files.py; no torch)."""

import functools
import json
import pickle
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from lljax.convert import torch_io
from lljax.convert.torch_io import CheckpointFormatError, UnsafeCheckpointError

DATA = Path(__file__).parent / "data"
SMALL_PTH = Path(__file__).parents[1] / "fixtures" / "llflow" / "small.pth"
MANIFEST = json.loads((DATA / "expected.json").read_text())
FILES = sorted({e["file"] for e in MANIFEST})
STUBS = [("fakeconf", "DictConfig"), ("fakeconf", "ListConfig")]


@functools.cache
def _expected():
  return dict(np.load(DATA / "expected.npz"))


@functools.cache
def _loaded(name):
  return torch_io.load(DATA / name, stubs=STUBS)


def _expected_array(entry):
  array = _expected()[entry["entry"]]
  if entry["dtype"] in ("bfloat16", "float8_e4m3fn"):
    return array.view(getattr(ml_dtypes, entry["dtype"]))
  return array


def _get(obj, path):
  for p in path:
    obj = obj[p]
  return obj


def _bits(a):
  """Raw bytes view, so that equality is exact for every dtype (ml_dtypes included)."""
  return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("name", FILES)
def test_every_tensor_matches_torch_exactly(name):
  loaded = _loaded(name)
  for entry in (e for e in MANIFEST if e["file"] == name):
    want = _expected_array(entry)
    got = _get(loaded, entry["path"])
    assert isinstance(got, np.ndarray), entry["path"]
    assert got.dtype == want.dtype, entry["path"]
    assert got.shape == want.shape, entry["path"]
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=str(entry["path"]))
    assert got.flags.c_contiguous and got.flags.writeable


def test_generated_files_cover_the_formats_and_dtypes():
  dtypes = {e["dtype"] for e in MANIFEST}
  assert {"float16", "bfloat16", "float64", "int8", "uint8", "bool", "int16", "int32", "int64",
          "uint16", "float8_e4m3fn", "complex64"} <= dtypes
  assert "legacy.pth" in FILES and not zipfile.is_zipfile(DATA / "legacy.pth")
  assert zipfile.is_zipfile(DATA / "zip_model.pth")
  assert sum(p.stat().st_size for p in DATA.iterdir()) < 200_000


def test_model_state_dict_order_and_buffers():
  state = torch_io.read_state_dict(DATA / "zip_model.pth")
  assert list(state) == [e["path"][0] for e in MANIFEST if e["file"] == "zip_model.pth"]
  assert state["0.weight"].shape == (4, 3, 3, 3) and state["0.weight"].dtype == np.float32
  tracked = state["1.num_batches_tracked"]
  assert tracked.shape == () and tracked.dtype == np.int64 and int(tracked) == 3
  assert type(state) is dict  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize("name", ["zip_dtypes.pth", "legacy.pth"])
def test_views_of_one_storage_are_independent_copies(name):
  obj = torch_io.load(DATA / name)
  tensors = obj.get("tensors", obj)
  np.testing.assert_array_equal(tensors["view_a"], [[2, 3, 4], [5, 6, 7]])
  np.testing.assert_array_equal(tensors["view_b"], [5, 7, 9, 11, 13])
  tensors["base"][:] = -1
  assert tensors["view_a"][0, 0] == 2
  assert tensors["scalar"].shape == () and float(tensors["scalar"]) == 2.5
  assert tensors["empty"].shape == (0, 3) and tensors["empty"].dtype == np.float32
  assert tensors["transposed"].shape == (5, 3)
  assert tensors["expanded"].shape == (3, 4)
  np.testing.assert_array_equal(tensors["expanded"], tensors["expanded"][:, :1].repeat(4, 1))


def test_nested_checkpoint_keeps_python_values():
  obj = torch_io.load(DATA / "zip_nested.pth")
  assert obj["epoch"] == 3 and obj["arch"] == "x" and obj["best"] == 0.25
  assert obj["history"] == [1, 2, 3] and obj["pair"] == (1, "a") and obj["none"] is None
  assert obj["tags"] == {"a", "b"}
  assert obj["optimizer"]["param_groups"] == [{"lr": 0.1, "params": [0]}]
  assert obj["optimizer"]["state"][0]["step"].shape == ()


def test_read_state_dict_unwraps_a_single_wrapper_key():
  nested = torch_io.read_state_dict(DATA / "zip_nested.pth")
  assert nested.keys() == torch_io.read_state_dict(DATA / "zip_model.pth").keys()
  assert list(torch_io.read_state_dict(DATA / "wrapped.pth")) == ["w", "b"]


def test_read_state_dict_with_key():
  assert list(torch_io.read_state_dict(DATA / "two_wrappers.pth", key="params")) == ["w", "b"]
  legacy = torch_io.read_state_dict(DATA / "legacy.pth", key="tensors")
  assert "view_a" in legacy


def test_read_state_dict_ambiguous_or_missing_key_lists_keys():
  with pytest.raises(CheckpointFormatError, match=r"'params', 'params_ema'.*key="):
    torch_io.read_state_dict(DATA / "two_wrappers.pth")
  with pytest.raises(CheckpointFormatError, match=r"no entry 'ema'.*'params'"):
    torch_io.read_state_dict(DATA / "two_wrappers.pth", key="ema")
  with pytest.raises(CheckpointFormatError, match="not a dict of arrays"):
    torch_io.read_state_dict(DATA / "zip_nested.pth", key="optimizer")


def test_custom_class_is_refused_without_stubs():
  with pytest.raises(UnsafeCheckpointError) as info:
    torch_io.load(DATA / "custom_class.pth")
  assert "'fakeconf.DictConfig'" in str(info.value) and "custom_class.pth" in str(info.value)
  assert (info.value.module, info.value.name) == ("fakeconf", "DictConfig")
  assert isinstance(info.value, CheckpointFormatError) and isinstance(info.value, ValueError)


def test_stubs_read_custom_classes_as_inert_data():
  state = torch_io.read_state_dict(DATA / "custom_class.pth", key="state_dict", stubs=STUBS)
  assert list(state) == ["w", "b"]
  obj = torch_io.load(DATA / "custom_class.pth", stubs=[("fakeconf", "*")])
  config = obj["config"]
  assert isinstance(config, torch_io.OpaqueObject)
  assert (config.stub_module, config.stub_qualname) == ("fakeconf", "DictConfig")
  assert config.state["_content"]["lr"] == 0.1
  assert config.state["_content"]["sub"].state["_content"] == {"a": 1}
  assert obj["milestones"].list_items == [10, 20]
  assert obj["milestones"].state == {"frozen": True}
  assert obj["epoch"] == 5


# --------------------------------------------------------------------------- malicious pickles


def _binunicode(s):
  data = s.encode()
  return b"X" + struct.pack("<I", len(data)) + data


def _payloads(marker):
  code = f"open({str(marker)!r}, 'w').close()"
  return {
      "global_os_system": b"\x80\x02cos\nsystem\n" + _binunicode(f"touch '{marker}'") + b"\x85R.",
      "stack_global_exec": (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93" + _binunicode(code)
                            + b"\x85R."),
      "inst_exec": b"(" + _binunicode(code) + b"ibuiltins\nexec\n.",
      # An innocent-looking OrderedDict whose single value is the call.
      "inside_state_dict": (b"\x80\x02ccollections\nOrderedDict\n)R(" + _binunicode("w")
                            + b"cbuiltins\nexec\n" + _binunicode(code) + b"\x85Ru."),
  }


def _zip_with_pickle(path, payload):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", payload)
    zf.writestr("archive/byteorder", "little")
    zf.writestr("archive/version", "3\n")


def _legacy_with_pickle(path, payload):
  header = b"".join(pickle.dumps(x, protocol=2) for x in (
      0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
  path.write_bytes(header + payload + pickle.dumps([], protocol=2))


@pytest.mark.parametrize("kind", ["global_os_system", "stack_global_exec", "inst_exec",
                                  "inside_state_dict"])
@pytest.mark.parametrize("writer", [_zip_with_pickle, _legacy_with_pickle])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, kind, writer):
  marker = tmp_path / "pwned"
  payload = _payloads(marker)[kind]
  pickle.loads(payload)  # Control: the payload really works with a plain unpickler.
  assert marker.exists()
  marker.unlink()

  path = tmp_path / "model.pth"
  writer(path, payload)
  with pytest.raises(UnsafeCheckpointError, match=r"refusing to load .*model\.pth.*pickled code"):
    torch_io.load(path)
  with pytest.raises(UnsafeCheckpointError):
    torch_io.read_state_dict(path, stubs=STUBS)
  assert not marker.exists()


def test_stubbed_callable_is_inert(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "model.pth"
  _zip_with_pickle(path, _payloads(marker)["global_os_system"])
  obj = torch_io.load(path, stubs=[("os", "system")])
  assert isinstance(obj, torch_io.OpaqueObject) and obj.args == (f"touch '{marker}'",)
  assert not marker.exists()


# ------------------------------------------------------------------------- damaged / foreign files


def _rezip(src, dst, edit=None, extra=(), compression=zipfile.ZIP_STORED):
  """Copies a zip, replacing members via `edit(name, data) -> data` and adding `extra` ones."""
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
    for info in zin.infolist():
      data = zin.read(info.filename)
      zout.writestr(info.filename, edit(info.filename, data) if edit else data)
    for name, data in extra:
      zout.writestr(name, data)


@pytest.mark.parametrize("name", ["zip_model.pth", "zip_nested.pth"])
def test_truncated_zip(tmp_path, name):
  data = (DATA / name).read_bytes()
  for cut in (10, len(data) // 2, len(data) - 1):
    path = tmp_path / f"cut{cut}.pth"
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointFormatError, match=rf"cut{cut}\.pth is truncated"):
      torch_io.load(path)


def test_truncated_legacy(tmp_path):
  data = (DATA / "legacy.pth").read_bytes()
  for cut in (20, 100, 200, len(data) // 3, len(data) // 2, len(data) - 1):
    path = tmp_path / f"cut{cut}.pth"
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointFormatError, match=rf"cut{cut}\.pth is truncated"):
      torch_io.load(path)


def test_storage_shorter_than_tensor(tmp_path):
  path = tmp_path / "short.pth"
  _rezip(DATA / "zip_model.pth", path,
         edit=lambda n, d: d[:8] if n.endswith("/data/0") else d)
  with pytest.raises(CheckpointFormatError,
                     match=r"short\.pth is truncated.*storage 'zip_model/data/0' has 8 bytes, "
                     r"tensor needs 432"):
    torch_io.load(path)


def test_deflated_members_still_read(tmp_path):
  path = tmp_path / "deflated.pth"
  _rezip(DATA / "zip_dtypes.pth", path, compression=zipfile.ZIP_DEFLATED)
  got = torch_io.load(path)
  want = _loaded("zip_dtypes.pth")
  assert list(got) == list(want)
  for k, v in want.items():
    np.testing.assert_array_equal(_bits(got[k]), _bits(v))


def test_big_endian_is_refused(tmp_path):
  path = tmp_path / "be.pth"
  _rezip(DATA / "zip_model.pth", path,
         edit=lambda n, d: b"big" if n.endswith("/byteorder") else d)
  with pytest.raises(CheckpointFormatError, match=r"be\.pth .*big.*little-endian"):
    torch_io.load(path)


def test_torchscript_is_refused(tmp_path):
  path = tmp_path / "scripted.pt"
  _rezip(DATA / "zip_model.pth", path,
         extra=[("zip_model/constants.pkl", b"\x80\x02)."), ("zip_model/code/__torch__.py", b"")])
  with pytest.raises(CheckpointFormatError, match=r"scripted\.pt is a TorchScript archive"):
    torch_io.load(path)


@pytest.mark.parametrize("name,content", [
    ("x.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"),
    ("notes.txt", b"this is not a checkpoint\n"),
    ("plain.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=2)),
])
def test_foreign_file_is_not_a_checkpoint(tmp_path, name, content):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(CheckpointFormatError) as info:
    torch_io.load(path)
  assert str(info.value) == (f"{path} is not a PyTorch checkpoint (neither a zip archive nor a "
                             "legacy torch pickle)")


def test_zip_without_data_pkl(tmp_path):
  path = tmp_path / "arrays.npz"
  np.savez(path, a=np.zeros(3))
  with pytest.raises(CheckpointFormatError, match=r"arrays\.npz is a zip archive but not"):
    torch_io.load(path)


def test_missing_empty_and_directory(tmp_path):
  missing = tmp_path / "nope" / "model.pth"
  with pytest.raises(CheckpointFormatError, match=rf"{missing} does not exist"):
    torch_io.read_state_dict(missing)
  empty = tmp_path / "empty.pth"
  empty.write_bytes(b"")
  with pytest.raises(CheckpointFormatError, match=r"empty\.pth is empty"):
    torch_io.load(empty)
  with pytest.raises(CheckpointFormatError, match="is a directory"):
    torch_io.load(tmp_path)


# ------------------------------------------------------------------------------------ helpers


def test_strip_prefix():
  state = {"module.a": 1, "module.b.c": 2, "d": 3}
  assert torch_io.strip_prefix(state, "module.") == {"a": 1, "b.c": 2, "d": 3}
  with pytest.raises(ValueError, match="collide"):
    torch_io.strip_prefix({"module.a": 1, "a": 2}, "module.")


def test_real_llflow_fixture():
  state = torch_io.read_state_dict(SMALL_PTH)
  assert len(state) >= 200
  weight = state["RRDB.conv_first.weight"]
  assert weight.shape == (8, 12, 3, 3) and weight.dtype == np.float32
  assert all(v.dtype == np.float32 for v in state.values())
  assert np.isfinite(weight).all() and np.abs(weight).max() > 0


# ------------------------------------------------------------------- hand-made tensor pickles


def _ints(values):
  return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def _storage_pid():
  return (b"(" + _binunicode("storage") + b"ctorch\nFloatStorage\n" + _binunicode("0")
          + _binunicode("cpu") + b"K\x01tQ")


def _tensor_zip(path, size, stride, offset=0, tail=b""):
  """A zip whose data.pkl rebuilds one float tensor on a 1-element storage (value 1.5)."""
  payload = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + _storage_pid()
             + b"J" + struct.pack("<i", offset) + _ints(size) + _ints(stride) + b"\x89Nt" + b"R"
             + tail + b".")
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", payload)
    zf.writestr("archive/data/0", np.float32(1.5).tobytes())


def test_hand_made_tensor(tmp_path):
  path = tmp_path / "one.pth"
  _tensor_zip(path, size=(1, 1), stride=(1, 1))
  np.testing.assert_array_equal(torch_io.load(path), np.full((1, 1), 1.5, np.float32))


_SHORT = r"truncated or corrupt: storage 'archive/data/0' has 4 bytes, tensor needs "


@pytest.mark.parametrize("size,stride,offset,match", [
    ((10,), (1,), 0, _SHORT + "40$"),
    ((1,), (1,), 1, _SHORT + "8$"),
    ((2,), (-1,), 1, r"corrupt: bad tensor geometry"),
    ((1,), (1,), -1, r"corrupt: bad tensor geometry"),
    ((1, 1), (1,), 0, r"corrupt: bad tensor geometry"),
])
def test_tensor_outside_its_storage_is_refused(tmp_path, size, stride, offset, match):
  path = tmp_path / "bad.pth"
  _tensor_zip(path, size, stride, offset)
  with pytest.raises(CheckpointFormatError, match=match):
    torch_io.load(path)


def test_pickle_cannot_modify_internal_objects(tmp_path):
  path = tmp_path / "build.pth"
  # BUILD with slot state on the storage object: would redirect the tensor's bytes.
  payload = (b"\x80\x02" + _storage_pid() + b"N}" + _binunicode("raw") + b"K\x05s\x86b.")
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", payload)
    zf.writestr("archive/data/0", np.float32(1.5).tobytes())
  with pytest.raises(CheckpointFormatError, match="build.pth is corrupt.*read-only"):
    torch_io.load(path)
