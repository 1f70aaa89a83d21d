"""DEvUDP's central claim on the embedded data: a G trained only on unpaired blur data also
brightens low-light inputs and leaves sharp inputs nearly unchanged.

  python benchmarks/devudp_claim.py                         # tiny model, 600 steps, ~6 min CPU
  python benchmarks/devudp_claim.py --variant small --steps 2000 --crop 128 --resize_short 192
  python benchmarks/devudp_claim.py --variant in --steps 20000 --crop 256 --resize_short 384
  python benchmarks/devudp_claim.py --variant dt            # the distortion-oriented variant

Trains with ``configs/devudp.py`` (embedded ``blur``: unpaired blurry/sharp streams, two
independent shuffles) through the GAN trainer, then runs G alone (``lljax.load(workdir)``) on
the *test* split of three degradations, none of which the training saw as such:

* ``blur``: embedded ``blur`` test images (motion blur) vs their sharp originals;
* ``lowlight``: embedded ``lowlight`` test images (dark + camera noise) vs their normal-light
  originals — no low-light image is used in training;
* ``sharp``: the sharp originals themselves, compared with themselves (null degradation: the
  output should stay close to the input).

For each it prints PSNR (honest: clipped output vs reference, full image, no GT brightness
information) of the input and of the output, and the mean brightness of input, output and
reference. Everything is reported as measured; a short CPU run is far from the paper's 200
GoPro epochs.

What it measured (tiny variant, 600 and 1500 steps) is in benchmarks/README.md, "DEvUDP central
claim", with the command that printed it.
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np

from lljax.metrics import psnr


def _evaluate(restorer, name, split, limit):
  from lljax.data import pipeline, sources  # pylint: disable=import-outside-toplevel

  rows = []
  for ex in pipeline.eval_examples(sources.open_source(name, split), limit=limit):
    rows.append((ex["low"], restorer.enhance(ex["low"]), ex["normal"]))
  return rows


def _row(label, triples):
  p_in = np.mean([float(psnr(i, r)[0]) for i, _, r in triples])
  p_out = np.mean([float(psnr(o, r)[0]) for _, o, r in triples])
  mean = lambda k: np.mean([t[k].mean() for t in triples])
  shown_in = "  (=ref)" if np.isinf(p_in) else f"{p_in:8.2f}"
  delta = "      " if np.isinf(p_in) else f"{p_out - p_in:+6.2f}"
  print(f"| {label:9s} | {len(triples):2d} | {shown_in} | {p_out:8.2f} | {delta} | "
        f"{mean(0):.3f} | {mean(1):.3f} | {mean(2):.3f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--variant", default="tiny", help="devudp variant (tiny, small, in, dt)")
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--crop", type=int, default=64)
  parser.add_argument("--resize_short", type=int, default=96, help="0: no downsizing before the crop")
  parser.add_argument("--lr", type=float, default=2e-4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--limit", type=int, default=None, help="test images per degradation (default: all)")
  parser.add_argument("--workdir", default=None, help="default: a temporary directory")
  args = parser.parse_args()

  import lljax  # pylint: disable=import-outside-toplevel
  from lljax.config_lib import load_config  # pylint: disable=import-outside-toplevel
  from lljax.trainers import gan  # pylint: disable=import-outside-toplevel

  config = load_config(str(pathlib.Path(__file__).parents[1] / "configs" / "devudp.py"))
  config.model.variant = args.variant
  config.batch_size, config.data.crop_size = args.batch, args.crop
  config.data.resize_short = args.resize_short or None
  config.epochs, config.total_steps, config.seed = None, args.steps, args.seed
  config.schedule.lr, config.schedule.every_epochs = args.lr, 0
  config.mesh.data = 1
  config.log_every, config.checkpoint_every, config.eval_every = 50, 0, 0
  config.eval_limit, config.num_samples = 1, 1
  workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="devudp_claim_"))
  t0 = time.time()
  gan.train(config, workdir)
  train_seconds = time.time() - t0
  restorer = lljax.load(workdir)
  blur = _evaluate(restorer, "embedded_photos/blur", "test", args.limit)
  low = _evaluate(restorer, "embedded_photos/lowlight", "test", args.limit)
  sharp = [(r, restorer.enhance(r), r) for _, _, r in blur]

  print(f"\nDEvUDP {args.variant}: {args.steps} steps, batch {args.batch}, crop {args.crop}, resize_short "
        f"{args.resize_short}, lr {args.lr}, trained on embedded_photos/blur train (unpaired) in {train_seconds:.0f} s")
  print(f"workdir: {workdir}\n")
  print("| test input | n  | PSNR in  | PSNR out | delta  | mean in | mean out | mean ref |")
  print("|-----------|----|----------|----------|--------|-------|-------|-------|")
  _row("blur", blur)
  _row("lowlight", low)
  _row("sharp", sharp)


if __name__ == "__main__":
  main()
