"""Model registry: a model name is a package under ``lljax.models``.

Each model package exports:

* ``Model(variant=None, **overrides) -> flax.linen.Module``,
* ``VARIANTS``: named hyper-parameter sets (always with a ``"tiny"`` entry for tests),
* ``KIND``: the training paradigm (``"flow"``, ``"gan"`` or ``"supervised"``),
* ``CONVERTER``: the module path of its PyTorch converter (imported lazily; never torch),
* ``host_features(low_u8) -> dict``: per-image preprocessing that must run on the full image on
  the host before cropping (e.g. LLFlow's histogram equalisation); ``{}`` when not needed,
* ``PAD_MULTIPLE``: input sizes must be a multiple of this.

Optional hooks: ``PAD_MODE`` (eval padding, default 'reflect'); non-blind deblurring models
(INFWIDE) set ``NEEDS_KERNEL = True`` and ``KERNEL_SIZE`` (largest PSF side accepted), take
``(low, kernel)`` and get the blur kernel through the API, ``enhance`` and ``evaluate``;
supervised models name their training objective in ``OBJECTIVE``
(``lljax.trainers.supervised.OBJECTIVES``); flows whose learned prior has parameters of its
own list them in ``PRIOR_ONLY_PARAMS`` ('/'-joined path prefixes; see ``lljax.trainers.flow``);
``tile_multiple(module) -> int`` (default ``PAD_MULTIPLE``): tile origins of a tiled photo are
multiples of it, so that a tile sees the whole image's grids (UPT-Flow's attention windows).

Trainers and the public API reach models only through ``get(name)``.
"""

import importlib
import pkgutil

_PACKAGE = __name__


def available():
  """Names of the model packages."""
  pkg = importlib.import_module(_PACKAGE)
  return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg)


def get(name):
  """Returns the model package ``lljax.models.<name>``; ValueError naming the known models."""
  if name not in available():
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(available())}")
  return importlib.import_module(f"{_PACKAGE}.{name}")


def build(module_cls, variants, label, variant=None, overrides=None):
  """``module_cls(**variants[variant], **overrides)``: the body of every family's ``Model``.

  Lists become tuples (JSON configs give lists; Flax module fields must be hashable). An
  unknown variant is a ValueError naming the known ones.
  """
  if variant is not None and variant not in variants:
    raise ValueError(f"unknown {label} variant {variant!r}; known: {', '.join(variants)}")
  kwargs = {**(variants[variant] if variant else {}), **(overrides or {})}
  return module_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
