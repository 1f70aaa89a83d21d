"""Train-step time, FLOPs and memory per model: the paper's crop and batch, 400x600 and 1280x720.

  python benchmarks/train_speed.py                     # every default case, then a table
  python benchmarks/train_speed.py --cases llflow@paper llflow@paper:remat
  python benchmarks/train_speed.py case uptflow@720x1280:remat   # one case here: a JSON line

A case is ``MODEL[/VARIANT]@SHAPE[:remat][:bf16][:mbN][:scan]``. SHAPE ``paper`` is the crop and
batch of the model's release config (``configs/MODEL.py`` with no preset: LLFlow LOL b16 @160²,
UPT-Flow b8 @160², SSFlow b16 @160², DEvUDP (IN) b4 @256², INFWIDE b8 @256²); ``HxW`` is one
image of that size, ``BxHxW`` a batch of B images (to compare flags on the same batch). VARIANT
replaces the config's model variant (e.g. ``llflow/small@16x160x160``). ``remat`` sets
``config.remat`` (blocks recomputed in the backward pass), ``bf16``
``config.compute_dtype="bfloat16"``, ``mbN`` ``config.microbatches=N`` (gradients accumulated over
N sequential parts of the batch: the paper batch in less memory; not for DEvUDP), ``scan``
``config.microbatch_loop="scan"`` (one ``lax.scan`` over the parts, the GPU/TPU loop; on the CPU
the parts are written out one after another). The step is the trainer's own jitted update
(``make_train_step`` of the flow/GAN/supervised trainer) with random weights and data.

Reported: compile time; GFLOP per step from XLA's cost analysis (2 per multiply-add, all ops);
XLA's memory analysis ("temp": activations and scratch; "peak": temp + arguments + outputs -
donated aliases); and, when that peak fits under ``--max-gib``, the median step time of
``--repeats`` steps after a warm-up step, the achieved GFLOP/s and the process's peak RSS.
Cases that do not fit are compiled and analysed only ("not run").
"""

import json
import pathlib
import statistics
import time

import harness

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("llflow", "uptflow", "ssflow", "devudp", "infwide")
SHAPES = ("paper", "400x600", "720x1280")


def default_cases():
  """Per model: the paper setting with and without remat; the two image sizes with remat
  (without, the flows' 720p steps need far more memory than a workstation has)."""
  cases = []
  for model in MODELS:
    cases += [f"{model}@paper", f"{model}@paper:remat", f"{model}@400x600", f"{model}@400x600:remat",
              f"{model}@720x1280:remat"]
  return cases


def parse_case(case):
  """'llflow@paper:remat:mb2' -> ('llflow', None, {'remat': True, 'bf16': False, 'scan': False, 'mb': 2,
  'variant': None}); the shape is None for 'paper', else (h, w) or (b, h, w)."""
  model, _, rest = case.partition("@")
  model, _, variant = model.partition("/")
  shape, *flags = rest.split(":")
  microbatches = [f for f in flags if f.startswith("mb") and f[2:].isdigit()]
  if (model not in MODELS or not (shape == "paper" or shape.count("x") in (1, 2))
      or set(flags) - {"remat", "bf16", "scan", *microbatches} or len(microbatches) > 1):
    raise SystemExit(f"bad case {case!r}: MODEL[/VARIANT]@SHAPE[:remat][:bf16][:mbN][:scan], MODEL in {MODELS}, "
                     "SHAPE paper, HxW or BxHxW")
  if model == "devudp" and microbatches:
    raise SystemExit(f"bad case {case!r}: the GAN trainer has no microbatches")
  hw = None if shape == "paper" else tuple(int(v) for v in shape.split("x"))
  return model, hw, {"remat": "remat" in flags, "bf16": "bf16" in flags, "scan": "scan" in flags,
                     "mb": int(microbatches[0][2:]) if microbatches else 1, "variant": variant or None}


def _config(model, hw, flags):
  from lljax.config_lib import load_config  # pylint: disable=import-outside-toplevel

  config = load_config(str(ROOT / "configs" / f"{model}.py"))
  if hw is not None:
    config.batch_size = hw[0] if len(hw) == 3 else 1
  config.remat = flags["remat"]
  config.compute_dtype = "bfloat16" if flags["bf16"] else "float32"
  config.microbatches = flags["mb"]
  if flags.get("scan"):
    config.microbatch_loop = "scan"
  if flags.get("variant"):
    config.model.variant = flags["variant"]
  config.mesh.data = 1
  return config


