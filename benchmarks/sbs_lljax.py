"""The lljax side of ``side_by_side.py``: one case in this process, a JSON line out.

  python benchmarks/sbs_lljax.py llflow_lolpc_enhance_400x600 --shape 1x64x96

* Enhance cases: the jitted enhance program of ``lljax.inference.programs`` (what
  ``Restorer.enhance`` runs; temperature 0), release variant, random weights (seed 0), on the
  inputs of ``sbs_cases.make_inputs`` after lljax's own host preprocessing
  (``inference.model_inputs``: LLFlow's histogram equalisation), not timed, as on the official side.
* Train cases: the trainer's jitted update built as ``train_speed.py`` builds it (the model's
  release config, ``configs/<model>.py``; ``--flags`` adds its ``:remat`` / ``:mbN`` choices), on
  the same inputs as the official step.

Compilation is timed apart (``compile_s``); then one warm-up call and ``--calls`` timed calls.
FLOPs are XLA's cost analysis of the compiled program (2 per multiply-add, all ops).
"""

import argparse
import json
import os
import resource
import time

import numpy as np

import harness
import sbs_cases
import train_speed


def batch_of(family, case, arrays):
  """The trainer's / program's input dict from the shared arrays (uint8 -> float32 / 255)."""
  from lljax import inference  # pylint: disable=import-outside-toplevel
  as_float = lambda a: a.astype(np.float32) / np.float32(255.0) if a.dtype == np.uint8 else a
  batch = dict(inference.model_inputs(family, as_float(arrays.get("low_u8", arrays.get("low")))))
  if case.kind == "train":
    batch["normal"] = as_float(arrays.get("normal_u8", arrays.get("normal")))
  if "kernel" in arrays:
    batch["kernel"] = arrays["kernel"]
  return batch


def build_enhance(case, arrays):
  import jax  # pylint: disable=import-outside-toplevel

  from lljax import inference, models  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel

  family = models.get(case.model)
  config = dict(family.VARIANTS[case.variant])
  module = family.Model(**config)
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  args = (params, batch_of(family, case, arrays), np.float32(0.0), jax.random.key(0))
  return inference.programs(case.model, config).enhance, args, None, {"variant": case.variant}


def build_train(case, arrays, shape, flags):
  from lljax import models  # pylint: disable=import-outside-toplevel

  model, hw, parsed = train_speed.parse_case(f"{case.model}@{'x'.join(map(str, shape))}{flags}")
  fn, (state, reference), next_args, config = train_speed.build_step(model, hw, parsed)
  batch = batch_of(models.get(case.model), case, arrays)
  shapes = lambda d: {k: tuple(np.shape(v)) for k, v in d.items()}
  if shapes(batch) != shapes(reference):
    raise SystemExit(f"{case.model}: the shared inputs {shapes(batch)} are not the trainer's batch {shapes(reference)}")
  return fn, (state, batch), next_args, {"variant": config.model.variant, "flags": flags}


def run(case_name, shape, calls, flags):
  import jax  # pylint: disable=import-outside-toplevel

  case = sbs_cases.CASES[case_name]
  arrays = sbs_cases.make_inputs(case, shape)
  t0 = time.perf_counter()
  if case.kind == "enhance":
    fn, args, next_args, info = build_enhance(case, arrays)
  else:
    fn, args, next_args, info = build_train(case, arrays, shape, flags)
  build_s = time.perf_counter() - t0
  rss_build = harness.peak_rss_gib()
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  figures = harness.xla_figures(compiled)
  first, times = harness.time_calls(compiled, args, calls, next_args)
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return {"case": case_name, "side": "lljax", "shape": list(shape), "build_s": build_s, "compile_s": compile_s,
          "first_s": first, "times": times, "peak_rss_gib": harness.peak_rss_gib(), "rss_after_build_gib": rss_build,
          **figures, "threads": len(os.sched_getaffinity(0)), "cpu_s": usage.ru_utime + usage.ru_stime,
          "jax": jax.__version__, "device": str(jax.devices()[0].device_kind), **info}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("case", choices=sorted(sbs_cases.CASES))
  parser.add_argument("--shape", required=True, help="BxHxW")
  parser.add_argument("--calls", type=int, default=1, help="timed calls after the warm-up call")
  parser.add_argument("--flags", default="", help="train steps: train_speed.py case flags, e.g. ':remat' or ':mb2'")
  args = parser.parse_args()
  shape = tuple(int(v) for v in args.shape.split("x"))
  print(json.dumps(run(args.case, shape, args.calls, args.flags)))


if __name__ == "__main__":
  main()
