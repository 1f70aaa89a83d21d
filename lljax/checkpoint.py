"""Checkpoints: training states (Orbax ``CheckpointManager``) and exported model directories.

Layouts:

* a **model directory** (``python -m lljax.convert`` output, or any directory ``lljax.load``
  reads): ``model.json`` (``{"model": name, "config": model kwargs, ...}``) and ``params/``
  (an Orbax standard checkpoint of the params tree);
* a **training workdir**: ``model.json``, ``config.json`` and ``checkpoints/<step>/`` with the
  items ``params``, ``opt_state`` and ``meta`` (JSON: step, data position...).

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


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


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


class TrainCheckpoints:
  """Orbax ``CheckpointManager`` over ``workdir/checkpoints`` for {params, opt_state, meta}."""

  def __init__(self, workdir, max_to_keep=3, async_save=True):
    directory = pathlib.Path(workdir).absolute() / CHECKPOINTS_DIR
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step, params, opt_state, meta):
    self._manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta)))

  def restore(self, step, abstract_params, abstract_opt_state):
    """Returns (params, opt_state, meta) of ``step``, shaped and sharded like the abstract trees."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(abstract_params)),
        opt_state=ocp.args.StandardRestore(_abstract(abstract_opt_state)),
        meta=ocp.args.JsonRestore()))
    return restored.params, restored.opt_state, restored.meta

  def restore_params(self, step, abstract_params):
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(abstract_params))))
    return restored.params

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
