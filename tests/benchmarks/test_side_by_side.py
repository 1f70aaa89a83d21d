"""benchmarks/side_by_side.py: the lljax side runs end to end without torch (``--smoke``), and the
table is made of what the runs measured, official and lljax alternating."""

import json
import os
import pathlib
import statistics
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import sbs_cases  # noqa: E402  pylint: disable=wrong-import-position
import side_by_side  # noqa: E402  pylint: disable=wrong-import-position

SMOKE_CASES = ("fclgan_enhance_720x1280", "infwide_train_paper")  # the fastest to compile


def test_smoke_measures_the_lljax_side_and_says_why_the_official_one_is_missing(tmp_path):
  """One --smoke run of two cases (an enhance call, a train step) with no official checkout
  configured (one test: under pytest-xdist a shared fixture would run once per worker)."""
  out = tmp_path / "smoke.json"
  env = {k: v for k, v in os.environ.items() if not k.startswith("LLJAX_OFFICIAL_") and k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, str(BENCHMARKS / "side_by_side.py"), "--smoke", "--cases", *SMOKE_CASES,
                           "--json", str(out)], capture_output=True, text=True, env=env, check=False, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert [row["case"] for row in report["rows"]] == list(SMOKE_CASES)
  for row in report["rows"]:
    lj = row["lljax"]
    assert row["shape"] == list(sbs_cases.CASES[row["case"]].smoke)
    assert lj["runs"] == 1 and len(lj["times"]) == 1 and lj["median_s"] > 0
    assert lj["gflop"] > 0 and lj["gflops_per_s"] == pytest.approx(lj["gflop"] / lj["median_s"])
    assert 0.1 < lj["peak_rss_gib"] < 8  # the child's own ru_maxrss: interpreter, JAX, model
    # The official columns and the ratios say "—", and a note says why.
    assert "skipped" in row["official"] and row["time_ratio"] is None and row["rss_ratio"] is None
    line = next(line for line in result.stdout.splitlines() if line.startswith(f"| {row['case']} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == cells[4] == cells[6] == cells[7] == cells[9] == "—"
    assert cells[2] == f"{lj['median_s']:.2f}" and cells[5] == f"{lj['peak_rss_gib']:.2f}"
    assert f"- {row['case']}, official: not run: " in result.stdout
  # Each run was its own process with the driver's CPUs.
  assert [(run["case"], run["side"], run["threads"]) for run in report["runs"]] == [
      (case, "lljax", len(os.sched_getaffinity(0))) for case in SMOKE_CASES]


def test_runs_alternate_and_the_table_holds_what_they_measured():
  order = side_by_side.schedule(["a", "b"], 2, side_by_side.SIDES)
  assert [(n, s) for n, s, _ in order] == [("a", "official"), ("a", "lljax")] * 2 + [("b", "official"), ("b", "lljax")] * 2
  runs = [
      {"case": "a", "side": "official", "times": [4.0, 6.0], "first_s": 9.0, "peak_rss_gib": 2.0, "gflop": 100.0},
      {"case": "a", "side": "lljax", "times": [1.0, 3.0], "first_s": 5.0, "peak_rss_gib": 1.0, "gflop": 80.0,
       "compile_s": 7.0},
      {"case": "a", "side": "official", "times": [8.0, 5.0], "first_s": 9.0, "peak_rss_gib": 4.0, "gflop": None},
      {"case": "a", "side": "lljax", "error": "killed: RSS above 1.0 GiB"},
  ]
  row, skipped_row = side_by_side.table_rows(["a", "b"], runs, {"a": (1, 8, 8), "b": (1, 8, 8)}, {"b": "no checkout"})
  official, lljax = row["official"], row["lljax"]
  assert official["median_s"] == statistics.median([4.0, 6.0, 8.0, 5.0]) and official["runs"] == 2
  assert official["peak_rss_gib"] == 3.0 and official["gflops_per_s"] == 100.0 / official["median_s"]
  assert lljax["median_s"] == 2.0 and lljax["runs"] == 1 and lljax["compile_s"] == 7.0  # the failed run is left out
  assert row["time_ratio"] == lljax["median_s"] / official["median_s"] and row["rss_ratio"] == 1.0 / 3.0
  assert skipped_row["official"] == {"skipped": "no checkout"} and skipped_row["lljax"] == {"error": "not run"}
