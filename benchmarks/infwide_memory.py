"""INFWIDE inference memory on CPU: peak RSS and XLA scratch at 720p and 1080p.

  python benchmarks/infwide_memory.py                       # the default table (see CASES)
  python benchmarks/infwide_memory.py --cases 720x1280:whole 1080x1920:tiled
  python benchmarks/infwide_memory.py case 720x1280:whole   # one case in this process: a JSON line

Modes (release architecture, random weights, float32, batch 1, a 37x37 motion kernel):

* ``whole``: ``Restorer.enhance`` on the whole image, every feature channel Wiener-filtered at once;
* ``whole_seq``: the same with ``wiener_channels_at_once=1`` (identical values, one FFT plane pair
  in flight at a time);
* ``tiled``: ``Restorer.enhance_image(max_pixels=1e6, tile=768, overlap=192)``: overlapping tiles
  with blended seams, each tile deconvolved on its own (its own replicate padding and NSR
  estimate), so the result differs from the whole-image run near seams (an approximation; the
  official code has no tiling).

Each case runs in a child process; the parent samples the child's RSS and kills it (its own
child, by pid) above ``--rss_limit_gb`` so that a case that does not fit cannot take the machine
down. Reported: peak RSS (``ru_maxrss`` of the child: interpreter, JAX runtime, weights, compiled
programs and buffers), XLA's scratch estimate of the largest compiled program
(``memory_analysis().temp_size_in_bytes``), and the wall time of the first call (compilation
included) and, with ``INFWIDE_BENCH_REPEAT=1``, of a second call. The official PyTorch forward
is measured beside lljax's by ``side_by_side.py`` (``--cases infwide_enhance_720x1280
infwide_enhance_1080x1920``); the table of this script is in benchmarks/README.md with its command.
"""

import argparse
import json
import os
import resource
import sys
import time

import harness

CASES = ("720x1280:whole", "720x1280:whole_seq", "1080x1920:whole_seq", "1080x1920:tiled")
TILED = dict(max_pixels=1_000_000, tile=768, overlap=192)


def run_case(spec):
  size, mode = spec.split(":")
  h, w = (int(v) for v in size.split("x"))
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from lljax import api, models  # pylint: disable=import-outside-toplevel
  from lljax.imaging import motion  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel

  family = models.get("infwide")
  config = dict(family.VARIANTS["release"])
  if mode == "whole_seq":
    config["wiener_channels_at_once"] = 1
  module = family.Model(**config)
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  restorer = api.Restorer("infwide", config, params)
  rng = np.random.default_rng(0)
  image = np.clip(rng.random((h, w, 3)) * 0.6, 0, 1).astype(np.float32)
  kernel, _ = motion.motion_kernel(0)

  def call():
    if mode == "tiled":
      return restorer.enhance_image(image, kernel, **TILED)
    return restorer.enhance(image[None], kernel)[0]

  temp = 0
  if mode != "tiled":
    lowered = restorer._enhance.lower(  # pylint: disable=protected-access
        params, {"low": image[None], "kernel": kernel[None]}, np.float32(0), jax.random.key(0), None)
    analysis = lowered.compile().memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", 0) if analysis is not None else 0
  t0 = time.time()
  out = call()
  first = time.time() - t0
  second = float("nan")
  if os.environ.get("INFWIDE_BENCH_REPEAT"):
    t0 = time.time()
    call()
    second = time.time() - t0
  assert out.shape == (h, w, 3) and np.all(np.isfinite(out))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"case": spec, "peak_rss_gb": peak / 2**30, "xla_temp_gb": temp / 2**30,
          "first_s": first, "second_s": second}


def run_isolated(spec, limit_gib):
  """Runs one case in a child process, killed if its RSS passes ``limit_gib``."""
  code, out, err, note = harness.run_child([sys.executable, __file__, "case", spec], rss_limit_gib=limit_gib)
  if note or code:
    return {"case": spec, "error": note or (err.strip().splitlines() or ["failed"])[-1]}
  return json.loads(out.strip().splitlines()[-1])


def main():
  if len(sys.argv) == 3 and sys.argv[1] == "case":
    print(json.dumps(run_case(sys.argv[2])))
    return
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--cases", nargs="+", default=list(CASES))
  p.add_argument("--rss_limit_gb", type=float, default=20.0)
  args = p.parse_args()
  print(f"{'case':<22} {'peak RSS GB':>11} {'XLA temp GB':>11} {'first s':>8} {'second s':>9}")
  for spec in args.cases:
    r = run_isolated(spec, args.rss_limit_gb)
    if "error" in r:
      print(f"{spec:<22} {r['error']}")
    else:
      print(f"{spec:<22} {r['peak_rss_gb']:>11.2f} {r['xla_temp_gb']:>11.2f} {r['first_s']:>8.1f} "
            f"{r['second_s']:>9.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
  main()
