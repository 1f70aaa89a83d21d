"""Small helpers the tests share (importable as ``helpers``: pytest puts this directory, the one
of ``conftest.py``, on ``sys.path``)."""

import functools
import pathlib

import jax
import numpy as np

from lljax import models, parallel
from lljax.convert import load_torch_params
from lljax.trainers import common

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def nhwc(x):
  """NCHW (torch) -> NHWC: the channel axis (third from last) moved last."""
  return np.moveaxis(np.asarray(x), -3, -1)


@functools.lru_cache(maxsize=None)
def converted_fixture(model):
  """(the model's ``small_io.npz`` arrays, the module converted ``small.pth`` builds, its params)."""
  io = dict(np.load(FIXTURES / model / "small_io.npz"))
  config, params, _ = load_torch_params(model, FIXTURES / model / "small.pth")
  return io, models.get(model).Model(**config), params


def override(config, **dotted):
  """Sets ``config`` fields by dotted name (``override(c, **{"mesh.data": 2})``); returns it."""
  for key, value in dotted.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


# XLA:CPU spends most of a tiny model's step time optimising its code; the values are the same.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def train_step(trainer, config, params, mesh, **kwargs):
  """(jitted step, initial state) exactly as ``common.train`` builds them (``common.step_and_state``)."""
  return common.step_and_state(trainer, config, params, mesh, **kwargs)


def on_mesh(batch, devices):
  """(mesh over the first ``devices`` devices, the numpy ``batch`` sharded over it)."""
  mesh = parallel.make_mesh(devices)
  return mesh, parallel.global_batch(batch, mesh)


def host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))
