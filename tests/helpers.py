"""Small helpers the tests share (importable as ``helpers``: pytest puts this directory, the one
of ``conftest.py``, on ``sys.path``)."""

import jax
import numpy as np

from lljax import parallel
from lljax.trainers import common


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
