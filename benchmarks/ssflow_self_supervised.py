"""SSFlow's self-supervised mode on the embedded data: PSNR of the input, the pseudo-target and the
output against the (never trained on) normal-light images.

  python benchmarks/ssflow_self_supervised.py                      # tiny model, 600 steps, CPU
  python benchmarks/ssflow_self_supervised.py --steps 2000 --variant lol_blur --crop 96
  python benchmarks/ssflow_self_supervised.py --data embedded_photos/lowlight   # no blur
  python benchmarks/ssflow_self_supervised.py --objective nll      # the paired recipe, for reference

Trains with ``configs/ssflow.py:self_supervised`` through the flow trainer (the normal-light
images of the train split are never read: they are replaced by NaN before the trainer sees
them), then evaluates every image of the test split (other photos than the train split).
``--objective nll`` trains the released paired recipe instead (it reads the normal images), as
an upper reference for the same budget. Rows:

* ``input``: the low-light image itself;
* ``pseudo-target``: ``exposure_normalised(low)``, the brightness prior the objective encodes;
* ``output``: the model's enhancement (clipped to [0, 1], no ground-truth information);
* ``output, GT-mean``: the same rescaled to the ground truth's mean (the LLFlow/SSFlow papers'
  protocol), for reference.

The default data is ``embedded_photos/lowlight_blur``: SSFlow's joint task (LEDNet-style
motion blur, darkening and sensor noise applied to real photos).
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np


class _Hidden:
  """A data source whose ``normal`` images are hidden (NaN) when ``hide_normal``."""

  def __init__(self, source, hide_normal):
    self.source, self.hide_normal = source, hide_normal

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    example = dict(self.source[index])
    if self.hide_normal:
      example["normal"] = np.full(example["normal"].shape, np.nan, np.float32)
    return example


def _gt_mean_rescale(output, target):
  """``output`` scaled so its mean equals the target's, clipped (the LLFlow family's GT-mean)."""
  return np.clip(output * target.mean() / max(output.mean(), 1e-8), 0.0, 1.0)


def _psnr(a, b):
  return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--variant", default="tiny")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--crop", type=int, default=64)
  parser.add_argument("--lr", type=float, default=5e-4)
  parser.add_argument("--data", default="embedded_photos/lowlight_blur")
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--workdir", default=None, help="default: a new temporary directory")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--objective", default="self_supervised", choices=("self_supervised", "nll"))
  args = parser.parse_args()

  import jax  # pylint: disable=import-outside-toplevel
  import lljax  # pylint: disable=import-outside-toplevel
  from lljax.config_lib import load_config  # pylint: disable=import-outside-toplevel
  from lljax.data import pipeline, sources  # pylint: disable=import-outside-toplevel
  from lljax.losses import exposure_normalised  # pylint: disable=import-outside-toplevel
  from lljax.trainers import common, flow  # pylint: disable=import-outside-toplevel

  paired = args.objective == "nll"
  config = load_config(str(pathlib.Path(__file__).parents[1] / "configs" / "ssflow.py")
                       + ("" if paired else ":self_supervised"))
  config.model.variant = args.variant
  config.data.name, config.data.data_dir, config.data.crop_size = args.data, args.data_dir, args.crop
  config.batch_size, config.total_steps, config.seed = args.batch, args.steps, args.seed
  config.schedule.lr = args.lr
  config.mesh.data = 1
  config.log_every, config.eval_every, config.checkpoint_every = 50, 0, 0
  config.eval_limit, config.num_samples = 1, 1

  open_source = sources.open_source
  def degraded_source(name, split, data_dir=None):
    hide = not paired and split == config.data.train_split
    return _Hidden(open_source(name, split, data_dir), hide_normal=hide)

  common.sources.open_source = degraded_source  # the trainer reads its data through this function
  workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="ssflow_self_"))
  start = time.time()
  flow.train(config, workdir)
  train_seconds = time.time() - start

  restorer = lljax.load(workdir)
  test = open_source(args.data, config.data.eval_split, args.data_dir)
  rows = {"input": [], "pseudo-target": [], "output": [], "output, GT-mean": []}
  for example in pipeline.eval_examples(test):
    low, normal = example["low"], example["normal"]
    out = restorer.enhance(low)
    rows["input"].append(_psnr(low, normal))
    rows["pseudo-target"].append(_psnr(np.asarray(exposure_normalised(low, config.flow.exposure_level)), normal))
    rows["output"].append(_psnr(out, normal))
    rows["output, GT-mean"].append(_psnr(_gt_mean_rescale(out, normal), normal))

  print(f"\nSSFlow {args.objective}, {args.variant}, {args.steps} steps of {args.batch}x{args.crop}^2 "
        f"({train_seconds / 60:.1f} min on {jax.devices()[0].platform}), data {args.data}"
        f"; test split, {len(rows['input'])} images")
  print(f"{'':18s} {'mean PSNR (dB)':>14s}   per image")
  for name, values in rows.items():
    print(f"{name:18s} {np.mean(values):14.2f}   " + " ".join(f"{v:5.2f}" for v in values))
  print(f"workdir: {workdir}")


if __name__ == "__main__":
  main()
