"""Device mesh, shardings and global batches for jit-sharded data-parallel training.

One 1-D mesh with axis ``"data"``: parameters and optimizer state are replicated, batches are
split along their first axis. Every process feeds its own rows and
``jax.make_array_from_process_local_data`` assembles the global array, so the same code runs on
one CPU, on ``--xla_force_host_platform_device_count=N`` fake devices, on a GPU box or a TPU pod.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices=-1):
  """A ("data",) mesh over the first ``num_devices`` devices (-1: all)."""
  devices = jax.devices()
  if num_devices not in (-1, None):
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"config.mesh.data={num_devices} but {len(devices)} devices are available")
    devices = devices[:num_devices]
  return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharding(mesh):
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size, mesh):
  """Raises a clear error when the global batch does not split evenly over devices/processes."""
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {n} devices of the mesh; "
                     f"use a multiple of {n} or set config.mesh.data")
  if batch_size % jax.process_count():
    raise ValueError(f"batch_size {batch_size} is not divisible by {jax.process_count()} processes")


def global_batch(local_batch, mesh):
  """Process-local numpy batch (dict of arrays) -> global jax arrays sharded on "data"."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def replicate(tree, mesh):
  """Puts a host tree on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))
