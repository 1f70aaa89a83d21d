"""One command for a GPU or TPU: fixture parity, enhance time and train steps of every model.

  python benchmarks/accelerator.py --out results/          # the full run (budget: --budget_s 480)
  python benchmarks/accelerator.py --smoke --out /tmp/acc  # every case with tiny shapes, on a CPU

Writes ``accelerator.md`` (tables) and ``accelerator.json`` (rows) in ``--out``, naming the
device, its driver and the versions of JAX and jaxlib. Each case runs in its own process (its
peak device memory is its own); cases not started within ``--budget_s`` seconds are listed as
skipped, so the run ends on time whatever the machine compiles at. Sections:

* ``parity``: each model's converted small fixture (``tests/fixtures``) against the official
  PyTorch output, at ``highest`` and ``default`` precision (``benchmarks/precision_table.py``).
* ``enhance``: ``Restorer.enhance_image`` with the enhance command's defaults, per model (its
  release variant) at 1280x720 and a 24-megapixel photo (4000x6000, tiles of 512 px)
  (``benchmarks/enhance_speed.py``).
* ``train``: each model's paper train step (its release config's crop and batch) in float32 and
  bfloat16, each with and without ``remat``, and bfloat16 in two microbatches (the flows and
  INFWIDE) (``benchmarks/train_speed.py``): XLA's FLOPs, achieved TFLOP/s, MFU against the
  device's dense bfloat16 peak (the usual convention, also for float32 steps), XLA's peak-memory
  estimate and the device's measured peak.

``--smoke`` keeps every case but with tiny variants and shapes (train 2x48x48, enhance 64x96
and a 160x240 photo tiled at 64 px), with one timed repeat: it checks the script, not speed.
"""

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time

import harness

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("llflow", "uptflow", "ssflow", "devudp", "infwide")
RELEASE = {"llflow": "lol", "uptflow": "lol", "ssflow": "lol_blur", "devudp": "in", "infwide": "release"}
TRAIN_FLAGS = ("", ":bf16", ":remat", ":bf16:remat", ":bf16:mb2")
SMOKE_TILING = dict(max_pixels=20_000, tile=64, overlap=16, bucket=16)
# Dense bfloat16 peak TFLOP/s by device kind (vendors' datasheets; SXM parts for NVIDIA).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "TPU v6": 918.0,
                    "TPU v5p": 459.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v4": 275.0}


def cases(smoke, models=MODELS):
  """[(section, case)] in the order they run (cheap first, so a tight budget still says most)."""
  out = [("parity", m) for m in models]
  for model in models:
    variant = "tiny" if smoke else RELEASE[model]
    sizes = ("64x96", "160x240") if smoke else ("720x1280", "4000x6000")
    out += [("enhance", f"{model}/{variant}@{size}") for size in sizes]
  for model in models:
    shape = f"{model}/tiny@2x48x48" if smoke else f"{model}@paper"
    out += [("train", shape + flags) for flags in TRAIN_FLAGS if not (model == "devudp" and ":mb" in flags)]
  return out


def peak_tflops(kind):
  return next((v for k, v in PEAK_BF16_TFLOPS.items() if k.lower() in kind.lower()), None)


def device_peak_gib():
  """The device's measured peak memory in this process (GPU/TPU), else None (the CPU's has none)."""
  import jax  # pylint: disable=import-outside-toplevel
  stats = jax.devices()[0].memory_stats() or {}
  return stats["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in stats else None


def run_case(section, case, smoke):
  """One case in this process: its JSON row."""
  import jax  # pylint: disable=import-outside-toplevel

  if section == "parity":
    import precision_table  # pylint: disable=import-outside-toplevel
    rows = precision_table.errors(case, ("highest", "default"))
    row = {f"{s}_{k}": v for s, (mx, mean) in rows.items() for k, v in (("max_abs", mx), ("mean_abs", mean))}
  elif section == "enhance":
    import enhance_speed  # pylint: disable=import-outside-toplevel
    big = not smoke and case.endswith("4000x6000")
    row = enhance_speed.run_case(case, 1 if smoke or not big else 0, SMOKE_TILING if smoke else None)
  else:
    import train_speed  # pylint: disable=import-outside-toplevel
    row = train_speed.run_case(case, 1 if smoke else 3, max_gib=1e9)
    kind = str(jax.devices()[0].device_kind)
    if row.get("median_s"):
      row["tflops_per_s"] = row["gflop"] / row["median_s"] / 1e3
      peak = peak_tflops(kind)
      row["mfu"] = row["tflops_per_s"] / peak if peak else None
  row.update(section=section, case=case, device_peak_gib=device_peak_gib())
  return row


def _run(section, case, smoke):
  """A case's row, from its own process (its device memory its own), or, for ``--smoke`` on a
  CPU, from this one (no device memory to tell apart; no process start-ups). RuntimeError: it
  failed, with its error output."""
  if smoke:
    try:
      return run_case(section, case, smoke)
    except Exception as e:  # pylint: disable=broad-except
      raise RuntimeError(f"{type(e).__name__}: {e}") from e
  code, out, err, _ = harness.run_child([sys.executable, __file__, "case", section, case])
  if code:
    raise RuntimeError(err[-2000:].strip() or f"exit status {code}")
  return json.loads(out.strip().splitlines()[-1])


def machine():
  """The device, its driver and the library versions, for the report's heading."""
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel

  device = jax.devices()[0]
  info = {"platform": device.platform, "device": str(device.device_kind), "devices": jax.device_count(),
          "jax": jax.__version__, "jaxlib": jaxlib.__version__, "python": platform.python_version(),
          "host": platform.machine()}
  if device.platform == "gpu":
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False)
    info["driver"] = smi.stdout.strip() or smi.stderr.strip()[:200]
  return info


