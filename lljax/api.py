"""The public Python API: ``lljax.load(directory)`` -> a ``Restorer``.

A directory is either a training workdir (``python -m lljax.train``; the latest checkpoint is
used unless ``step`` is given) or a converted release (``python -m lljax.convert``). Images at
the API are NHWC float32 in [0, 1]; model-specific preprocessing (LLFlow's histogram
equalisation and log input, padding to the model's size multiple) happens inside.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from lljax import checkpoint, models
from lljax.losses import nll_bits_per_pixel
from lljax.utils.images import to_uint8


def _as_images(images, name="images"):
  """NHWC (or a single HWC) float array in [0, 1] -> float32 NHWC numpy."""
  x = np.asarray(images, np.float32)
  if x.ndim == 3:
    x = x[None]
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"{name} must be NHWC (or HWC) RGB arrays, got shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contain NaN or Inf values")
  if x.min() < -1e-3 or x.max() > 1 + 1e-3:
    raise ValueError(f"{name} must be in [0, 1] (got [{x.min():.3g}, {x.max():.3g}]); divide uint8 by 255")
  return np.clip(x, 0.0, 1.0)


def pad_to_multiple(x, multiple):
  """Reflect-pads NHWC ``x`` at the bottom/right to a multiple of ``multiple`` -> (padded, (h, w))."""
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
  return x, (h, w)


class Restorer:
  """A model and its params, ready for inference.

  Attributes:
    model_name: e.g. ``"llflow"``.
    config: model hyper-parameters (the kwargs of ``Model``).
    module: the Flax module. params: its parameters.
  """

  def __init__(self, model_name, config, params):
    self.model_name = model_name
    self.config = dict(config)
    self.family = models.get(model_name)
    self.module = self.family.Model(**self.config)
    self.params = params
    self._enhance = jax.jit(self._enhance_fn)
    self._encode = jax.jit(self._encode_fn)

  def _enhance_fn(self, params, inputs, temperature, rng):
    return self.module.apply({"params": params}, inputs, temperature, rng, method=self.module.enhance)

  def _encode_fn(self, params, inputs, normal):
    out = self.module.apply({"params": params}, inputs, normal, method=self.module.encode)
    pixels = normal.shape[1] * normal.shape[2]
    return {**out, "nll": nll_bits_per_pixel(out["z"], out["logdet"], out["prior_mean"], pixels)}

  def model_inputs(self, low):
    """Host preprocessing of NHWC float [0, 1] low images: {"low", **host features}, unpadded."""
    inputs = {"low": low}
    extra = [self.family.host_features(to_uint8(im)) for im in low]
    for key in extra[0] if extra else ():
      inputs[key] = np.stack([e[key] for e in extra]).astype(np.float32) / 255.0
    return inputs

  def enhance(self, images, temperature=0.0, seed=0, clip=True):
    """Enhances NHWC float32 images in [0, 1]; returns the same shape.

    Host features (e.g. histogram equalisation) are computed on the unpadded image; image and
    features are then reflect-padded at the bottom/right to the model's multiple and the output
    is cropped back. ``temperature`` > 0 samples flow latents (z = mean + temperature * eps);
    ``clip=False`` returns the raw, unbounded model output.
    """
    low = _as_images(images)
    inputs = {k: pad_to_multiple(v, self.family.PAD_MULTIPLE)[0] for k, v in self.model_inputs(low).items()}
    rng = jax.random.key(seed)
    out = self._enhance(self.params, inputs, jnp.float32(temperature), rng)
    out = np.asarray(out)[:, : low.shape[1], : low.shape[2]]
    return np.clip(out, 0.0, 1.0) if clip else out

  def encode(self, low, normal):
    """Flow models: encodes ``normal`` given ``low`` -> {"z", "logdet", "prior_mean", "nll"}.

    ``nll`` is in bits per pixel location as the official code logs it (no dequantisation noise).
    Sizes must already be multiples of the model's size multiple (no padding: it would change
    the likelihood).
    """
    if self.family.KIND != "flow":
      raise TypeError(f"{self.model_name} is not a flow model; encode() is for flows")
    low, normal = _as_images(low, "low"), _as_images(normal, "normal")
    if low.shape != normal.shape:
      raise ValueError(f"low {low.shape} and normal {normal.shape} differ in shape")
    m = self.family.PAD_MULTIPLE
    if low.shape[1] % m or low.shape[2] % m:
      raise ValueError(f"encode() needs H and W divisible by {m}, got {low.shape[1]}x{low.shape[2]}")
    out = self._encode(self.params, self.model_inputs(low), normal)
    return jax.tree.map(np.asarray, out)


def _abstract_params(family, config):
  module = family.Model(**config)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))["params"]


def load(directory, step=None):
  """Loads a converted release or a training workdir (latest or given ``step``) as a Restorer."""
  directory = pathlib.Path(directory)
  spec = checkpoint.read_model_spec(directory)
  family = models.get(spec["model"])
  abstract = _abstract_params(family, spec["config"])
  if (directory / checkpoint.CHECKPOINTS_DIR).is_dir():
    ckpts = checkpoint.TrainCheckpoints(directory, async_save=False)
    step = ckpts.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory} has no checkpoint yet")
    params = ckpts.restore_params(step, abstract)
    ckpts.close()
  elif (directory / checkpoint.PARAMS_DIR).is_dir():
    params = checkpoint.restore_params(directory / checkpoint.PARAMS_DIR, abstract)
  else:
    raise FileNotFoundError(f"{directory} has {checkpoint.MODEL_FILE} but neither "
                            f"{checkpoint.CHECKPOINTS_DIR}/ nor {checkpoint.PARAMS_DIR}/")
  return Restorer(spec["model"], spec["config"], params)
