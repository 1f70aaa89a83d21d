"""Before/after for the training loop's hot-path choices (LLFlow).

  python benchmarks/hot_paths.py              # all three, then a table
  python benchmarks/hot_paths.py --only cache

- ``cache``: the persistent XLA compilation cache. ``python -m lljax.train`` on the README's quick
  config (2 steps, fresh workdirs, separate processes) with ``LLJAX_COMPILATION_CACHE`` pointing
  at an empty directory, then again at the filled one, and with the cache off; reported are the
  first step (compilation included) and the whole process.
- ``donation``: the train step of the ``small`` release variant (b4 @64²) compiled as the trainer
  does (params and optimizer state donated) and without donation: XLA's memory analysis, whose
  aliased bytes are the copy of the state that donation saves on every step.
- ``late_metrics``: steps/s of the quick config's step when the loop reads each step's loss at
  once (a host sync per step) and when it reads it a step late, as ``common.train_loop``'s ``Reporter`` does.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICK = f"{ROOT}/configs/llflow.py:quick"


def _train_once(cache_dir, workdir):
  """(first step s, process wall s) of a 2-step quick run; cache_dir '' turns the cache off."""
  env = {**os.environ, "LLJAX_COMPILATION_CACHE": cache_dir}
  cmd = [sys.executable, "-m", "lljax.train", "--config", QUICK, "--workdir", str(workdir),
         "--config.total_steps=2", "--config.eval_every=0", "--config.checkpoint_every=0"]
  t0 = time.perf_counter()
  run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
  out = run.stdout + run.stderr  # the progress line goes to stderr
  wall = time.perf_counter() - t0
  first = float(re.search(r"first step took ([\d.]+)s", out).group(1))
  return first, wall


def compilation_cache():
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    cache = pathlib.Path(tmp) / "xla"
    for name, cache_dir in (("cache off", ""), ("cache empty (cold)", str(cache)), ("cache filled (warm)", str(cache))):
      first, wall = _train_once(cache_dir, pathlib.Path(tmp) / f"run{len(rows)}")
      rows.append((name, first, wall))
  print("| compilation cache | first step incl. compile (s) | whole process (s) |\n|---|---|---|")
  for name, first, wall in rows:
    print(f"| {name} | {first:.1f} | {wall:.1f} |")


def _flow_step(preset, batch_size, crop):
  """(the trainer's jitted step, its arguments) for an LLFlow config preset."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  from lljax import models, parallel  # pylint: disable=import-outside-toplevel
  from lljax.config_lib import load_config  # pylint: disable=import-outside-toplevel
  from lljax.trainers import common, flow  # pylint: disable=import-outside-toplevel

  config = load_config(f"{ROOT}/configs/llflow.py:{preset}")
  config.batch_size, config.data.crop_size = batch_size, crop
  family = models.get("llflow")
  module = family.Model(**common.model_config(family, config.model))
  params = common.initial_params(config, family, module)[0]
  rng = np.random.default_rng(0)
  batch = {k: rng.random((batch_size, crop, crop, 3), np.float32) for k in ("low", "normal", "histeq")}
  step, state = common.step_and_state(flow.TRAINER, config, params, parallel.make_mesh(1))
  return step, (state, batch)


def donation():
  import jax  # pylint: disable=import-outside-toplevel

  step, args = _flow_step("small", 4, 64)
  undonated = jax.jit(step.__wrapped__)  # the same function, nothing donated
  print("| train step (LLFlow small, b4 @64²) | args (GiB) | outputs (GiB) | aliased (GiB) | temp (GiB) | peak (GiB) |")
  print("|---|---|---|---|---|---|")
  for name, fn in (("donated (trainer)", step), ("not donated", undonated)):
    mem = fn.lower(*args).compile().memory_analysis()
    gib = lambda n: n / 2**30
    peak = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
    print(f"| {name} | {gib(mem.argument_size_in_bytes):.3f} | {gib(mem.output_size_in_bytes):.3f} | "
          f"{gib(mem.alias_size_in_bytes):.3f} | {gib(mem.temp_size_in_bytes):.3f} | {gib(peak):.3f} |")


def late_metrics(steps=40):
  """Alternates the two ways three times (the spread between repeats is the noise)."""
  import jax  # pylint: disable=import-outside-toplevel

  step, (state, batch) = _flow_step("quick", 4, 64)
  for _ in range(10):  # compile and warm up (the first steps after compiling run slower)
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  rates = {}
  for late in (False, True) * 3:
    pending = None
    t0 = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch)
      if late and pending is not None:
        float(pending["loss"])
      elif not late:
        float(metrics["loss"])
      pending = metrics
    float(pending["loss"])
    rates.setdefault(late, []).append(steps / (time.perf_counter() - t0))
  print("| metrics read (LLFlow quick, b4 @64²) | steps/s (three repeats) |\n|---|---|")
  for late, values in rates.items():
    name = "a step late (train_loop)" if late else "at once (a host sync per step)"
    print(f"| {name} | {' / '.join(f'{v:.2f}' for v in values)} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--only", choices=["cache", "donation", "late_metrics"])
  args = parser.parse_args()
  parts = {"cache": compilation_cache, "donation": donation, "late_metrics": late_metrics}
  for name, fn in parts.items():
    if args.only in (None, name):
      fn()
      print()


if __name__ == "__main__":
  main()
