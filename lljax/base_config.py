"""The fields every training config has, with their defaults; ``configs/<model>.py`` override them.

  from lljax import base_config

  def get_config(arg=None):
    c = base_config.get_config()
    c.model = dict(name="llflow", variant="lol", kwargs={})
    ...

Trainers read these fields directly (no ``config.get(key, default)`` elsewhere): a field a model
does not use keeps its default here. Set exactly one of ``total_steps`` and ``epochs``.
"""

import ml_collections

_STR, _INT = str, int


def _optional(field_type, value=None):
  return ml_collections.FieldReference(value, field_type=field_type)


def get_config():
  """The shared defaults (see each field's comment)."""
  c = ml_collections.ConfigDict()
  c.model = dict(name="", variant=_optional(_STR), kwargs={})
  c.data = dict(
      name="embedded_photos/lowlight", train_split="train", eval_split="test", data_dir=_optional(_STR),
      crop_size=160,
      flip=True, vflip=False, rot90=False,  # random flips / transposes of each training crop
      resize_short=_optional(_INT),  # downsize each image (shorter side, pixels) before cropping
      saturation=0.0,  # s > 0: inputs become clip(s x, 0, 1) / s (INFWIDE's camera saturation)
  )
  c.batch_size = 16
  c.total_steps = _optional(_INT)  # updates; None: epochs x ceil(train examples / batch_size)
  c.epochs = _optional(_INT)
  c.seed = 0
  # Adam (torch semantics: L2 weight_decay added to the gradient; amsgrad as torch's, not optax's)
  # after optional gradient clipping (0: off).
  c.optimizer = dict(b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, weight_decay=0.0, clip_grad_norm=0.0,
                     clip_grad_value=0.0)
  # kind "warmup_multistep": linear warm-up, x gamma at fractions of the run (LLFlow's scheduler);
  # kind "step_decay": x gamma every every_steps (or every_epochs) updates (torch StepLR).
  c.schedule = dict(kind="step_decay", lr=1e-4, gamma=0.5, every_steps=0, every_epochs=0, warmup_steps=0,
                    warmup_quirk=False, milestones_rel=(), step_offset=0)
  # data: devices (-1: all); fsdp: shard params/optimizer-state arrays of >= fsdp_min_size
  # elements over "data".
  c.mesh = dict(data=-1, fsdp=False, fsdp_min_size=2**18)
  # "bfloat16": convs/matmuls in bf16 (like torch autocast), params, losses and log-dets f32.
  c.compute_dtype = "float32"
  # Of float32 convs/matmuls (lljax.nn.precision): "highest" (full float32, as torch computes) or
  # "default" (the backend's: TF32 on recent NVIDIA GPUs, one bf16 pass on TPU; float32 on CPU).
  c.precision = "highest"
  # True: recompute each block's activations in the backward pass (less memory; +5-30 % FLOPs).
  # remat_how: "auto" (by the mesh's platform: "tied" on CPU, "checkpoint" elsewhere) or either.
  c.remat = False
  c.remat_how = "auto"
  # k > 1: the batch runs as k sequential parts, gradients averaged (same update, ~1/k activations).
  # microbatch_loop: "auto" (by the mesh's platform: "unrolled" on CPU, "scan" elsewhere) or either.
  c.microbatches = 1
  c.microbatch_loop = "auto"
  # jax.transfer_guard of each step's call and batch: "disallow" (the tests') makes an implicit
  # host<->device copy an error; deliberate ones (the batch, the metrics) are explicit.
  c.transfer_guard = "allow"
  c.init_checkpoint = _optional(_STR)  # a converted or trained model directory to start from
  c.log_every = 50
  c.eval_every = 200
  c.eval_limit = _optional(_INT)  # first N eval examples (None: all)
  # Protocols of lljax.metrics.protocols measured on the eval split during training: "honest" as
  # eval/<metric>, any other as eval/<protocol>/<metric> (e.g. "llflow", the paper's GT-mean).
  c.eval_protocols = ("honest",)
  c.num_samples = 4
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  # Model-kind sections, read only by their trainer.
  c.flow = dict(objective="nll", quant=32, train_gt_ratio=0.0, exposure_level=0.5)
  c.gan = dict(adv_weight=1.0, recon_weight=10.0, sr_weight=5.0)
  return c


def llflow_loop(c, *, lr, niter, warmup, milestones_rel):
  """The schedule of LLFlow's ``code/train.py``, which SSFlow and UPT-Flow reuse: ``niter``
  iterations of which the first makes no update (``niter - 1`` updates), seed 10, linear warm-up
  over ``warmup`` iterations keeping its last rate (the scheduler's quirk), x0.5 at
  ``int(r * niter)`` for r in ``milestones_rel``."""
  c.total_steps = niter - 1
  c.seed = 10
  c.schedule.update(kind="warmup_multistep", lr=lr, warmup_steps=warmup, warmup_quirk=True,
                    milestones_rel=tuple(milestones_rel), gamma=0.5, step_offset=2)


def quick(c, steps=300, batch_size=4, crop_size=64):
  """A few minutes on a 2-core CPU: the tiny model, small crops, a short schedule."""
  c.model.variant = "tiny"
  c.batch_size, c.data.crop_size = batch_size, crop_size
  c.epochs, c.total_steps = None, steps
  c.log_every, c.eval_every, c.checkpoint_every = 10, 100, 100
