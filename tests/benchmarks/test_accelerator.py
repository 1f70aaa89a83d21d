"""benchmarks/accelerator.py, the one device script: its ``--smoke`` run writes every section's
table from what it measured, and its full run covers every model, size and train setting."""

import json
import os
import pathlib
import subprocess
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import accelerator  # noqa: E402  pylint: disable=wrong-import-position


def test_the_full_run_covers_every_model_size_and_train_setting():
  full = accelerator.cases(smoke=False)
  assert [c for s, c in full if s == "parity"] == list(accelerator.MODELS)
  enhance = [c for s, c in full if s == "enhance"]
  for model, variant in accelerator.RELEASE.items():
    assert f"{model}/{variant}@720x1280" in enhance and f"{model}/{variant}@4000x6000" in enhance  # 24 MP
  train = [c for s, c in full if s == "train"]
  for model in accelerator.MODELS:
    flags = {c.partition("@")[2].partition(":")[2] for c in train if c.startswith(f"{model}@paper")}
    assert flags >= {"", "bf16", "remat", "bf16:remat"}
    assert ("bf16:mb2" in flags) == (model != "devudp")  # the GAN trainer has no microbatches
  smoke = accelerator.cases(smoke=True)
  assert len(smoke) == len(full) and [s for s, _ in smoke] == [s for s, _ in full]
  assert accelerator.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and accelerator.peak_tflops("cpu") is None


def test_smoke_run_measures_every_section(tmp_path):
  """One model (the fastest to compile) through every section, as the device run does them."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, str(BENCHMARKS / "accelerator.py"), "--smoke", "--models", "devudp",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, check=False, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((tmp_path / "accelerator.json").read_text())
  assert not report["skipped"] and report["machine"]["platform"] == "cpu" and report["machine"]["jax"]
  rows = {(r["section"], r["case"]): r for r in report["rows"]}
  assert set(rows) == set(accelerator.cases(smoke=True, models=("devudp",)))
  parity = rows["parity", "devudp"]
  assert 0 < parity["highest_max_abs"] < 1e-4 and 0 < parity["default_max_abs"] < 1e-4
  assert rows["enhance", "devudp/tiny@160x240"]["tiled"] and not rows["enhance", "devudp/tiny@64x96"]["tiled"]
  for (section, case), row in rows.items():
    if section == "train":
      assert row["gflop"] > 0 and row["tflops_per_s"] == row["gflop"] / row["median_s"] / 1e3
      assert row["mfu"] is None and row["device_peak_gib"] is None  # a CPU: no peak, no memory stats
  table = (tmp_path / "accelerator.md").read_text()
  assert table.startswith("# lljax on cpu") and table.count("| devudp/tiny@2x48x48") == 4
