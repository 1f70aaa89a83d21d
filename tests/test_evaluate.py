"""python -m lljax.evaluate on a converted fixture model: folder pairs, TFDS splits, outputs, errors."""

import csv
import json

import numpy as np
import pytest
from skimage import data as skdata

import lljax
from lljax import evaluate
from lljax.metrics import protocols as P
from lljax.utils.images import read_image, save_png

NAMES = ("astro", "coffee", "rocket")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
  """Three 64x64 low/GT pairs in two folders (names paired across extensions)."""
  root = tmp_path_factory.mktemp("pairs")
  (root / "low").mkdir()
  (root / "gt").mkdir()
  crops = {"astro": skdata.astronaut()[100:164, 180:244], "coffee": skdata.coffee()[150:214, 200:264],
           "rocket": skdata.rocket()[200:264, 100:164]}
  for i, (name, gt) in enumerate(crops.items()):
    save_png(root / "gt" / f"{name}.png", gt)
    low = (gt * (0.15 + 0.05 * i)).astype(np.uint8)
    save_png(root / "low" / f"{name}.png", low)
  return root


def _run(capsys, *argv):
  code = evaluate.main([str(a) for a in argv])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_folder_pairs_end_to_end(llflow_small_dir, pairs, tmp_path, capsys):
  out = tmp_path / "res"
  code, stdout, stderr = _run(capsys, "--model", llflow_small_dir, "--low_dir", pairs / "low", "--gt_dir",
                              pairs / "gt", "--output", out, "--save_images", "--grid", "1",
                              "--protocol", "llflow", "--protocol", "basicsr:crop_border=4")
  assert code == 0, stderr
  assert "llflow" in stdout and "basicsr:crop_border=4" in stdout and "honest" in stdout
  results = json.loads((out / "metrics.json").read_text())
  assert results["count"] == 3 and list(results["protocols"]) == ["llflow", "basicsr:crop_border=4", "honest"]
  assert [r["name"] for r in results["images"]] == sorted(NAMES)

  # Each number is the protocol applied to the model's raw output.
  restorer = lljax.load(llflow_small_dir)
  for row in results["images"]:
    low, _ = read_image(pairs / "low" / f"{row['name']}.png")
    gt, _ = read_image(pairs / "gt" / f"{row['name']}.png")
    raw = restorer.enhance(low / 255.0, clip=False)[0]
    for spec in results["protocols"]:
      m = P.get(spec).measure(raw, gt)
      for key, value in m.metrics.items():
        assert row[spec][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (spec, key)
      saved, _ = read_image(out / "images" / spec.replace(":", "_") / f"{row['name']}.png")
      np.testing.assert_array_equal(saved, m.image)
  for spec, info in results["protocols"].items():
    for key, mean in info["mean"].items():
      assert mean == pytest.approx(np.mean([r[spec][key] for r in results["images"]]))

  with open(out / "metrics.csv") as f:
    table = list(csv.DictReader(f))
  assert [r["name"] for r in table] == sorted(NAMES) + ["mean"]
  assert float(table[-1]["llflow/psnr"]) == pytest.approx(results["protocols"]["llflow"]["mean"]["psnr"], rel=1e-5)
  assert float(table[0]["honest/lpips"]) == pytest.approx(results["images"][0]["honest"]["lpips"], rel=1e-5)

  grid, _ = read_image(out / "grid.png")  # worst and best rows of 4 cells (low | llflow | honest | gt)
  assert grid.shape == (2 * 64 + 3 * 2, 4 * 64 + 5 * 2, 3)

  code, _, stderr = _run(capsys, "--model", llflow_small_dir, "--low_dir", pairs / "low", "--gt_dir",
                         pairs / "gt", "--output", out)
  assert code == 2 and "already holds results" in stderr and "--force" in stderr


def test_default_protocol_and_tfds_split(llflow_small_dir, embedded_data_dir, tmp_path, capsys):
  args = evaluate.parse_args(["--model", str(llflow_small_dir), "--data", "embedded_photos/lowlight",
                              "--split", "test", "--data_dir", str(embedded_data_dir), "--limit", "2"])
  count, examples = evaluate.iterate_pairs(args)
  examples = list(examples)
  assert count == len(examples) == 2
  from lljax.data import sources  # pylint: disable=import-outside-toplevel

  source = sources.open_source("embedded_photos/lowlight", "test", embedded_data_dir)
  by_name = {ex["name"].decode() if isinstance(ex["name"], bytes) else str(ex["name"]): ex
             for ex in (source[i] for i in range(len(source)))}
  for name, low, gt in examples:
    assert low.dtype == np.float32 and gt.dtype == np.uint8
    np.testing.assert_array_equal(gt, by_name[name]["normal"])
    np.testing.assert_array_equal(np.round(low * 255).astype(np.uint8), by_name[name]["low"])
  assert [n for n, _, _ in examples] == sorted(by_name)[:2]


def test_default_protocols_and_no_lpips(llflow_small_dir, pairs, tmp_path, capsys):
  code, stdout, _ = _run(capsys, "--model", llflow_small_dir, "--low_dir", pairs / "low", "--gt_dir",
                         pairs / "gt", "--output", tmp_path / "r", "--no_lpips", "--limit", "1", "--grid", "0")
  assert code == 0
  results = json.loads((tmp_path / "r" / "metrics.json").read_text())
  assert list(results["protocols"]) == ["llflow", "honest"]  # the model's paper protocol + honest
  assert results["count"] == 1 and "lpips" not in results["images"][0]["llflow"]
  assert not (tmp_path / "r" / "grid.png").exists()


def test_errors(llflow_small_dir, pairs, tmp_path, capsys):
  (tmp_path / "gt").mkdir()
  save_png(tmp_path / "gt" / "astro.png", np.zeros((64, 64, 3), np.uint8))
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, "--low_dir", pairs / "low", "--gt_dir",
                         tmp_path / "gt", "--output", tmp_path / "r")
  assert code == 2 and "no partner" in stderr and "coffee" in stderr
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, "--data", "lol", "--data_dir", tmp_path,
                         "--output", tmp_path / "r2")
  assert code == 2 and "not prepared" in stderr
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, "--low_dir", pairs / "low", "--gt_dir",
                         pairs / "gt", "--protocol", "kind", "--output", tmp_path / "r3")
  assert code == 2 and "unknown protocol" in stderr
  with pytest.raises(SystemExit):
    evaluate.parse_args(["--model", "m", "--data", "lol", "--low_dir", "x"])
