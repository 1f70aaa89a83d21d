"""DEvUDP training configs: unpaired blurry/sharp LSGAN (T-branch + S-branch), G used alone.

  # The paper's recipe on the embedded blur data (no download needed):
  python -m lljax.train --config configs/devudp.py --workdir runs/devudp
  # GoPro (the paper's training set; needs the prepared dataset):
  python -m lljax.train --config configs/devudp.py:gopro --workdir runs/devudp_gopro
  # DEvUDP-DT (distortion-oriented: BatchNorm + global shortcut; does not brighten):
  python -m lljax.train --config configs/devudp.py:gopro,dt --workdir runs/devudp_dt
  # A few-minute CPU run with the tiny model:
  python -m lljax.train --config configs/devudp.py:quick --workdir runs/devudp_quick

Recipe (paper, Sec. 3.2-4.1): Adam β = (0.5, 0.999), lr 2e-4 halved every 50 epochs, 200 epochs,
batch 4, separate Adam states for D and for (G, G⁻¹); losses L_adv (LSGAN) + 10 L_recon +
5 (L_sr^A + L_sr^B); data: each image first downsized keeping its aspect ratio (step 2 of the
paper's pipeline; ``data.resize_short``, the shorter side in pixels — the paper gives no size,
384 = 1.5 x crop is CRNet's choice, the same group's unpaired deblurring code), then a random
256 crop and a horizontal flip (p = ½); the blurry and the sharp image of a row come from two
independent shuffles. An epoch is one pass over the blurry images.

Evaluation during training uses the honest metrics on the eval split (blurry -> sharp); the
paper's protocol is ``python -m lljax.evaluate --protocol devudp``.
"""

from lljax import base_config
from lljax.config_lib import parse_arg

PRESETS = ("blur", "gopro")


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="blur", flags=("dt", "quick"))
  c = base_config.get_config()
  c.model = dict(name="devudp", variant="dt" if flags["dt"] else "in", kwargs={})
  c.data.update(name="embedded_photos/blur", crop_size=256, resize_short=384)
  c.batch_size = 4
  c.epochs = 200
  c.seed = 0
  c.optimizer.b1 = 0.5
  c.schedule.update(kind="step_decay", lr=2e-4, every_epochs=50, gamma=0.5)
  c.gan.update(adv_weight=1.0, recon_weight=10.0, sr_weight=5.0)
  c.eval_every = 2000
  c.checkpoint_every = 2000
  c.eval_protocols = ("honest", "devudp")

  if preset == "gopro":
    c.data.name, c.data.eval_split = "gopro", "test"
    c.eval_limit = 20  # of the 1111 test frames

  if flags["quick"]:
    base_config.quick(c, steps=200)
    c.data.resize_short = 96
    c.schedule.every_epochs = 0  # constant lr
  return c
