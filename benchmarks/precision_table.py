"""Error of each precision setting against the official outputs, per model.

  python benchmarks/precision_table.py          # a markdown table (README.md, "Precision")
  python benchmarks/precision_table.py --json   # the same rows as JSON lines

Each model's converted small fixture (``tests/fixtures/<model>/small.pth``, random perturbed
weights of the official small configuration) enhances the fixture's input through
``lljax.load``'s programs (``Restorer.enhance``, unclipped) under each setting of
``lljax.nn.precision`` ("highest", "default", "bfloat16"); the table gives the max and mean
absolute difference from the official PyTorch output (float32, CPU) in the fixture, on the
[0, 1] image scale. On this machine's CPU "default" computes float32 products, as "highest" does;
on GPU (TF32) and TPU (one bfloat16 pass) it lies between "highest" and "bfloat16".
"""

import argparse
import json
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

# model: (input key, official output key) in tests/fixtures/<model>/small_io.npz (NCHW).
CASES = {
    "llflow": ("low_rgb01", "dec_output"),
    "uptflow": ("lq_input", "dec_z0_output"),
    "ssflow": ("low_rgb01", "dec_output"),
    "devudp": ("input_blurry", "G_B2S_out"),
    "infwide": ("input_blurry", "out_full"),
}


def errors(model, settings):
  """{setting: (max abs error, mean abs error)} of ``model``'s fixture output."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from lljax import api, models  # pylint: disable=import-outside-toplevel
  from lljax.convert import load_torch_params  # pylint: disable=import-outside-toplevel

  io = dict(np.load(FIXTURES / model / "small_io.npz"))
  config, params, _ = load_torch_params(model, FIXTURES / model / "small.pth")
  module = models.get(model).Model(**config)
  in_key, out_key = CASES[model]
  low, want = (np.moveaxis(io[k], 1, -1) for k in (in_key, out_key))
  kernel = io["input_kernel"][0, 0] if model == "infwide" else None
  rows = {}
  for setting in settings:
    got = api.Restorer.of_module(model, module, params, setting).enhance(low, kernel, clip=False)
    diff = np.abs(got.astype(np.float64) - want)
    rows[setting] = (float(diff.max()), float(diff.mean()))
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", nargs="*", default=list(CASES))
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  import jax  # pylint: disable=import-outside-toplevel
  from lljax.nn import precision  # pylint: disable=import-outside-toplevel

  device = jax.devices()[0]
  print(f"# {device.platform} ({device.device_kind}), jax {jax.__version__}, {platform.machine()}", file=sys.stderr)
  table = {m: errors(m, precision.SETTINGS) for m in args.models}
  if args.json:
    for model, rows in table.items():
      for setting, (mx, mean) in rows.items():
        print(json.dumps({"model": model, "precision": setting, "max_abs": mx, "mean_abs": mean,
                          "device": device.device_kind}))
    return
  print("| model | " + " | ".join(f"{s}: max / mean abs" for s in precision.SETTINGS) + " |")
  print("|---|" + "---|" * len(precision.SETTINGS))
  for model, rows in table.items():
    print(f"| {model} | " + " | ".join(f"{mx:.1e} / {mean:.1e}" for mx, mean in rows.values()) + " |")


if __name__ == "__main__":
  main()
