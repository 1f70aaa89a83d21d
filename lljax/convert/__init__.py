"""PyTorch -> lljax checkpoint conversion (``python -m lljax.convert``).

``convert_checkpoint`` reads an official ``.pth`` with the torch-free reader, lets the model's
converter (``lljax.convert.<model>``: ``RULES``, ``infer_config``) infer the architecture from
the tensor shapes, maps every key strictly and writes an lljax model directory.
"""

import hashlib
import importlib
import re

import jax

from lljax import checkpoint, models
from lljax.convert import mapping, torch_io

ConversionError = mapping.ConversionError


def sha256(path):
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _check_variant(family, model_name, variant, config):
  if variant not in family.VARIANTS:
    raise ValueError(f"unknown {model_name} variant {variant!r}; known: {', '.join(family.VARIANTS)}")
  expected = family.VARIANTS[variant]
  diff = {k: (config.get(k), v) for k, v in expected.items() if k in config and config[k] != v}
  if diff:
    details = ", ".join(f"{k}: checkpoint {a!r} vs {variant} {b!r}" for k, (a, b) in diff.items())
    raise mapping.ConversionError(f"the checkpoint is not the {variant!r} variant ({details})")


def _converter(model_name):
  return importlib.import_module(models.get(model_name).CONVERTER)


def _read_state(converter, pth):
  read = getattr(converter, "read_state", torch_io.read_state_dict)  # e.g. INFWIDE's OmegaConf stubs
  return torch_io.strip_prefix(read(pth), "module.")


def guess_model(keys):
  """The model whose converter's key patterns (``RULES``) match every key, or None.

  When several do (a converter may drop whole module families by name), the one that maps the
  most keys to parameters, rather than dropping them, wins.
  """
  keys, best = list(keys), None
  for name in models.available():
    rules = [(re.compile(r.pattern), r.target is mapping.DROP) for r in _converter(name).RULES]
    mapped = 0
    for key in keys:
      drop = next((d for pattern, d in rules if pattern.fullmatch(key)), None)
      if drop is None:
        break
      mapped += not drop
    else:
      if keys and (best is None or mapped > best[0]):
        best = (mapped, name)
  return best and best[1]


def _with_hint(error, model_name, other):
  """``error``'s message led by "looks like a checkpoint of model ``other``" (None: no hint)."""
  if other is None or other == model_name:
    return None
  return (f"this looks like a checkpoint of model {other!r}, not {model_name!r}: its keys fit "
          f"lljax.convert.{other} (use --model {other}). {error}")


def _guess_unreadable(pth, model_name):
  """For a file ``model_name``'s reader refused: another family whose reader reads it and whose
  key patterns match (e.g. INFWIDE's release files with their inert OmegaConf stubs)."""
  for name in models.available():
    converter = _converter(name)
    if name == model_name or not hasattr(converter, "read_state"):
      continue
    try:
      state = _read_state(converter, pth)
    except torch_io.CheckpointFormatError:
      continue
    if guess_model(state) == name:
      return name
  return None


def load_torch_params(model_name, pth, variant=None, **infer_kwargs):
  """Reads ``pth`` and maps it onto the model. Returns (config, params, dropped_keys).

  A checkpoint of another model fails with an error that names the model it looks like.
  """
  family = models.get(model_name)
  converter = _converter(model_name)
  try:
    state = _read_state(converter, pth)
  except torch_io.UnsafeCheckpointError as e:
    message = _with_hint(e, model_name, _guess_unreadable(pth, model_name))
    if message is None:
      raise
    raise torch_io.UnsafeCheckpointError(message, e.module, e.name) from e
  try:
    config = converter.infer_config(state, **infer_kwargs)
    if variant is not None:
      _check_variant(family, model_name, variant, config)
    module = family.Model(**config)
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))
    params, dropped = mapping.convert(state, converter.RULES, abstract["params"], source=str(pth))
  except mapping.ConversionError as e:
    message = _with_hint(e, model_name, guess_model(state))
    if message is None:
      raise
    raise mapping.ConversionError(message) from e
  return config, params, dropped


def convert_checkpoint(model_name, pth, output, variant=None, **infer_kwargs):
  """Converts ``pth`` into the lljax model directory ``output``; returns the inferred config."""
  config, params, dropped = load_torch_params(model_name, pth, variant, **infer_kwargs)
  info = {"source": {"pth": str(pth), "sha256": sha256(pth), "dropped_unused_keys": dropped}}
  checkpoint.export_model(output, model_name, config, params, info)
  return config
