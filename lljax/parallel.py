"""Device mesh, shardings and global batches for jit-sharded data-parallel training.

One 1-D mesh with axis ``"data"``: batches are split along their first axis; parameters and
optimizer state are replicated, or with ``config.mesh.fsdp`` their large arrays are sharded over
the same axis (ZeRO-3/FSDP style: XLA all-gathers them where they are used). Every process feeds its own rows and
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


def host_tree(tree):
  """A NumPy copy of a tree of (possibly sharded, multi-process) arrays on this host; in a
  multi-process run every process must call it (it gathers the other processes' shards)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return multihost_utils.process_allgather(tree, tiled=True)


def global_batch(local_batch, mesh):
  """Process-local numpy batch (dict of arrays) -> global jax arrays sharded on "data"."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def replicate(tree, mesh):
  """Puts a host tree on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def fsdp_spec(shape, num_shards, min_size=2**18):
  """PartitionSpec sharding the largest axis divisible by ``num_shards`` of an array with at
  least ``min_size`` elements over "data"; ``P()`` (replicated) for small or indivisible ones."""
  if num_shards <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % num_shards == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def state_shardings(tree, mesh, fsdp=False, min_size=2**18):
  """NamedShardings for a params/optimizer-state tree (arrays or ShapeDtypeStructs): replicated,
  or FSDP-sharded with ``fsdp=True`` (see ``fsdp_spec``)."""
  n = mesh.devices.size
  def one(leaf):
    shape = getattr(leaf, "shape", ())
    return NamedSharding(mesh, fsdp_spec(shape, n, min_size) if fsdp else P())
  return jax.tree.map(one, tree)