def _random_batch(family, module, config, hw):
  import numpy as np  # pylint: disable=import-outside-toplevel

  h, w = hw[-2:] if hw else (config.data.crop_size,) * 2
  rng = np.random.default_rng(0)
  image = lambda scale=1.0: (rng.random((config.batch_size, h, w, 3), np.float32) * scale)
  inputs = family.init_inputs(module)[0]  # flows: a dict of the model's inputs (+ host features)
  batch = {key: image() for key in (inputs if isinstance(inputs, dict) else ())}
  batch.update(low=image(0.2), normal=image())
  if getattr(family, "NEEDS_KERNEL", False):
    from lljax.imaging import motion  # pylint: disable=import-outside-toplevel
    batch["kernel"] = np.stack([motion.motion_kernel(i)[0] for i in range(config.batch_size)]).astype(np.float32)
  return batch


def build_step(model, hw, flags):
  """(jitted train step, its arguments, next_args, config) for a case, as the model's trainer
  builds it."""
  from lljax import models, parallel, trainers  # pylint: disable=import-outside-toplevel
  from lljax.trainers import common  # pylint: disable=import-outside-toplevel

  config = _config(model, hw, flags)
  family = models.get(model)
  module = family.Model(**common.model_config(family, config.model))
  params = common.initial_params(config, family, module)[0]
  batch = _random_batch(family, module, config, hw)
  fn, state = common.step_and_state(trainers.get(family.KIND).TRAINER, config, params, parallel.make_mesh(1))
  return fn, (state, batch), lambda args, out: (out[0], args[1]), config


def run_case(case, repeats, max_gib):
  import jax  # pylint: disable=import-outside-toplevel

  from lljax import parallel  # pylint: disable=import-outside-toplevel
  from lljax.trainers import steps  # pylint: disable=import-outside-toplevel

  model, hw, flags = parse_case(case)
  fn, args, next_args, config = build_step(model, hw, flags)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  row = {"case": case, "compile_s": time.perf_counter() - t0, **harness.xla_figures(compiled),
         "batch": int(args[-1]["low"].shape[0]), "hw": list(args[-1]["low"].shape[1:3]),
         "device": str(jax.devices()[0].device_kind)}
  if flags["mb"] > 1 and steps.backend_choices(config, parallel.make_mesh(1))[1] == "scan":
    # XLA counts a scan's body once: take the FLOPs of the unsplit step (same work). Unrolled parts
    # (the CPU's loop) are all in the compiled program, counted above.
    row["gflop"] = harness.gflop(build_step(model, hw, {**flags, "mb": 1})[0].lower(*args))
    row["gflop_from"] = "unsplit step, lowered"
  if row["xla_peak_gib"] > max_gib:
    return {**row, "median_s": None, "peak_rss_gib": harness.peak_rss_gib()}
  first, times = harness.time_calls(compiled, args, repeats, next_args)
  median = statistics.median(times) if times else first
  return {**row, "first_s": first, "times": times, "median_s": median, "gflops_per_s": row["gflop"] / median,
          "peak_rss_gib": harness.peak_rss_gib()}


def print_table(rows):
  print(f"device: {rows[0]['device']}")
  print("| case | batch x size | compile (s) | step (s) | GFLOP/step | GFLOP/s | XLA temp (GiB) | XLA peak (GiB) | peak RSS (GiB) |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    ran = r["median_s"] is not None
    step = f"{r['median_s']:.2f}" if ran else "not run"
    rate = f"{r['gflops_per_s']:.1f}" if ran else "–"
    print(f"| {r['case']} | {r['batch']} x {r['hw'][0]}x{r['hw'][1]} | {r['compile_s']:.0f} | {step} | {r['gflop']:.0f} | "
          f"{rate} | {r['xla_temp_gib']:.2f} | {r['xla_peak_gib']:.2f} | {r['peak_rss_gib']:.2f} |")


def main():
  parser = harness.case_parser(__doc__, repeats=2)
  parser.add_argument("--max-gib", type=float, default=16.0,
                      help="run a step only if XLA's estimated peak is below this (default 16)")
  args = parser.parse_args()
  extra = ["--repeats", str(args.repeats), "--max-gib", str(args.max_gib)]
  if args.mode == "case":
    print(json.dumps(run_case(args.name, args.repeats, args.max_gib)))
    return
  rows = harness.run_cases(__file__, args.cases or default_cases(), extra)
  if rows:
    print_table(rows)


if __name__ == "__main__":
  main()
