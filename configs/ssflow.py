"""SSFlow (Li et al., CSSP 2024) training configs: the released paired recipe and a self-supervised mode.

  # The released model and recipe on the embedded default data (no download needed):
  python -m lljax.train --config configs/ssflow.py --workdir runs/ssflow
  # A few-minute CPU run with the tiny model:
  python -m lljax.train --config configs/ssflow.py:quick --workdir runs/ssflow_quick
  # LOL-Blur (LEDNet's dataset; what the released best_psnr_G.pth was trained on), paired NLL:
  python -m lljax.train --config configs/ssflow.py:lol_blur --workdir runs/ssflow_lolblur
  # Self-supervised (no normal-light image is read), on the embedded data or on LOL-Blur:
  python -m lljax.train --config configs/ssflow.py:self_supervised --workdir runs/ssflow_self
  python -m lljax.train --config configs/ssflow.py:lol_blur,self_supervised --workdir runs/ssflow_self_lb

Any field can be overridden: ``--config.batch_size=8 --config.flow.exposure_level=0.45``.

Paired recipe (``lol_blur``). SSFlow released no training script; its code is LLFlow's training
code with confs/LOL_smallNet.yml, reproduced here: the NLL of the normal-light sharp image
(weight 1, no L1), prior mean = the OAtt-UNet colour map, or with probability 0.2 (one coin per
batch) the target's 7x7-averaged chromaticity; Adam lr 1e-4 with the betas torch actually uses
(0.9, 0.999; the yml's beta2 never reaches the optimizer), no weight decay; batch 16 of
160x160 crops with horizontal flips; 20000 iterations (19999 updates: LLFlow's loop skips the
update of iteration 1), no warm-up, x0.5 at 50/75/90/95 %; seed 10. On a step with the
target's prior the OAtt-UNet's colour-map branch gets no gradient and torch's Adam skips it
(no update, no moment decay, its own step count), as lljax does. Checked update by update
against the official step (``tests/trainers/test_official_step.py``). ``quant = 0``: LLFlow's
``forward`` defaults to ``add_gt_noise=False`` and ``optimize_parameters`` does not pass it, so
the released recipe never dequantises the target (lljax's LLFlow configs do, with quant 32).
The OAtt-UNet's BatchNorms train with batch statistics and update their running statistics
(torch train mode). Differences: float32 (the official used fp16 autocast); statistics over the
global batch. The released test protocol (GT-mean brightness, 8-bit truncation, grey SSIM) is
the ``ssflow`` evaluation protocol, not part of training.

Self-supervised mode (flag ``self_supervised``): our reading of the abstract, which the released
code does not implement. The abstract says the two modules are "connected to each other by a
color map" and trained by "an unsupervised loss function ... using the consistent color map
between the two modules in the color space", without paired normal-light data. In the code the
colour map is what ties them: the OAtt-UNet's output is the flow's latent mean, and the
alternative mean is an image's chromaticity x / sum_c x, which does not depend on the exposure.
So the low image itself can supply what the paired recipe takes from the ground truth:

* the encoded image is a pseudo-target with the input's colour map: the low image times one
  gain per image that sets its mean to ``exposure_level`` (0.5, mid-grey; the same gain on the
  three channels keeps x / sum_c x exactly), see ``lljax.losses.exposure_normalised``;
* the alternative prior mean (probability 0.2) is the LOW image's 7x7-averaged colour map
  instead of the target's;
* the loss is the same NLL (``config.flow.objective = "self_supervised"`` in the flow trainer),
  and ``batch["normal"]`` is never read (evaluation still uses it, for the metrics only).

Maximising the likelihood of exposure-normalised inputs teaches the flow the input's noise, so
decoding the latent mean (the colour map) yields a brightened image with less noise than the
pseudo-target itself. The single exposure prior is the only brightness information: on real
scenes with uneven lighting a global gain is a crude choice, and nothing in this objective
supervises deblurring (the FAC layers only learn what helps the likelihood).
``benchmarks/ssflow_self_supervised.py`` measures it.

Data: the embedded default is ``embedded_photos/lowlight_blur`` (real photos with LEDNet-style
motion blur, darkening and sensor noise: SSFlow's joint task); ``lol_blur`` needs the prepared
LOL-Blur dataset.
"""

from lljax import base_config
from lljax.config_lib import parse_arg

PRESETS = ("embedded", "lol_blur")


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="embedded", flags=("self_supervised", "quick"))
  c = base_config.get_config()
  c.model = dict(name="ssflow", variant="lol_blur", kwargs={})
  c.data.name = "embedded_photos/lowlight_blur"
  c.batch_size = 16
  base_config.llflow_loop(c, lr=1e-4, niter=20_000, warmup=0, milestones_rel=(0.5, 0.75, 0.9, 0.95))
  c.flow.update(objective="nll", quant=0, train_gt_ratio=0.2, exposure_level=0.5)
  c.eval_protocols = ("honest", "ssflow")

  if preset == "lol_blur":
    c.data.name, c.data.eval_split = "lol_blur", "test"
    c.eval_limit = 20  # of the 1800 test frames, as the official validation (n_max 20)

  if flags["self_supervised"]:
    c.flow.objective = "self_supervised"

  if flags["quick"]:
    base_config.quick(c)
    c.schedule.lr = 5e-4
  return c
