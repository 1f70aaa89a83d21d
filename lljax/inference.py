"""Jitted inference programs of a model and the batch enhance both the API and the trainers use.

Images are NHWC float32 in [0, 1]. ``enhance_batch`` computes the model's host features (e.g.
LLFlow's histogram equalisation) on the unpadded images, reflect-pads image and features at the
bottom/right to the model's size multiple, runs the jitted program and crops back.
"""

import dataclasses
import functools
import json
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lljax import models
from lljax.losses import nll_bits_per_pixel
from lljax.nn import image_stats, precision
from lljax.utils.images import to_uint8


@dataclasses.dataclass(frozen=True)
class Programs:
  """Jitted functions of one architecture; params are arguments, so one compilation per shape
  serves every checkpoint. ``prior`` is None for models without a global prior map;
  ``statistics`` records the whole-image statistics of ``lljax.nn.image_stats`` ({} for models
  without any), which ``enhance`` then takes as ``stats``."""

  enhance: Callable
  encode: Callable
  prior: Optional[Callable]
  statistics: Callable


def programs(model_name, config, precision_setting="highest"):
  """The ``Programs`` of ``models.get(model_name).Model(**config)`` traced under the
  ``lljax.nn.precision.policy`` ``precision_setting``, built once per process."""
  return _programs(model_name, json.dumps(config, sort_keys=True, default=repr), precision_setting)


@functools.lru_cache(maxsize=16)
def _programs(model_name, config_json, precision_setting):
  module = models.get(model_name).Model(**json.loads(config_json))
  precision.checked(precision_setting)

  def traced(fn):
    def run(*args):
      with precision.policy(precision_setting):
        return fn(*args)
    return jax.jit(run)

  def enhance(params, inputs, temperature, rng, prior_map=None, stats=None):
    extra = {} if prior_map is None else {"prior_map": prior_map}
    variables = {"params": params} if stats is None else {"params": params, image_stats.COLLECTION: stats}
    out = module.apply(variables, inputs, temperature, rng, method=module.enhance, **extra)
    return out.astype(jnp.float32)  # bfloat16 compute still returns float32 images

  def statistics(params, inputs):
    _, recorded = module.apply({"params": params}, inputs, jnp.float32(0.0), jax.random.key(0),
                               method=module.enhance, mutable=[image_stats.COLLECTION])
    return jax.tree.map(lambda v: v.astype(jnp.float32), dict(recorded.get(image_stats.COLLECTION, {})))

  def encode(params, inputs, normal):
    out = module.apply({"params": params}, inputs, normal, method=module.encode)
    pixels = normal.shape[1] * normal.shape[2]
    return {**out, "nll": nll_bits_per_pixel(out["z"], out["logdet"], out["prior_mean"], pixels)}

  def prior(params, inputs):
    return module.apply({"params": params}, inputs, method=module.prior_map).astype(jnp.float32)

  return Programs(traced(enhance), traced(encode), traced(prior) if hasattr(module, "prior_map") else None,
                  traced(statistics))


def pad_to_multiple(x, multiple):
  """Reflect-pads NHWC ``x`` at the bottom/right to a multiple of ``multiple`` -> (padded, (h, w))."""
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
  return x, (h, w)


def model_inputs(family, low):
  """Host preprocessing of NHWC float [0, 1] low images: {"low", **host features}, unpadded."""
  inputs = {"low": low}
  extra = [family.host_features(to_uint8(im)) for im in low]
  for key in extra[0] if extra else ():
    inputs[key] = np.stack([e[key] for e in extra]).astype(np.float32) / 255.0
  return inputs


def enhance_batch(family, progs, params, low, extra=None, temperature=0.0, rng=None):
  """The raw model output (NHWC float32, unclipped) of NHWC float32 ``low`` in [0, 1].

  ``extra``: further model inputs that are not images (INFWIDE's ``{"kernel": (B, kh, kw)}``).
  """
  inputs = {k: pad_to_multiple(v, family.PAD_MULTIPLE)[0] for k, v in model_inputs(family, low).items()}
  inputs.update(extra or {})
  rng = jax.random.key(0) if rng is None else rng
  out = progs.enhance(params, inputs, jnp.float32(temperature), rng)
  return np.asarray(out)[:, : low.shape[1], : low.shape[2]]
