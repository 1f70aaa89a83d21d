"""What the benchmark scripts share: one case per process, timing of compiled calls, XLA's
FLOP and memory figures, peak RSS."""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def case_parser(doc, default_cases=None, repeats=2):
  """The scripts' command line: ``[all | case NAME] [--cases ...] [--repeats N]``."""
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("mode", nargs="?", default="all", choices=["all", "case"])
  parser.add_argument("name", nargs="?")
  parser.add_argument("--cases", nargs="*", default=default_cases)
  parser.add_argument("--repeats", type=int, default=repeats)
  return parser


def peak_rss_gib():
  """The process's peak resident memory (interpreter, JAX runtime, arrays, programs), GiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gflop(program):
  """GFLOP of a lowered or compiled program by XLA's cost analysis (2 per multiply-add; a while
  loop's body counts once, whatever its trip count)."""
  cost = program.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get("flops", float("nan"))) / 1e9


def xla_figures(compiled):
  """FLOPs (``gflop``) and XLA's memory analysis (GiB) of a compiled program."""
  mem = compiled.memory_analysis()
  gib = lambda n: n / 2**30
  return {"gflop": gflop(compiled),
          "xla_temp_gib": gib(mem.temp_size_in_bytes), "xla_args_gib": gib(mem.argument_size_in_bytes),
          "xla_peak_gib": gib(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
                              - mem.alias_size_in_bytes)}


def time_calls(fn, args, repeats, next_args=None, sync=None):
  """Runs ``fn(*args)`` once (warm-up) then ``repeats`` times; returns (first s, [times]).

  ``next_args(args, out)``: the arguments of the next call (e.g. a train step's donated state
  fed back from its outputs); default: the same arguments. ``sync(out)`` waits for the result
  (default ``jax.block_until_ready``; torch on a CPU returns finished results: ``lambda out: out``).
  """
  if sync is None:
    import jax  # pylint: disable=import-outside-toplevel
    sync = jax.block_until_ready

  def call(args):
    t0 = time.perf_counter()
    out = sync(fn(*args))
    return out, time.perf_counter() - t0

  out, first = call(args)
  times = []
  for _ in range(repeats):
    args = next_args(args, out) if next_args else args
    out, seconds = call(args)
    times.append(seconds)
  return first, times


def rss_bytes(pid):
  """Current resident memory of process ``pid`` (0 once it is gone)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def run_child(cmd, env=None, rss_limit_gib=None, cpus=None):
  """Runs ``cmd`` in a child process (stdout/stderr to temporary files, so a chatty child never
  blocks on a full pipe); ``cpus``: the CPUs it may run on (its affinity, which sizes XLA's and
  OpenMP's thread pools). Kills that child (by pid) if its RSS passes ``rss_limit_gib``.
  Returns (return code, stdout, stderr, note): note says why it was killed, else ''."""
  preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, preexec_fn=preexec)  # pylint: disable=subprocess-popen-preexec-fn
    note = ""
    while child.poll() is None:
      if rss_limit_gib and rss_bytes(child.pid) > rss_limit_gib * 2**30:
        child.kill()
        note = f"killed: RSS above {rss_limit_gib:.1f} GiB"
      time.sleep(0.2)
    out.seek(0)
    err.seek(0)
    return child.returncode, out.read(), err.read(), note


def run_cases(script, cases, extra_args=()):
  """Runs ``python script case NAME *extra_args`` for each case (its own process, so its peak
  RSS is its own); returns the JSON rows of the cases that succeeded, reporting failures."""
  rows = []
  for case in cases:
    result = subprocess.run([sys.executable, script, "case", case, *extra_args],
                            capture_output=True, text=True, check=False)
    if result.returncode:
      print(f"{case}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
      continue
    rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"  {case}: done", file=sys.stderr, flush=True)
  return rows
