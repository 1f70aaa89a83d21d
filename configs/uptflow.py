"""UPT-Flow (Xu et al., Pattern Recognition 2025) training configs. The authors released test code
only; this is the recipe of their UPT-Flow.yml run through LLFlow's training loop.

  # The released architecture (window size 5) on the embedded default data (no download needed):
  python -m lljax.train --config configs/uptflow.py --workdir runs/uptflow
  # A few-minute CPU run of the same recipe with the tiny model:
  python -m lljax.train --config configs/uptflow.py:quick --workdir runs/uptflow_quick
  # LOL-v2 real (689 train pairs; paper: 25.056 dB PSNR / 0.890 SSIM / 0.115 LPIPS, no GT-mean):
  python -m lljax.train --config configs/uptflow.py:lol_v2_real --workdir runs/uptflow_lolv2_real
  # LOL-v2 synthetic (900 train pairs; paper: 26.481 / 0.946 / 0.037):
  python -m lljax.train --config configs/uptflow.py:lol_v2_synthetic --workdir runs/uptflow_lolv2_syn
  # LOL v1 (our485 -> eval15; the paper reports no LOL-v1 number):
  python -m lljax.train --config configs/uptflow.py:lol --workdir runs/uptflow_lol

Any field can be overridden: ``--config.batch_size=4 --config.model.variant=ws8``.

From the official repository (faithful):
* the model: UPT-Flow.yml + MSFormer's defaults, window size 5 for the LOL datasets as the
  README prescribes (``--config.model.variant=ws8`` for the others);
* the loss: the NLL of the ``normal_flow`` deleted in commit f868003 (last seen in 3a7afc4):
  dequantisation ``x + (u - 1/2) / 32`` with log-det ``-ln(32) H W``, a standard-normal prior,
  bits per pixel location; no other term (``weight_l1`` 0, ``encode_color_map`` off);
* MSFormer's stochastic depth (timm DropPath, rates up to 0.1) in training, and ActNorm's data
  init inside the first update's forward pass (on its dequantised image, with its DropPath);
* UPT-Flow.yml's schedule: Adam lr 2e-4 (effective betas (0.9, 0.999): the yml's beta2 0.99
  never reaches torch's Adam, the same optimiser code as LLFlow), weight decay 0, batch 8 of
  160x160 crops with horizontal flips, 50 000 iterations, linear warm-up over 800, x0.5 at
  40/60/80/90 %; validation every 500 and checkpoints every 1000 iterations; seed 10.

Ours, because no training code was released (``optimize_parameters`` is ``pass`` in every
commit): the step is LLFlow's ``optimize_parameters`` on UPT-Flow's model, which
``tests/trainers/test_official_step.py`` replays update by update
(``tests/fixtures/uptflow/make_train_step.py``), and
* the loop follows LLFlow's train.py, on which the repository is built: iteration 1 makes no
  update (50 000 iterations = 49 999 updates) and the scheduler keeps the last warm-up rate;
* the unbalanced point map is computed in the model from each low crop (the official test
  script computes it from the whole padded image; the map is pointwise, so they agree);
* the data pipelines: the yml names a ``LoL_v2`` loader that was never released, so the LOL-v2
  subsets and LOL v1 use lljax's paired TFDS builders with the same crop/flip recipe;
* float32 training (the reference used fp16 autocast) and ActNorm statistics over the global
  batch (official: per GPU).
``flow.train_gt_ratio`` is 0: the standard-normal prior has no GT colour-map option (the yml's
0.5 has no effect in UPT-Flow).
"""

from lljax import base_config
from lljax.config_lib import parse_arg

PRESETS = ("embedded", "lol_v2_real", "lol_v2_synthetic", "lol")


def get_config(arg=None):
  preset, flags = parse_arg(arg, presets=PRESETS, default_preset="embedded", flags=("quick",))
  c = base_config.get_config()
  c.model = dict(name="uptflow", variant="lol", kwargs={})
  c.data.name = "embedded_photos/lowlight"
  c.batch_size = 8
  base_config.llflow_loop(c, lr=2e-4, niter=50_000, warmup=800, milestones_rel=(0.4, 0.6, 0.8, 0.9))
  c.flow.update(quant=32, train_gt_ratio=0.0)
  c.eval_every = 500
  c.eval_protocols = ("honest", "uptflow")

  if preset == "lol_v2_real":
    c.data.name = "lol_v2/real"
  elif preset == "lol_v2_synthetic":
    c.data.name = "lol_v2/synthetic"
  elif preset == "lol":
    c.data.name = "lol"

  if flags["quick"]:
    base_config.quick(c)
    c.schedule.warmup_steps = 30
  return c
