"""The models of a comparison: reading their families from ``model.json`` and loading them (a
directory that is not a model is a ``UsageError``), one timed run on the photo (noting whether XLA
compiled), and its metrics under the paper's protocol and ``honest``; a model that fails while it
runs gives a row with its error.
"""

import pathlib
import time

import numpy as np

from lljax.enhance import UsageError


def one_line(error):
  """An exception (or text) as one line: whitespace runs become single spaces."""
  return " ".join(str(error).split()) or type(error).__name__


def _not_a_model(directory, error):
  """UsageError for a ``--models`` directory, naming it once."""
  reason = one_line(error if not isinstance(error, KeyError) else f"model.json has no {error}")
  return UsageError(f"--models {directory}: {reason}" if str(directory) not in reason else f"--models: {reason}")


def model_families(directories):
  """[model family package] of each directory's ``model.json`` (fast: nothing is loaded).

  Raises UsageError for no directories or one that is not a model (naming it)."""
  from lljax import checkpoint, models  # pylint: disable=import-outside-toplevel

  if not directories:
    raise UsageError("no models: give one or more --models directories")
  families = []
  for directory in directories:
    try:
      families.append(models.get(checkpoint.read_model_spec(directory)["model"]))
    except (OSError, ValueError, KeyError, TypeError) as e:  # missing, unreadable or foreign model.json
      raise _not_a_model(directory, e) from None
  return families


def load_models(directories, precision="highest"):
  """[(Restorer, seconds to load)] for the directories; UsageError naming one that does not load."""
  import lljax  # pylint: disable=import-outside-toplevel

  model_families(directories)
  loaded = []
  for directory in directories:
    t0 = time.perf_counter()
    try:
      restorer = lljax.load(directory, precision=precision)
    except Exception as e:  # pylint: disable=broad-except  # missing or corrupt params, foreign files
      raise _not_a_model(directory, e) from None
    loaded.append((restorer, time.perf_counter() - t0))
  return loaded


def _timed_run(restorer, image, kernel, options):
  """(raw output HWC float32, seconds, whether XLA compiled a new program during the call)."""
  compiled = []
  previous = restorer.progress
  restorer.progress = lambda program, shape, compiling, tile, tiles: compiled.append(compiling)
  try:
    t0 = time.perf_counter()
    raw = restorer.enhance_image(image, kernel if restorer.needs_kernel else None, **options)
    return raw, time.perf_counter() - t0, any(compiled)
  finally:
    restorer.progress = previous


def paper_protocol(model_name):
  """The protocol spec of the model's paper ("honest" for models without one)."""
  from lljax.metrics import protocols  # pylint: disable=import-outside-toplevel
  return protocols.PAPER_PROTOCOL.get(model_name, "honest")


def measure(raw, target, model_name, lpips=False):
  """{protocol spec: metrics} of a raw output (HWC float, unclipped) against a uint8 HWC target:
  the model's paper protocol and ``honest`` (one entry when they are the same)."""
  from lljax.metrics import protocols  # pylint: disable=import-outside-toplevel
  specs = dict.fromkeys([paper_protocol(model_name), "honest"])
  return {spec: protocols.get(spec).measure(raw, target, with_lpips=lpips).metrics for spec in specs}


def _run_one(directory, restorer, load_seconds, image, target, kernel, options, warm, lpips):
  """(row dict, output HWC float in [0, 1] or None when the model failed)."""
  name = pathlib.Path(directory).resolve().name or str(directory)
  row = {"directory": str(directory), "model": restorer.model_name, "label": f"{restorer.model_name} - {name}",
         "load_seconds": load_seconds, "seconds": None, "includes_compilation": None, "seconds_warm": None,
         "paper_protocol": paper_protocol(restorer.model_name), "metrics": None, "error": None}
  try:
    raw, row["seconds"], row["includes_compilation"] = _timed_run(restorer, image, kernel, options)
    if warm:
      row["seconds_warm"] = _timed_run(restorer, image, kernel, options)[1]
    if target is not None:
      row["metrics"] = measure(raw, target, restorer.model_name, lpips)
  except Exception as e:  # pylint: disable=broad-except  # one failing model keeps its panel
    row["error"] = one_line(e)
    return row, None
  return row, np.clip(raw, 0.0, 1.0)
