"""Writes the small ``torch.save`` files that tests/convert/test_torch_io.py reads without torch.

Run it (rarely: only to change the set of files) with torch installed, from the repository root:

  python tests/convert/data/make_torch_files.py

It needs torch==2.13.0 and numpy; the tests themselves never import torch. Besides the ``.pth``
files it writes ``expected.npz`` (the exact arrays, as torch sees them) and ``expected.json`` (a
manifest: for each array, its file, its path inside the loaded object and its dtype; ml_dtypes
types such as bfloat16 are stored in the npz as their raw unsigned-integer bits).
"""

import collections
import json
import os
import sys
import tempfile
import textwrap

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# A stand-in for a third-party config class (like OmegaConf's DictConfig) that a training
# checkpoint pickles along with its weights. It lives in its own importable module so that the
# pickle names the global `fakeconf.DictConfig`.
FAKECONF = textwrap.dedent('''
    class DictConfig:
      def __init__(self, content):
        self._content = dict(content)
        self._flags = {"readonly": False}

      def __getstate__(self):
        return {"_content": self._content, "_flags": self._flags}

      def __setstate__(self, state):
        self.__dict__.update(state)


    class ListConfig(list):
      def __init__(self, items):
        super().__init__(items)
        self.frozen = True
    ''')

# torch dtypes that numpy lacks: stored as these unsigned views, restored with ml_dtypes.
_BITS = {torch.bfloat16: torch.uint16, torch.float8_e4m3fn: torch.uint8}


def to_numpy(t: torch.Tensor) -> tuple[np.ndarray, str]:
  t = t.detach().contiguous()
  if t.dtype in _BITS:
    return t.view(_BITS[t.dtype]).numpy().copy(), str(t.dtype).removeprefix("torch.")
  return t.numpy().copy(), t.numpy().dtype.name


class Recorder:
  """Collects the expected arrays of every saved file."""

  def __init__(self):
    self.arrays = {}
    self.manifest = []

  def save(self, obj, name, **kwargs):
    torch.save(obj, os.path.join(HERE, name), **kwargs)
    self._walk(obj, name, [])

  def _walk(self, obj, name, path):
    if isinstance(obj, torch.Tensor):
      array, dtype = to_numpy(obj)
      entry = f"a{len(self.manifest)}"
      self.arrays[entry] = array
      self.manifest.append({"file": name, "path": path, "dtype": dtype, "entry": entry})
    elif isinstance(obj, dict):
      for k, v in obj.items():
        self._walk(v, name, path + [k])
    elif isinstance(obj, (list, tuple)):
      for i, v in enumerate(obj):
        self._walk(v, name, path + [i])


def model_state_dict():
  model = torch.nn.Sequential(
      torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
      torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
  model.train()
  for _ in range(3):  # Non-trivial running stats and num_batches_tracked.
    model(torch.randn(2, 3, 6, 6))
  return model.state_dict()


def dtype_tensors(legacy: bool):
  base = torch.arange(20, dtype=torch.float32)
  tensors = {
      "f16": torch.randn(2, 3).half(),
      "bf16": torch.randn(3, 2).bfloat16(),
      "f64": torch.randn(4).double(),
      "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
      "u8": torch.tensor([0, 1, 200, 255], dtype=torch.uint8),
      "bool": torch.tensor([[True, False], [False, True]]),
      "i16": torch.tensor([-3, 30000], dtype=torch.int16),
      "i32": torch.tensor([-5, 2**31 - 1], dtype=torch.int32),
      "i64": torch.tensor([-(2**62), 7], dtype=torch.int64),
      "c64": torch.tensor([1 + 2j, -3j], dtype=torch.complex64),
      "transposed": torch.randn(3, 5).t(),
      "permuted": torch.randn(2, 3, 4).permute(2, 0, 1),
      "channels_last": torch.randn(4, 3, 3, 3).to(memory_format=torch.channels_last),
      "expanded": torch.randn(3, 1).expand(3, 4),
      "base": base,
      "view_a": base[2:8].view(2, 3),  # Two views sharing base's storage.
      "view_b": base[5:15:2],
      "scalar": torch.tensor(2.5),
      "int_scalar": torch.tensor(9),
      "empty": torch.empty(0, 3),
      "param": torch.nn.Parameter(torch.randn(2, 2)),
      "frozen_param": torch.nn.Parameter(torch.randn(3), requires_grad=False),
  }
  if not legacy:  # Saved with _rebuild_tensor_v3 on untyped storages.
    tensors["u16"] = torch.tensor([1, 2, 60000]).to(torch.uint16)
    tensors["f8"] = torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn)
  return tensors


def main():
  torch.manual_seed(0)
  fakeconf_dir = tempfile.mkdtemp()
  with open(os.path.join(fakeconf_dir, "fakeconf.py"), "w") as f:
    f.write(FAKECONF)
  sys.path.insert(0, fakeconf_dir)
  import fakeconf  # pylint: disable=import-error,import-outside-toplevel

  rec = Recorder()
  small = collections.OrderedDict(w=torch.randn(2, 3), b=torch.zeros(2))
  rec.save(model_state_dict(), "zip_model.pth")
  rec.save(dtype_tensors(legacy=False), "zip_dtypes.pth")
  rec.save(model_state_dict(), "zip_protocol4.pth", pickle_protocol=4)
  rec.save({
      "state_dict": model_state_dict(),
      "epoch": 3,
      "arch": "x",
      "best": 0.25,
      "history": [1, 2, 3],
      "pair": (1, "a"),
      "none": None,
      "tags": {"a", "b"},
      "optimizer": {
          "state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.randn(2, 3)}},
          "param_groups": [{"lr": 0.1, "params": [0]}],
      },
  }, "zip_nested.pth")
  rec.save({"model": model_state_dict(), "tensors": dtype_tensors(legacy=True), "epoch": 3},
           "legacy.pth", _use_new_zipfile_serialization=False)
  rec.save({
      "state_dict": small,
      "config": fakeconf.DictConfig({"lr": 0.1, "sub": fakeconf.DictConfig({"a": 1})}),
      "milestones": fakeconf.ListConfig([10, 20]),
      "epoch": 5,
  }, "custom_class.pth")
  rec.save({"params_ema": small, "iter": 10}, "wrapped.pth")
  rec.save({"params": small, "params_ema": small}, "two_wrappers.pth")

  np.savez(os.path.join(HERE, "expected.npz"), **rec.arrays)
  with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(rec.manifest, f, indent=1)
  total = sum(os.path.getsize(os.path.join(HERE, n)) for n in os.listdir(HERE))
  print(f"wrote {len(rec.manifest)} arrays; data folder is {total} bytes")


if __name__ == "__main__":
  main()
