"""python -m lljax.compare: one labelled panel per model holding that model's output, the metrics
of its paper's protocol and the honest one, the JSON and table, and the refusals.

Three fixture-converted models (LLFlow, DEvUDP, SSFlow small) on a 96x160 photo; panels 120 px wide,
so the sheet shrinks every panel (Lanczos) while the models run at full size.
"""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import lljax
from helpers import FIXTURES
from lljax import compare, enhance
from lljax.api import Restorer
from lljax.convert import convert_checkpoint
from lljax.metrics import protocols
from lljax.utils.images import save_png, to_uint8

PANEL = 120


@pytest.fixture(scope="module")
def model_dirs(llflow_small_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("compare_models")
  for name in ("devudp", "ssflow"):
    convert_checkpoint(name, FIXTURES / name / "small.pth", root / name)
  return [llflow_small_dir, root / "devudp", root / "ssflow"]


@pytest.fixture(scope="module")
def pair():
  """(dark photo, its ground truth): uint8 96x160x3."""
  gt = skdata.astronaut()[100:196, 170:330]
  return (gt // 4).astype(np.uint8), gt


@pytest.fixture(scope="module")
def result(model_dirs, pair):
  low, gt = pair
  return compare.compare(model_dirs, low, gt, panel_width=PANEL)


@pytest.fixture(scope="module")
def raw_outputs(model_dirs, pair):
  """Each model's raw output, computed here with its own Restorer (enhance's defaults)."""
  outputs = []
  for directory in model_dirs:
    restorer = lljax.load(directory)
    outputs.append(restorer.enhance_image(pair[0] / 255.0, clip=False, max_pixels=enhance.max_pixels(restorer.family)))
  return outputs


def _shrunk(image_u8):
  """What a panel should hold: the uint8 image resized to PANEL wide with Pillow's Lanczos."""
  h, w = image_u8.shape[:2]
  return np.asarray(Image.fromarray(image_u8).resize((PANEL, round(h * PANEL / w)), Image.Resampling.LANCZOS))


def _crop(sheet, box):
  top, left, height, width = box
  return sheet[top:top + height, left:left + width]


def _run(capsys, *argv):
  code = compare.main([str(a) for a in argv])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_sheet_has_one_labelled_panel_per_model(result, model_dirs, pair, raw_outputs):
  sheet, rows, panels = result
  names = ["llflow", "devudp", "ssflow"]
  assert [p.title for p in panels] == ["input", "target"] + [f"{n} - {d.name}" for n, d in zip(names, model_dirs)]
  assert [r["model"] for r in rows] == names and [r["directory"] for r in rows] == [str(d) for d in model_dirs]
  # Geometry: 5 panels in a 3 + 2 grid, same size, inside the sheet, not overlapping.
  assert sorted({p.image_box[0] for p in panels}) == [compare.PAD, panels[3].image_box[0]]
  assert len({p.image_box[1] for p in panels}) == 3 and panels[3].image_box[1] == compare.PAD
  assert {p.image_box[2:] for p in panels} == {(72, PANEL)}
  for p in panels:
    assert p.label_box[0] == p.image_box[0] + 72 and p.label_box[1:] == (p.image_box[1], p.label_box[2], PANEL)
  bottom = max(p.label_box[0] + p.label_box[2] for p in panels)
  assert sheet.shape == (bottom + compare.PAD, 3 * PANEL + 4 * compare.PAD, 3) and sheet.dtype == np.uint8
  # Pixels: input, target, then each model's own output, shrunk (rounding differences only).
  expected = [_shrunk(pair[0]), _shrunk(pair[1])] + [_shrunk(to_uint8(np.clip(o, 0, 1))) for o in raw_outputs]
  for p, want in zip(panels, expected):
    assert np.abs(_crop(sheet, p.image_box).astype(int) - want).max() <= 1, p.title
  assert len({_crop(sheet, p.image_box).tobytes() for p in panels}) == 5
  # Labels: drawn (not background) and each different; the text names model, directory, time, metrics.
  strips = [_crop(sheet, p.label_box) for p in panels]
  assert all((s != compare.BACKGROUND).any(axis=-1).mean() > 0.02 for s in strips)
  assert len({s.tobytes() for s in strips}) == 5
  for p, row, directory in zip(panels[2:], rows, model_dirs):
    text = " ".join(p.lines)
    assert row["model"] in text and directory.name in text and f"{row['seconds']:.2f} s" in text
    for spec in (row["paper_protocol"], "honest"):
      assert f"{spec}: {row['metrics'][spec]['psnr']:.2f} dB, SSIM {row['metrics'][spec]['ssim']:.3f}" in text


def test_metrics_are_the_paper_and_honest_protocols_on_the_model_output(result, pair, raw_outputs):
  for row, raw in zip(result.rows, raw_outputs):
    paper = protocols.PAPER_PROTOCOL[row["model"]]
    assert row["paper_protocol"] == paper and row["error"] is None
    assert row["seconds"] > 0 and isinstance(row["includes_compilation"], bool) and row["seconds_warm"] is None
    expected = {spec: protocols.get(spec).measure(raw, pair[1], with_lpips=False).metrics for spec in (paper, "honest")}
    assert set(row["metrics"]) == {paper, "honest"}
    for spec, metrics in expected.items():
      assert row["metrics"][spec] == pytest.approx(metrics, rel=1e-6), spec
  no_target = compare.compare([result.rows[1]["directory"]], pair[0], panel_width=PANEL)
  assert no_target.rows[0]["metrics"] is None and [p.title for p in no_target.panels][0] == "input"
  assert len(no_target.panels) == 2 and "dB" not in " ".join(no_target.panels[1].lines)


def test_cli_writes_sheet_json_and_table_and_never_overwrites(model_dirs, pair, tmp_path, capsys):
  save_png(tmp_path / "low.png", pair[0])
  save_png(tmp_path / "gt.png", pair[1])
  sheet = tmp_path / "out" / "sheet.png"
  argv = ["--models", model_dirs[0], model_dirs[1], tmp_path / "low.png", "--target", tmp_path / "gt.png",
          "--output", sheet, "--panel_width", PANEL]  # the photo after the models, as users type it
  code, stdout, stderr = _run(capsys, *argv)
  assert code == 0, stderr
  report = json.loads((tmp_path / "out" / "sheet.json").read_text())
  assert [m["directory"] for m in report["models"]] == [str(d) for d in model_dirs[:2]]
  assert [m["model"] for m in report["models"]] == ["llflow", "devudp"]
  assert all(m["seconds"] > 0 and set(m["metrics"]) == {m["paper_protocol"], "honest"} for m in report["models"])
  assert [p["title"] for p in report["panels"]][:2] == ["input", "target"] and len(report["panels"]) == 4
  image = np.asarray(Image.open(sheet))
  assert image.shape == (*report["size"], 3)
  assert "llflow - llflow_small" in stdout and "devudp - devudp" in stdout and "honest PSNR" in stdout

  before = {p: p.read_bytes() for p in (sheet, tmp_path / "out" / "sheet.json", tmp_path / "low.png")}
  code, _, stderr = _run(capsys, *argv)
  assert code == 2 and "exists; pass --overwrite" in stderr
  code, _, stderr = _run(capsys, "--models", model_dirs[1], tmp_path / "low.png", "--output", tmp_path / "low.png",
                         "--overwrite")
  assert code == 2 and "is the photo; refusing to overwrite it" in stderr
  assert {p: p.read_bytes() for p in before} == before
  sheet.write_bytes(b"stale")
  code, _, _ = _run(capsys, *argv, "--overwrite")
  assert code == 0 and np.asarray(Image.open(sheet)).shape == image.shape  # replaced by a new sheet


def test_usage_errors_stop_before_any_model_runs(model_dirs, pair, tmp_path, capsys, monkeypatch):
  ran = []
  monkeypatch.setattr(Restorer, "enhance_image", lambda self, *args, **kwargs: ran.append(self.model_name))
  save_png(tmp_path / "low.png", pair[0])
  save_png(tmp_path / "small.png", pair[1][:64, :64])
  (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
  (tmp_path / "notes").mkdir()
  out = tmp_path / "sheet.png"
  code, _, stderr = _run(capsys, "--models", model_dirs[0], tmp_path / "notes", tmp_path / "low.png", "--output", out)
  assert code == 2 and f"--models: {tmp_path / 'notes'} is not an lljax model directory" in stderr
  code, _, stderr = _run(capsys, "--models", model_dirs[0], tmp_path / "low.png", "--target", tmp_path / "small.png",
                         "--output", out)
  assert code == 2 and "the target is 64x64 pixels and the photo 160x96" in stderr
  code, _, stderr = _run(capsys, "--models", model_dirs[0], tmp_path / "broken.png", "--output", out)
  assert code == 2 and "cannot read image" in stderr and "broken.png" in stderr
  infwide = tmp_path / "infwide"
  convert_checkpoint("infwide", FIXTURES / "infwide" / "small.pth", infwide)
  code, _, stderr = _run(capsys, "--models", model_dirs[0], infwide, tmp_path / "low.png", "--output", out)
  assert code == 2 and f"--models {infwide}: infwide is a non-blind deblurring model" in stderr
  assert "low_kernel.png" in stderr
  assert stderr.count("\n") == 1 and not out.exists() and not (tmp_path / "sheet.json").exists() and not ran
  with pytest.raises(enhance.UsageError, match="no models"):
    compare.compare([], pair[0])
  with pytest.raises(enhance.UsageError, match="needs the photo's blur kernel"):
    compare.compare([infwide], pair[0])


def test_a_model_that_fails_gets_a_grey_panel_and_exit_status_1(model_dirs, pair, tmp_path, capsys, monkeypatch):
  enhance_image = Restorer.enhance_image

  def fails_for_devudp(self, *args, **kwargs):
    if self.model_name == "devudp":
      raise RuntimeError("RESOURCE_EXHAUSTED: out of memory\n  while allocating")
    return enhance_image(self, *args, **kwargs)

  monkeypatch.setattr(Restorer, "enhance_image", fails_for_devudp)
  save_png(tmp_path / "low.png", pair[0])
  code, stdout, stderr = _run(capsys, "--models", model_dirs[1], model_dirs[0], tmp_path / "low.png",
                              "--output", tmp_path / "sheet.png", "--panel_width", PANEL)
  assert code == 1
  assert f"--models {model_dirs[1]}: devudp failed: RESOURCE_EXHAUSTED: out of memory while allocating" in stderr
  report = json.loads((tmp_path / "sheet.json").read_text())
  failed, ok = report["models"]
  assert failed["error"] == "RESOURCE_EXHAUSTED: out of memory while allocating" and failed["seconds"] is None
  assert ok["error"] is None and ok["seconds"] > 0 and "failed" in stdout
  sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
  grey = _crop(sheet, report["panels"][1]["image_box"])
  assert (grey == compare.FAILED_FILL).all()
  assert "failed:RESOURCE_EXHAUSTED:outofmemory" in "".join(report["panels"][1]["lines"]).replace(" ", "")
  assert not (_crop(sheet, report["panels"][2]["image_box"]) == compare.FAILED_FILL).all()
