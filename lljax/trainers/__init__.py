"""Trainers, one per paradigm: ``flow`` (NLL), ``gan`` (unpaired LSGAN, DEvUDP), ``supervised``
(pixel objectives, INFWIDE).

Each module exports ``train(config, workdir)``. ``get(kind)`` returns the module for a model
family's ``KIND``.
"""

import importlib

KINDS = ("flow", "gan", "supervised")


def get(kind):
  if kind not in KINDS:
    raise ValueError(f"no trainer for model kind {kind!r}; available: {', '.join(KINDS)}")
  return importlib.import_module(f"{__name__}.{kind}")
