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

SMOKE_CASES = ("fclgan_enhance_720x1280", "llflow_small_enhance_400x600")


@pytest.fixture(name="smoke", scope="module")
def smoke_fixture(tmp_path_factory):
  """One --smoke run of two cases with no official checkout configured: (stdout, JSON)."""
  out = tmp_path_factory.mktemp("sbs") / "smoke.json"
  env = {k: v for k, v in os.environ.items() if not k.startswith("LLJAX_OFFICIAL_") and k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, str(BENCHMARKS / "side_by_side.py"), "--smoke", "--cases", *SMOKE_CASES,
                           "--json", str(out)], capture_output=True, text=True, env=env, check=False, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout, json.loads(out.read_text())


def test_smoke_measures_the_lljax_side_at_the_smoke_shapes(smoke):
  _, report = smoke
  assert [row["case"] for row in report["rows"]] == list(SMOKE_CASES)
  for row in report["rows"]:
    lj = row["lljax"]
    assert row["shape"] == list(sbs_cases.CASES[row["case"]].smoke)
    assert lj["runs"] == 1 and len(lj["times"]) == 1 and lj["median_s"] > 0
    assert lj["gflop"] > 0 and lj["gflops_per_s"] == pytest.approx(lj["gflop"] / lj["median_s"])
    assert 0.1 < lj["peak_rss_gib"] < 8  # the child's own ru_maxrss: interpreter, JAX, model
  # Each run was its own process, pinned to the same CPUs.
  runs = report["runs"]
  assert all(run["side"] == "lljax" and run["threads"] == len(os.sched_getaffinity(0)) for run in runs)


def test_without_official_checkouts_the_official_columns_say_why(smoke):
  stdout, report = smoke
  for row in report["rows"]:
    assert "skipped" in row["official"] and row["time_ratio"] is None and row["rss_ratio"] is None
    line = next(line for line in stdout.splitlines() if line.startswith(f"| {row['case']} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == cells[4] == cells[6] == cells[7] == cells[9] == "—"  # official and ratios
    assert f"- {row['case']}, official: not run: " in stdout


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
