"""PyTorch -> lljax checkpoint conversion (``python -m lljax.convert``).

``convert_checkpoint`` reads an official ``.pth`` with the torch-free reader, lets the model's
converter (``lljax.convert.<model>``: ``RULES``, ``infer_config``) infer the architecture from
the tensor shapes, maps every key strictly and writes an lljax model directory.
"""

import hashlib
import importlib

import jax

from lljax import checkpoint, models
from lljax.convert import mapping, torch_io

ConversionError = mapping.ConversionError


def sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _check_variant(family, model_name, variant, config):
  if variant not in family.VARIANTS:
    raise ValueError(f"unknown {model_name} variant {variant!r}; known: {', '.join(family.VARIANTS)}")
  expected = family.VARIANTS[variant]
  diff = {k: (config.get(k), v) for k, v in expected.items() if k in config and config[k] != v}
  if diff:
    details = ", ".join(f"{k}: checkpoint {a!r} vs {variant} {b!r}" for k, (a, b) in diff.items())
    raise mapping.ConversionError(f"the checkpoint is not the {variant!r} variant ({details})")


def load_torch_params(model_name, pth, variant=None, **infer_kwargs):
  """Reads ``pth`` and maps it onto the model. Returns (config, params, dropped_keys)."""
  family = models.get(model_name)
  converter = importlib.import_module(family.CONVERTER)
  read = getattr(converter, "read_state", torch_io.read_state_dict)  # e.g. INFWIDE's OmegaConf stubs
  state = torch_io.strip_prefix(read(pth), "module.")
  config = converter.infer_config(state, **infer_kwargs)
  if variant is not None:
    _check_variant(family, model_name, variant, config)
  module = family.Model(**config)
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))
  params, dropped = mapping.convert(state, converter.RULES, abstract["params"], source=str(pth))
  return config, params, dropped


def convert_checkpoint(model_name, pth, output, variant=None, **infer_kwargs):
  """Converts ``pth`` into the lljax model directory ``output``; returns the inferred config."""
  config, params, dropped = load_torch_params(model_name, pth, variant, **infer_kwargs)
  info = {"source": {"pth": str(pth), "sha256": sha256(pth), "dropped_unused_keys": dropped}}
  checkpoint.export_model(output, model_name, config, params, info)
  return config
