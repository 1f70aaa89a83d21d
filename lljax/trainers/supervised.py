"""Trainer for supervised restoration models (INFWIDE): a pixel objective against the target.

Per step the model maps the batch's degraded input (plus its blur kernel for non-blind
deblurring) to its outputs and minimises the family's objective (``family.OBJECTIVE``, a key of
``OBJECTIVES``; INFWIDE: ``lljax.losses.infwide_loss``). Targets derived from the batch are made
on the device: ``clean_blurry`` = the sharp target circularly blurred by the kernel
(``lljax.nn.fft.circular_conv``), INFWIDE's denoiser and close-loop target; with
``config.data.saturation`` s > 0 the input is saturated as INFWIDE's data loader does,
``clip(s * x, 0, 1) / s`` (NightShot stores the unsaturated camera output).

Note on pre-degraded data: the official loader crops the sharp patch and blurs the crop
circularly, so ``clean_blurry`` and the input agree exactly; on datasets degraded at full size
(NightShot, embedded_photos) the crop of the blurred image differs from the circular blur of the
crop within a kernel radius of the crop border.

Optimizer and schedule: ``lljax.trainers.optim`` (INFWIDE: torch's AMSGrad, per-element
gradient value clipping, step decay); ``config.microbatches`` accumulates gradients over
sequential parts of the batch.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lljax import losses
from lljax.nn.fft import circular_conv
from lljax.trainers import common, optim, steps
from lljax.utils.kernels import check_kernels

OBJECTIVES = {"infwide": losses.infwide_loss}


def saturate(low, saturation):
  """INFWIDE's camera saturation of an input: ``clip(s x, 0, 1) / s`` (``s = 0``: as is)."""
  return jnp.clip(low * saturation, 0.0, 1.0) / saturation if saturation else low


def prepare_batch(batch, saturation=0.0):
  """Device-side derived fields: the saturated input and ``clean_blurry`` (when a kernel is given)."""
  batch = dict(batch)
  batch["low"] = saturate(batch["low"], saturation)
  if "kernel" in batch:
    batch["clean_blurry"] = circular_conv(batch["normal"], batch["kernel"])
  return batch


def model_args(family, batch):
  """Positional model inputs of a batch: (low, kernel) for kernel models, else (low,)."""
  if getattr(family, "NEEDS_KERNEL", False):
    return batch["low"], batch["kernel"]
  return (batch["low"],)


def loss_fn(module, family, objective, saturation, params, batch):
  batch = prepare_batch(batch, saturation)
  outputs = steps.to_float32(module.apply({"params": params}, *model_args(family, batch)))
  return objective(outputs, batch)


def make_gradients(module, family, config):
  """``gradients(params, batch) -> ((loss, loss parts), grads)`` over ``config.microbatches``
  sequential parts of the batch (parts stacked per microbatch)."""
  objective = OBJECTIVES[family.OBJECTIVE]
  grad_fn = jax.value_and_grad(functools.partial(loss_fn, module, family, objective, config.data.saturation),
                               has_aux=True)
  return lambda params, batch: steps.accumulate_gradients(grad_fn, params, batch, config.microbatches)


def make_update(module, family, tx, config):
  """The supervised update ``(state, batch, rng) -> (state, metrics)`` (see ``steps``)."""
  gradients = make_gradients(module, family, config)

  def update(state, batch, rng):
    del rng  # the step is deterministic given the batch
    (loss, parts), grads = gradients(state["params"], batch)
    params, opt, finite = optim.guarded_update(tx, state["params"], state["opt"], grads, loss)
    metrics = {"loss": loss, "finite": finite, "grad_norm": optax.global_norm(grads),
               **jax.tree.map(jnp.mean, parts)}
    return {**state, "params": params, "opt": opt}, metrics

  return update


def _needs_kernel(family):
  return bool(getattr(family, "NEEDS_KERNEL", False))


def kernel_field(example):
  """The example's blur kernel as a host field (INFWIDE trains only on data with kernels)."""
  if "kernel" not in example:
    raise ValueError(f"example {example.get('name')!r} has no blur kernel; INFWIDE trains on data with "
                     "kernels (embedded_photos/lowlight_blur, embedded_photos/night_blur, nightshot)")
  return {"kernel": np.asarray(example["kernel"], np.float32)}


def data_options(config, family):
  """Kernel data: the pipeline passes the kernel through uncropped, and the flips happen in
  ``host_batch`` so that the kernel is mirrored with its image."""
  kernels = _needs_kernel(family)
  return {"host_fn": kernel_field if kernels else None, "flip": config.data.flip and not kernels,
          "vflip": config.data.vflip and not kernels, "rot90": config.data.rot90}


def flip_with_kernels(batch, rng, flip=True, vflip=False):
  """Random horizontal/vertical flips per row of image fields AND their (B, kh, kw) kernels."""
  batch = dict(batch)
  for axis, enabled in ((2, flip), (1, vflip)):
    if not enabled:
      continue
    rows = rng.random(batch["low"].shape[0]) < 0.5
    for key in ("low", "normal"):
      batch[key] = np.where(rows[:, None, None, None], np.flip(batch[key], axis), batch[key])
    batch["kernel"] = np.where(rows[:, None, None], np.flip(batch["kernel"], axis), batch["kernel"])
  return batch


_BATCH_KEYS = ("low", "normal", "kernel")


def host_batch(config, batch, step):
  """The arrays the step uses (sources carry extra fields, e.g. noise parameters and names),
  flipped with their kernels."""
  batch = {k: np.asarray(batch[k], np.float32) for k in _BATCH_KEYS if k in batch}
  if "kernel" in batch and (config.data.flip or config.data.vflip):
    rng = np.random.default_rng([config.seed, step, jax.process_index(), 7])
    batch = flip_with_kernels(batch, rng, config.data.flip, config.data.vflip)
  return batch


def eval_inputs(config, family, example):
  """(saturated low, {"kernel"} for kernel models) of an eval example."""
  low = np.asarray(saturate(example["low"], config.data.saturation))
  if not _needs_kernel(family):
    return low, {}
  return low, {"kernel": check_kernels(np.asarray(example["kernel"])[:1], 1, family.KERNEL_SIZE)}


TRAINER = common.Trainer(
    make_update=make_update,
    data_options=data_options,
    host_batch=host_batch,
    eval_fields=lambda config, family: kernel_field if _needs_kernel(family) else None,
    eval_inputs=eval_inputs,
)


def train(config, workdir):
  """Trains a supervised model as configured; writes checkpoints, metrics and samples."""
  return common.train(config, workdir, TRAINER)
