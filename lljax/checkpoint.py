"""Checkpoints: training states (Orbax ``CheckpointManager``) and exported model directories.

Layouts:

* a **model directory** (``python -m lljax.convert`` output, or any directory ``lljax.load``
  reads): ``model.json`` (``{"model": name, "config": model kwargs, ...}``) and ``params/``
  (an Orbax standard checkpoint of the params tree);
* a **training workdir**: ``model.json``, ``config.json`` and ``checkpoints/<step>/`` with the
  items ``state`` (the train state ``{"step", "params", "opt"}`` as it is) and ``meta`` (JSON:
  step, seed). Checkpoints of lljax before the one train state (items ``params`` and
  ``opt_state``) still load for inference (``load_params``), not for resuming.

Writes never damage what is there: Orbax commits a step by renaming a finished temporary
directory, and ``export_model`` builds the whole directory under a temporary name first.
"""

import json
import os
import pathlib
import shutil
import tempfile

import jax
import orbax.checkpoint as ocp

MODEL_FILE = "model.json"
PARAMS_DIR = "params"
CHECKPOINTS_DIR = "checkpoints"


def _abstract(tree, sharding=None):
  """ShapeDtypeStructs of ``tree`` that keep their shardings; leaves without one get ``sharding``
  (default: the first local device). Restoring with explicit shardings loads a checkpoint written by
  any number of processes and devices onto this process's devices."""
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def one(leaf):
    leaf = ocp.utils.to_shape_dtype_struct(leaf)
    return leaf if getattr(leaf, "sharding", None) is not None else jax.ShapeDtypeStruct(
        leaf.shape, leaf.dtype, sharding=sharding)

  return jax.tree.map(one, tree)


def write_json(path, obj):
  """Writes JSON atomically (temporary file in the same directory, then rename)."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
    f.write("\n")
  os.chmod(tmp, 0o644)
  os.replace(tmp, path)


def read_model_spec(directory):
  """Returns the parsed ``model.json`` of a model directory or workdir."""
  path = pathlib.Path(directory) / MODEL_FILE
  if not path.is_file():
    raise FileNotFoundError(
        f"{directory} is not an lljax model directory or training workdir (no {MODEL_FILE}); "
        "convert a checkpoint with `python -m lljax.convert` or train with `python -m lljax.train`")
  with open(path) as f:
    return json.load(f)


def save_params(path, params):
  """Saves a params tree as an Orbax standard checkpoint at ``path`` (must not exist)."""
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(pathlib.Path(path).absolute(), params)


def restore_params(path, abstract_params):
  """Restores a params tree saved by ``save_params``; ``abstract_params`` gives the structure."""
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(pathlib.Path(path).absolute(), _abstract(abstract_params))


def export_model(output, model_name, config, params, info=None):
  """Writes a model directory (``model.json`` + ``params/``) atomically.

  Refuses to touch an existing non-empty ``output``: a user's files are never overwritten.
  """
  output = pathlib.Path(output).absolute()
  if output.exists() and (not output.is_dir() or any(output.iterdir())):
    raise FileExistsError(f"{output} already exists and is not empty; choose a new --output directory")
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
  try:
    write_json(tmp / MODEL_FILE, {"model": model_name, "config": config, **(info or {})})
    save_params(tmp / PARAMS_DIR, params)
    if output.exists():
      output.rmdir()
    os.rename(tmp, output)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return output


def load_params(directory, abstract_params, step=None):
  """The params of a model directory or training workdir (its latest checkpoint, or ``step``),
  shaped like ``abstract_params`` and placed on this process's first device unless the abstract
  leaves carry shardings."""
  directory = pathlib.Path(directory)
  if (directory / CHECKPOINTS_DIR).is_dir():
    ckpts = TrainCheckpoints(directory, async_save=False)
    try:
      step = ckpts.latest_step() if step is None else step
      if step is None:
        raise FileNotFoundError(f"{directory} has no checkpoint yet")
      return ckpts.restore_params(step, abstract_params)
    finally:
      ckpts.close()
  if (directory / PARAMS_DIR).is_dir():
    return restore_params(directory / PARAMS_DIR, abstract_params)
  raise FileNotFoundError(f"{directory} has {MODEL_FILE} but neither {CHECKPOINTS_DIR}/ nor {PARAMS_DIR}/")


class TrainCheckpoints:
  """Orbax ``CheckpointManager`` over ``workdir/checkpoints`` for {state, meta}."""

  def __init__(self, workdir, max_to_keep=3, async_save=True):
    self._directory = pathlib.Path(workdir).absolute() / CHECKPOINTS_DIR
    self._options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self._directory, options=self._options)

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step, state, meta):
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)))

  def restore(self, step, abstract_state):
    """Returns (state, meta) of ``step``, shaped and sharded like ``abstract_state``."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(abstract_state)), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def restore_params(self, step, abstract_params):
    """Only the params of ``step`` (a partial restore of the state; older checkpoints: the
    ``params`` item)."""
    if (self._directory / str(step) / "params").is_dir():  # lljax before the one train state
      restored = self._manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(_abstract(abstract_params))))
      return restored.params
    target = {"params": _abstract(abstract_params)}
    # A manager of its own: the running one has registered a StandardRestore handler for "state".
    manager = ocp.CheckpointManager(self._directory, options=self._options)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True)))
    finally:
      manager.close()
    return restored.state["params"]

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
