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
in steps for NightShot as the official loader runs them (``STEPS_PER_EPOCH``, 357: 5 % of the
3000 training images held out, the last partial batch kept): 142 800 steps, decay every 17 850.
Differences: the official loader synthesises blur and noise per patch on the fly; lljax
reads datasets degraded once per image (seeded, ``lljax.imaging``) and crops them, so the
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

from lljax import base_config
from lljax.config_lib import parse_arg

PRESETS = ("embedded", "nightshot")
# NightShot: the official loader holds out int(0.05 N) of the 3000 training images and keeps the last
# partial batch: ceil(2850 / 8) = 357 updates per epoch.
STEPS_PER_EPOCH = 357


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="embedded", flags=("quick",))
  c = base_config.get_config()
  c.model = dict(name="infwide", variant="release", kwargs={})
  c.data.update(name="embedded_photos/lowlight_blur", crop_size=256, flip=True, vflip=True, rot90=False,
                saturation=0.0)
  c.batch_size = 8
  c.total_steps = 400 * STEPS_PER_EPOCH
  c.seed = 0
  c.optimizer.update(amsgrad=True, clip_grad_value=0.5)
  c.schedule.update(kind="step_decay", lr=2e-4, every_steps=50 * STEPS_PER_EPOCH, gamma=0.5)
  c.log_every = 100
  c.eval_every = 5 * STEPS_PER_EPOCH
  c.eval_limit = 8
  c.checkpoint_every = 5 * STEPS_PER_EPOCH
  c.keep_checkpoints = 5
  c.eval_protocols = ("honest", "infwide")

  if preset == "nightshot":
    c.data.name, c.data.eval_split = "nightshot", "test"
    c.data.saturation = 1.2

  if flags["quick"]:
    base_config.quick(c, steps=100, batch_size=2)
    c.schedule.update(lr=5e-4, every_steps=50)
    c.eval_limit, c.checkpoint_every = 2, 50
  return c
