"""LLFlow (Wang et al., AAAI 2022) training configs, following the official code/confs/*.yml.

  # The paper's LOL-pc model and schedule on the embedded default data (no download needed):
  python -m lljax.train --config configs/llflow.py --workdir runs/llflow
  # A few-minute CPU run of the same recipe with the tiny model (README's first command):
  python -m lljax.train --config configs/llflow.py:quick --workdir runs/llflow_quick
  # LOL v1 (our485 -> eval15), LOL-pc.yml; paper: 25.19 dB PSNR / 0.93 SSIM (GT-mean protocol):
  python -m lljax.train --config configs/llflow.py:lol --workdir runs/llflow_lol
  # LOL-v2 real + synthetic (union, as LOLv2-pc.yml):
  python -m lljax.train --config configs/llflow.py:lol_v2 --workdir runs/llflow_lolv2
  # The light-weight model (LOL_smallNet.yml; README: 24.11 dB / 0.91 on LOL):
  python -m lljax.train --config configs/llflow.py:small --workdir runs/llflow_small

Any field can be overridden: ``--config.batch_size=8 --config.optimizer.lr=2e-4``.

Faithful to the official training step, checked against it update by update
(``tests/fixtures/llflow/train_step.npz``, ``tests/trainers/test_official_step.py``): Adam with the
betas it actually uses (0.9, 0.999 — the yml's beta2 0.99 never reaches torch's Adam), no weight
decay (the yml's encoder group of 1e-5 selects names with a ``module.`` prefix, which exist only
under multi-GPU DataParallel), lr 5e-4, batch 16 of 160x160 crops with horizontal flips,
histogram equalisation of the full low image before cropping, NO dequantisation noise (``quant``
0: ``optimize_parameters`` never passes ``add_gt_noise``, so the yml's ``quant: 32`` does not
reach training), the GT colour-map prior with probability train_gt_ratio (one coin per batch; on
such a step the colour-map head gets no gradient and torch's Adam leaves it untouched, which
lljax reproduces), linear warm-up and x0.5 at 50/75/90/95 % of the iterations, including the
scheduler's quirk of keeping the last warm-up rate (lr * (W-1)/W) afterwards. Iteration 1 of the
official loop makes no update, so the official 40000 iterations are 39999 updates here.
Differences: training is float32 (the official used fp16 autocast with a loss scaler) and
ActNorm statistics are over the global batch (official: per GPU).
"""

from lljax import base_config
from lljax.config_lib import parse_arg

PRESETS = ("embedded", "lol", "lol_v2", "small")


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="embedded", flags=("quick",))
  c = base_config.get_config()
  c.model = dict(name="llflow", variant="lol", kwargs={})
  c.data.name = "embedded_photos/lowlight"
  c.batch_size = 16
  base_config.llflow_loop(c, lr=5e-4, niter=40_000, warmup=3000, milestones_rel=(0.5, 0.75, 0.9, 0.95))
  c.flow.update(quant=0, train_gt_ratio=0.2)
  c.eval_protocols = ("honest", "llflow")

  if preset == "lol":
    c.data.name, c.data.eval_split = "lol", "test"
  elif preset == "lol_v2":  # LOLv2-pc.yml trains on the union of both LOL-v2 subsets
    c.data.name = "lol_v2/real+lol_v2/synthetic"
    c.flow.train_gt_ratio = 0.5
    c.schedule.warmup_steps = 200
    c.eval_every, c.checkpoint_every = 1000, 10_000
  elif preset == "small":  # LOL_smallNet.yml
    c.model.variant = "small"
    c.data.name = "lol"
    c.total_steps = 45_000 - 1
    c.schedule.warmup_steps = 0

  if flags["quick"]:
    base_config.quick(c)
    c.schedule.warmup_steps = 30
  return c
