"""The models a demo offers: one entry per ``--models`` directory, the settings the page shows for
it, and its ``Restorer``, loaded on first use (so the server answers at once).

A directory that is not a model stays in the list with the reason, which the page shows.
"""

import inspect
import pathlib

from lljax import api, checkpoint, models

TEMPERATURE_RANGE = {"min": 0.0, "max": 1.0, "step": 0.05}


def one_line(error):
  """An exception (or text) as one line for the page: whitespace runs become single spaces."""
  return " ".join(str(error).split()) or type(error).__name__


def controls(family, enhance_image=api.Restorer.enhance_image):
  """The settings the page shows for a model family (JSON-ready).

  Returns {"kernel": whether a blur kernel image is needed (INFWIDE),
  "temperature": {"default", "min", "max", "step"} for flows,
  "exposure": {"default"} when ``enhance_image`` takes an ``exposure`` argument}: the exposure
  control follows ``Restorer.enhance_image``'s signature, so it appears as soon as the API has
  it; its default is the signature's (None: the model's own choice, sent as nothing).
  """
  params = inspect.signature(enhance_image).parameters
  out = {"kernel": bool(getattr(family, "NEEDS_KERNEL", False))}
  if family.KIND == "flow" and "temperature" in params:
    out["temperature"] = {"default": params["temperature"].default, **TEMPERATURE_RANGE}
  if "exposure" in params:
    default = params["exposure"].default
    out["exposure"] = {"default": None if default is inspect.Parameter.empty else default}
  return out


class Entry:
  """One model directory: its ``model.json`` (or why it is not a model) and, once used, its Restorer.

  Attributes:
    index: position in ``--models`` (the id the page sends). directory: the path as given.
    spec: the parsed ``model.json`` or None. family: the model package or None.
    error: one line saying why the directory is not a model, or None.
  """

  def __init__(self, index, directory):
    self.index, self.directory = index, pathlib.Path(directory)
    self.spec = self.family = self.error = None
    self._restorer = None
    try:
      self.spec = checkpoint.read_model_spec(self.directory)
      self.family = models.get(self.spec["model"])
    except (OSError, ValueError, KeyError, TypeError) as e:  # missing, unreadable or foreign model.json
      self.error = one_line(e if not isinstance(e, KeyError) else f"{self.directory}/model.json has no {e}")

  def describe(self):
    """The page's view of this entry (JSON-ready)."""
    name = self.spec["model"] if self.spec else None
    out = {"id": self.index, "directory": str(self.directory), "model": name, "error": self.error,
           "label": f"{self.directory.name or self.directory} ({name or 'not a model'})"}
    if self.family is not None:
      out["controls"] = controls(self.family)
    return out

  def restorer(self):
    """The loaded Restorer (loads on the first call; call from the demo's worker thread only)."""
    if self.error:
      raise ValueError(self.error)
    if self._restorer is None:
      self._restorer = api.load(self.directory)
    return self._restorer


def catalog(directories):
  """[Entry] for ``directories``; ValueError when none of them is a model."""
  entries = [Entry(i, d) for i, d in enumerate(directories)]
  if not any(e.error is None for e in entries):
    raise ValueError("none of the --models directories is a model: " + "; ".join(e.error for e in entries))
  return entries