def _fmt(v, spec):
  return "–" if v is None else format(v, spec)


def markdown(info, rows, skipped):
  """The report: a heading naming the machine, then one table per section."""
  lines = [f"# lljax on {info['device']} ({info['platform']}, {info['devices']} device(s))", "",
           ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("device", "platform", "devices")), ""]
  by = lambda s: [r for r in rows if r["section"] == s]
  lines += ["## Fixture parity (max / mean abs error against the official output)", "",
            "| model | highest | default |", "|---|---|---|"]
  lines += [f"| {r['case']} | {r['highest_max_abs']:.1e} / {r['highest_mean_abs']:.1e} | "
            f"{r['default_max_abs']:.1e} / {r['default_mean_abs']:.1e} |" for r in by("parity")]
  lines += ["", "## Enhance (enhance command defaults)", "",
            "| case | first call, compile incl. (s) | median (s) | tiled | GFLOP/image | XLA temp (GiB) | device peak (GiB) |",
            "|---|---|---|---|---|---|---|"]
  lines += [f"| {r['case']} | {r['first_s']:.2f} | {r['median_s']:.3f} | {r['tiled']} | {r['gflop']:.3g} | "
            f"{r['xla_temp_gib']:.2f} | {_fmt(r['device_peak_gib'], '.2f')} |" for r in by("enhance")]
  lines += ["", "## Train step (paper crop and batch)", "",
            "| case | batch x size | compile (s) | step (s) | GFLOP/step | TFLOP/s | MFU | XLA peak (GiB) | device peak (GiB) |",
            "|---|---|---|---|---|---|---|---|---|"]
  lines += [f"| {r['case']} | {r['batch']} x {r['hw'][0]}x{r['hw'][1]} | {r['compile_s']:.0f} | "
            f"{_fmt(r.get('median_s'), '.3f')} | {r['gflop']:.3g} | {_fmt(r.get('tflops_per_s'), '.2f')} | "
            f"{_fmt(r.get('mfu'), '.1%')} | {r['xla_peak_gib']:.2f} | {_fmt(r['device_peak_gib'], '.2f')} |"
            for r in by("train")]
  if skipped:
    lines += ["", "Not run: " + "; ".join(f"{s} {c} ({why})" for s, c, why in skipped)]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("mode", nargs="?", default="all", choices=["all", "case"])
  parser.add_argument("section", nargs="?", choices=["parity", "enhance", "train"])
  parser.add_argument("name", nargs="?")
  parser.add_argument("--smoke", action="store_true", help="every case, tiny shapes (checks the script)")
  parser.add_argument("--out", default="accelerator_results", help="folder for accelerator.md/.json")
  parser.add_argument("--budget_s", type=float, default=None,
                      help="start no case after this many seconds (default 480; --smoke: none)")
  parser.add_argument("--sections", nargs="*", default=["parity", "enhance", "train"])
  parser.add_argument("--models", nargs="*", default=list(MODELS))
  args = parser.parse_args(argv)
  if args.mode == "case":
    print(json.dumps(run_case(args.section, args.name, args.smoke)))
    return 0
  budget = args.budget_s or (float("inf") if args.smoke else 480.0)
  started, rows, skipped = time.time(), [], []
  for section, case in (c for c in cases(args.smoke, args.models) if c[0] in args.sections):
    if time.time() - started > budget:
      skipped.append((section, case, "time budget"))
      continue
    try:
      rows.append(_run(section, case, args.smoke))
    except RuntimeError as e:
      skipped.append((section, case, f"failed: {str(e).splitlines()[-1][:160]}"))
      print(f"  {section} {case}: failed\n{e}", file=sys.stderr, flush=True)
      continue
    print(f"  {section} {case}: done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
  info = machine()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "accelerator.json").write_text(json.dumps({"machine": info, "rows": rows, "skipped": skipped}, indent=1))
  report = markdown(info, rows, skipped)
  (out / "accelerator.md").write_text(report)
  print(report)
  return 1 if any(why.startswith("failed") for _, _, why in skipped) else 0


if __name__ == "__main__":
  sys.exit(main())
