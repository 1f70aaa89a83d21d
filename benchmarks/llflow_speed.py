"""LLFlow speed and memory on this machine (the official PyTorch code beside it: ``side_by_side.py``).

  python benchmarks/llflow_speed.py            # all cases, each in its own process; prints a table
  python benchmarks/llflow_speed.py --cases small_enhance_400x600
  python benchmarks/llflow_speed.py case lol_train_b4_160   # one case in this process, JSON line

Timing: one warm-up call (compilation, reported separately), then the median of ``--repeats``
calls. FLOPs come from XLA's cost analysis of the compiled program (2 per multiply-add, all
ops), so "GFLOP/s" is comparable with the machine's GEMM ceiling. Peak RSS is the process's
``ru_maxrss`` (interpreter + JAX + model included), as ``side_by_side.py`` reports it. Weights
are random (speed does not depend on them); float32 throughout.
"""

import json
import statistics
import time

import harness

CASES = {
    "small_enhance_400x600": ("small", "enhance", 1, (400, 600)),
    "lol_enhance_400x600": ("lol", "enhance", 1, (400, 600)),
    "small_train_b16_160": ("small", "train", 16, (160, 160)),
    "lol_train_b4_160": ("lol", "train", 4, (160, 160)),
    # Mixed precision (config.compute_dtype="bfloat16"): bf16 convs/matmuls, f32 params/log-dets.
    "small_train_b16_160_bf16": ("small", "train_bf16", 16, (160, 160)),
}


def _build(variant, kind, batch, hw):
  import pathlib  # pylint: disable=import-outside-toplevel

  import jax  # pylint: disable=import-outside-toplevel

  from lljax import models, parallel  # pylint: disable=import-outside-toplevel
  from lljax.config_lib import load_config  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel
  from lljax.trainers import common, flow  # pylint: disable=import-outside-toplevel

  family = models.get("llflow")
  module = family.Model(variant)
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  rng = jax.random.key(0)
  batch_arrays = {k: jax.random.uniform(jax.random.fold_in(rng, i), (batch, *hw, 3))
                  for i, k in enumerate(("low", "histeq", "normal"))}
  if kind == "enhance":
    fn = jax.jit(lambda p, b: module.apply({"params": p}, b, method=module.enhance))
    return fn, (params, batch_arrays)
  cfg = load_config(f"{pathlib.Path(__file__).parents[1]}/configs/llflow.py")
  cfg.compute_dtype = "bfloat16" if kind == "train_bf16" else "float32"
  cfg.model.variant = variant
  step, state = common.step_and_state(flow.TRAINER, cfg, params, parallel.make_mesh(1))
  return step, (state, batch_arrays)


def run_case(name, repeats):
  import jax  # pylint: disable=import-outside-toplevel

  variant, kind, batch, hw = CASES[name]
  fn, args = _build(variant, kind, batch, hw)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  gflop = harness.xla_figures(compiled)["gflop"]
  # A train step donates its state: each call gets the previous call's.
  feed_back = (lambda args, out: (out[0], args[1])) if kind.startswith("train") else None
  _, times = harness.time_calls(compiled, args, repeats, feed_back)
  median = statistics.median(times)
  return {"case": name, "compile_s": compile_s, "median_s": median, "times": times, "gflop": gflop,
          "gflops_per_s": gflop / median, "peak_rss_gib": harness.peak_rss_gib(),
          "device": str(jax.devices()[0].device_kind)}


def main():
  parser = harness.case_parser(__doc__, list(CASES), 3)
  args = parser.parse_args()
  if args.mode == "case":
    print(json.dumps(run_case(args.name, args.repeats)))
    return
  rows = harness.run_cases(__file__, args.cases, ["--repeats", str(args.repeats)])
  print("| case | lljax time (s) | compile (s) | GFLOP | GFLOP/s | peak RSS (GiB) |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['case']} | {r['median_s']:.2f} | {r['compile_s']:.1f} | {r['gflop']:.0f} | "
          f"{r['gflops_per_s']:.1f} | {r['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
  main()
