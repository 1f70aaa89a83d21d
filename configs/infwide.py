"""INFWIDE (Zhang et al., IEEE TIP 2023) training configs: the official recipe.

  # The official recipe on the embedded default data (low light + motion blur, kernels stored):
  python -m lljax.train --config configs/infwide.py --workdir runs/infwide
  # A few-minute CPU run with the tiny model:
  python -m lljax.train --config configs/infwide.py:quick --workdir runs/infwide_quick
  # NightShot (INFWIDE's own data: trajectory kernels, CMOS camera noise, saturation at 1/1.2):
  python -m lljax.train --config configs/infwide.py:nightshot --workdir runs/infwide_nightshot

Recipe (conf/infwide_train.yaml, conf/network/infwide.yaml, conf/hparams/infwide_hyparams.yaml):
main loss at half and full scale (0.4 L1 + 0.2 MSE + 0.2 (1 - SSIM) + 0.2 TV), 0.5 x denoiser
loss (0.5 L1 + 0.3 MSE + 0.2 TV) and 0.5 x close-loop re-blur L1, both against the clean
unsaturated blurry image (``lljax.losses.infwide_loss``); Adam with amsgrad, lr 2e-4, no weight
decay, per-element gradient clipping to +-0.5; StepLR x0.5 every 50 epochs for 400 epochs;
batch 8 of 256 x 256 patches with horizontal and vertical flips; seed 0. Epochs are expressed
in steps for NightShot's 3000 training images (375 steps per epoch): 150 000 steps, decay every
18 750. Differences: the official loader synthesises blur and noise per patch on the fly; lljax
reads datasets degraded once per image (seeded, ``lljax.data.degrade``) and crops them, so the
kernel and noise of an image repeat across epochs, and the re-blurred target differs from the
circular blur of the crop near the crop border (see ``lljax.trainers.supervised``). The
official rotation augmentation is buggy (one of its two rotations is discarded); we use flips only.

``embedded`` (default) trains on ``embedded_photos/lowlight_blur`` (blur in linear light, then
lljax's low-light model: the target is the bright sharp photo, so the model also brightens);
``nightshot`` on the prepared NightShot dataset with saturation 1.2 applied to the stored
camera output. INFWIDE's own degradation on the embedded photos (trajectory kernels + CMOS camera
noise): ``--config.data.name=embedded_photos/night_blur --config.data.saturation=1.2``. Override
anything, e.g. ``--config.data.crop_size=128``. Flips are applied by the trainer to the image AND
its kernel (a mirrored blurry image has a mirrored PSF).
"""

import ml_collections

from lljax.config_lib import parse_arg

PRESETS = ("embedded", "nightshot")
STEPS_PER_EPOCH = 375  # NightShot: 3000 images / batch 8


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="embedded", flags=("quick",))
  c = ml_collections.ConfigDict()
  c.model = dict(name="infwide", variant="release", kwargs={})
  c.data = dict(name="embedded_photos/lowlight_blur", train_split="train", eval_split="test",
                data_dir=ml_collections.FieldReference(None, field_type=str), crop_size=256,
                flip=True, vflip=True, rot90=False, saturation=0.0)
  c.batch_size = 8
  c.total_steps = 400 * STEPS_PER_EPOCH
  c.seed = 0
  c.optimizer = dict(b1=0.9, b2=0.999, eps=1e-8, amsgrad=True, weight_decay=0.0, clip_grad_value=0.5)
  c.schedule = dict(lr=2e-4, step_size=50 * STEPS_PER_EPOCH, gamma=0.5)
  # fsdp: shard params/optimizer-state arrays of >= fsdp_min_size elements over "data".
  c.mesh = dict(data=-1, fsdp=False, fsdp_min_size=2**18)
  # "bfloat16": convs/matmuls in bf16 (like torch autocast), params and losses f32.
  c.compute_dtype = "float32"
  # True: recompute each block's activations in the backward pass (less memory; +5-30 % FLOPs).
  c.remat = False
  # k > 1: the batch runs as k sequential parts, gradients averaged (same update, ~1/k activations).
  c.microbatches = 1
  c.init_checkpoint = ml_collections.FieldReference(None, field_type=str)
  c.log_every = 100
  c.eval_every = 5 * STEPS_PER_EPOCH
  c.eval_limit = ml_collections.FieldReference(8, field_type=int)
  c.num_samples = 4
  c.checkpoint_every = 5 * STEPS_PER_EPOCH
  c.keep_checkpoints = 5

  if preset == "nightshot":
    c.data.name, c.data.eval_split = "nightshot", "test"
    c.data.saturation = 1.2

  if flags["quick"]:  # a few minutes on a 2-core CPU: tiny model, small crops, short schedule
    c.model.variant = "tiny"
    c.batch_size, c.data.crop_size = 2, 64
    c.total_steps = 100
    c.schedule.step_size = 50
    c.schedule.lr = 5e-4
    c.eval_limit = 2
    c.log_every, c.eval_every, c.checkpoint_every = 10, 100, 50
  return c
