"""Photo enhancement speed and memory: images/s and peak memory per model and image size.

  python benchmarks/enhance_speed.py                        # every model variant at 400x600 and 1280x720
  python benchmarks/enhance_speed.py --cases llflow/small@400x600 llflow/small@6000x4000
  python benchmarks/enhance_speed.py case llflow/lol@400x600  # one case in this process: a JSON line

What is timed is ``Restorer.enhance_image`` with ``python -m lljax.enhance``'s defaults (shape
bucket 32, tiles of 512 px with 128 px overlap above 1 megapixel, global prior from a downscaled
copy, float32): host preprocessing, padding, the model, tiling and cropping, not file I/O.
One warm-up call (XLA compilation, reported separately), then the median of ``--repeats``
calls (``--repeats 0``: the first call's time, compilation included, e.g. for 24-megapixel cases:
``llflow/small@4000x6000``). Peak RSS is the process's ``ru_maxrss`` (interpreter, JAX runtime, model and compiled
programs included); "XLA temp" is the compiled enhance program's scratch memory from XLA's memory
analysis (largest program of the case). "GFLOP/image" is XLA's cost analysis of each enhance
program times the number of times one image runs it (one call, or one per tile); the downscaled
global-prior pass of tiled photos is not counted (a few % of a tile). Weights are random (speed
does not depend on them).
Each case runs in its own process so the peak RSS is that case's alone.
"""

import collections
import json
import statistics
import time

import harness

SIZES = ((400, 600), (720, 1280))
DEFAULTS = dict(max_pixels=1_000_000, tile=512, overlap=128, bucket=32)


def _cases():
  from lljax import models  # pylint: disable=import-outside-toplevel

  names = []
  for model in models.available():
    for variant in models.get(model).VARIANTS:
      if variant == "lol_v2":  # same architecture as lol
        continue
      names += [f"{model}/{variant}@{h}x{w}" for h, w in SIZES]
  return names


def _parse(case):
  model_variant, _, size = case.partition("@")
  model, _, variant = model_variant.partition("/")
  h, w = (int(v) for v in size.split("x"))
  return model, variant, h, w


def run_case(case, repeats, defaults=None):
  """One case in this process; ``defaults``: ``enhance_image``'s tiling options (DEFAULTS)."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from lljax import api, models  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel

  defaults = defaults or DEFAULTS
  name, variant, h, w = _parse(case)
  family = models.get(name)
  config = dict(family.VARIANTS[variant])
  module = family.Model(**config)
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  restorer = api.Restorer(name, config, params)
  temp, gflop, calls = {}, {}, collections.Counter()
  run_enhance = restorer._run_enhance  # pylint: disable=protected-access

  def measured(inputs, temperature, rng, prior_map=None, *tile_of_tiles):  # XLA's scratch size and FLOPs per program
    key = (inputs["low"].shape, prior_map is not None)
    if key not in temp:
      program = restorer._programs.enhance  # pylint: disable=protected-access
      compiled = program.lower(restorer.params, inputs, np.float32(temperature), rng, prior_map).compile()
      temp[key], gflop[key] = compiled.memory_analysis().temp_size_in_bytes, harness.gflop(compiled)
    calls[key] += 1
    return run_enhance(inputs, temperature, rng, prior_map, *tile_of_tiles)

  restorer._run_enhance = measured  # pylint: disable=protected-access
  image = np.random.default_rng(0).random((h, w, 3), dtype=np.float32) * 0.2
  kernel = None
  if restorer.needs_kernel:  # non-blind deblurring (INFWIDE): a 37x37 motion kernel
    from lljax.imaging import motion  # pylint: disable=import-outside-toplevel
    kernel = motion.motion_kernel(0)[0]
  t0 = time.perf_counter()
  restorer.enhance_image(image, kernel, **defaults)
  first = time.perf_counter() - t0
  gflop_per_image = sum(gflop[key] * n for key, n in calls.items())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    restorer.enhance_image(image, kernel, **defaults)
    times.append(time.perf_counter() - t0)
  median = statistics.median(times) if times else first
  return {"case": case, "first_s": first, "median_s": median, "images_per_s": 1.0 / median, "times": times,
          "gflop": gflop_per_image, "gflops_per_s": gflop_per_image / median,
          "tiled": h * w > defaults["max_pixels"], "programs": len(restorer.compiled_shapes),
          "xla_temp_gib": max(temp.values()) / 2**30,
          "peak_rss_gib": harness.peak_rss_gib(),
          "device": str(jax.devices()[0].device_kind)}


def main():
  parser = harness.case_parser(__doc__, repeats=2)
  args = parser.parse_args()
  if args.mode == "case":
    print(json.dumps(run_case(args.name, args.repeats)))
    return
  rows = harness.run_cases(__file__, args.cases or _cases(), ["--repeats", str(args.repeats)])
  if not rows:
    return
  print(f"device: {rows[0]['device']}")
  print("| case | images/s | s/image | first call (s) | GFLOP/image | GFLOP/s | tiled | programs | XLA temp (GiB) "
        "| peak RSS (GiB) |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['case']} | {r['images_per_s']:.3f} | {r['median_s']:.2f} | {r['first_s']:.1f} | {r['gflop']:.0f} | "
          f"{r['gflops_per_s']:.1f} | {'yes' if r['tiled'] else 'no'} | {r['programs']} | {r['xla_temp_gib']:.2f} "
          f"| {r['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
  main()
