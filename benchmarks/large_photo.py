"""Peak memory and time of enhancing one large photo per model, as the enhance command does it.

  python benchmarks/large_photo.py                                   # 2 and 24 MP, every model
  python benchmarks/large_photo.py --models devudp --megapixels 6 24

Each (model, size) runs in its own process: the model's converted small fixture (as in
``tile_seams.py``; "devudp-in": the random instance-norm ``small`` variant) enhances a synthetic
3:2 photo (smooth colour gradients with sensor-like noise) through ``Restorer.enhance_image`` with
the enhance command's defaults (the model's ``--max_megapixels``, 512 px tiles, 128 px overlap,
the whole photo's context). Reported: tiles, wall seconds (first call, XLA compilation included)
and the process's peak resident memory (``ru_maxrss``: host arrays, XLA's buffers and compiled
code). The host arrays of a photo grow with its size (float32 input, output, blending
accumulators: about 40 bytes per pixel); the model's working memory is that of one tile.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

MODELS = ("llflow", "uptflow", "ssflow", "devudp", "devudp-in", "infwide")


def photo(megapixels, seed=0):
  """A synthetic dim 3:2 photo of about ``megapixels`` (HWC float32 in [0, 1])."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
  h = int(round(w / 1.5))
  yy = np.linspace(0, 6, h, dtype=np.float32)[:, None, None]
  xx = np.linspace(0, 9, w, dtype=np.float32)[None, :, None]
  image = 0.08 + 0.05 * np.sin(yy) * np.cos(xx) * np.array([1.0, 0.8, 0.6], np.float32)
  noise = np.random.default_rng(seed).normal(0, 0.01, (h, w, 3)).astype(np.float32)
  return np.clip(image + noise, 0, 1)


def measure(model, megapixels):
  """One case in this process -> dict (call in a fresh process for a clean peak)."""
  sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
  from lljax import enhance  # pylint: disable=import-outside-toplevel
  from lljax.imaging import motion  # pylint: disable=import-outside-toplevel
  from tile_seams import restorer_of  # pylint: disable=import-outside-toplevel

  restorer = restorer_of(model)
  kernel = motion.motion_kernel(0, size=9)[0] if restorer.needs_kernel else None
  image = photo(megapixels)
  tiles = []
  restorer.progress = lambda program, shape, compiling, tile, count: tiles.append(count)
  start = time.perf_counter()
  out = restorer.enhance_image(image, kernel, max_pixels=enhance.max_pixels(restorer.family), tile=enhance.TILE,
                               overlap=enhance.OVERLAP)
  seconds = time.perf_counter() - start
  assert out.shape == image.shape
  return {"model": model, "megapixels": round(image.shape[0] * image.shape[1] / 1e6, 1),
          "size": f"{image.shape[1]}x{image.shape[0]}", "tiles": max(tiles), "seconds": round(seconds, 1),
          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", nargs="*", default=list(MODELS))
  parser.add_argument("--megapixels", nargs="*", type=float, default=[2.0, 24.0])
  parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: run one case, print JSON
  args = parser.parse_args(argv)
  if args.case:
    print(json.dumps(measure(args.case[0], float(args.case[1]))))
    return
  print("| model | photo | megapixels | tiles | seconds | peak RSS (GB) |")
  print("|---|---|---|---|---|---|")
  for model in args.models:
    for mp in args.megapixels:
      run = subprocess.run([sys.executable, __file__, "--case", model, str(mp)], capture_output=True, text=True,
                           check=False)
      if run.returncode:
        print(f"| {model} | {mp} MP failed: {run.stderr.strip().splitlines()[-1]} |||||", flush=True)
        continue
      r = json.loads(run.stdout.strip().splitlines()[-1])
      print(f"| {r['model']} | {r['size']} | {r['megapixels']} | {r['tiles']} | {r['seconds']} | {r['peak_rss_gb']} |",
            flush=True)


if __name__ == "__main__":
  main()
