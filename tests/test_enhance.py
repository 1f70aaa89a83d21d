"""python -m lljax.enhance and Restorer.enhance_image: files, safety, tiles, buckets, ensemble.

Shapes are chosen so that few programs compile: every whole image here buckets to 64x64, and the
tile tests share 192x192 tiles (XLA's persistent cache, set in conftest, reuses the rest).
"""

import os

import jax
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import lljax
from lljax import enhance, tiling
from lljax.utils.images import read_image, save_png, to_uint8


def _dark(crop, scale=0.25):
  return (crop * scale).astype(np.uint8)


@pytest.fixture(scope="module")
def restorer(llflow_small_dir):
  return lljax.load(llflow_small_dir)


@pytest.fixture()
def photos(tmp_path):
  """A folder of small photos in every supported layout, and a corrupt file."""
  src = tmp_path / "in"
  (src / "sub").mkdir(parents=True)
  im = _dark(skdata.astronaut()[100:148, 180:240])  # 48x60
  save_png(src / "a.png", im)
  save_png(src / "b16.png", im.astype(np.uint16) * 257 + 100)
  save_png(src / "gray.png", im[..., 1])
  alpha = np.arange(48 * 60, dtype=np.uint8).reshape(48, 60)
  save_png(src / "rgba.png", np.concatenate([im, alpha[..., None]], axis=-1))
  exif = Image.new("RGB", (1, 1)).getexif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise on display
  Image.fromarray(im).save(src / "rot.jpg", exif=exif.tobytes(), quality=95)
  (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
  save_png(src / "sub" / "c.png", _dark(skdata.coffee()[100:140, 200:264]))  # 40x64
  (src / "notes.txt").write_text("not an image")
  return src


def _run(capsys, *argv):
  code = enhance.main([str(a) for a in argv])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_folder_of_mixed_files(restorer, llflow_small_dir, photos, tmp_path, capsys):
  out = tmp_path / "out"
  code, stdout, stderr = _run(capsys, "--model", llflow_small_dir, photos, "--output", out, "--recursive")
  assert code == 1  # the corrupt file fails, everything else is written
  assert "broken.png" in stderr and stderr.count("error:") == 1
  assert "6 enhanced" in stdout and "1 failed" in stdout and "1 compiled shape" in stdout
  assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
      "a.png", "b16.png", "gray.png", "rgba.png", "rot.png", "sub/c.png"]

  src, _ = read_image(photos / "a.png")
  expected = to_uint8(restorer.enhance_image(src / 255.0, bucket=64))
  got, info = read_image(out / "a.png")
  np.testing.assert_array_equal(got, expected)
  assert info["bit_depth"] == 8 and info["alpha"] is None

  gray, info = read_image(out / "gray.png")
  assert info["mode"] == "L" and gray.shape == (48, 60, 3)
  _, info = read_image(out / "rgba.png")
  np.testing.assert_array_equal(info["alpha"], np.arange(48 * 60, dtype=np.uint8).reshape(48, 60))
  rot, _ = read_image(out / "rot.png")
  assert rot.shape == (60, 48, 3)  # EXIF orientation applied before enhancing
  jpeg, _ = read_image(photos / "rot.jpg")
  np.testing.assert_array_equal(rot, to_uint8(restorer.enhance_image(jpeg / 255.0, bucket=64)))
  sub, _ = read_image(out / "sub" / "c.png")
  assert sub.shape == (40, 64, 3)


def test_16bit_output_and_jpeg(llflow_small_dir, photos, tmp_path, capsys):
  code, _, _ = _run(capsys, "--model", llflow_small_dir, photos / "b16.png", photos / "rgba.png",
                    "--output", tmp_path / "o16", "--bit_depth", "16")
  assert code == 0
  img, info = read_image(tmp_path / "o16" / "b16.png")
  assert img.dtype == np.uint16 and info["bit_depth"] == 16
  _, info = read_image(tmp_path / "o16" / "rgba.png")
  assert info["alpha"].dtype == np.uint16 and info["alpha"][0, 1] == 257  # 8-bit alpha 1 -> 257
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, photos / "rgba.png", "--output",
                         tmp_path / "jpg", "--format", "jpg")
  assert code == 0 and "alpha dropped" in stderr
  assert read_image(tmp_path / "jpg" / "rgba.jpg")[1]["format"] == "JPEG"


def test_inputs_are_never_overwritten(llflow_small_dir, photos, capsys):
  before = {p: p.read_bytes() for p in photos.iterdir() if p.is_file()}
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", photos)
  assert code == 2 and "is the input folder" in stderr
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", photos, "--force")
  assert code == 1 and "refusing to overwrite" in stderr
  assert {p: p.read_bytes() for p in before} == before
  code, _, _ = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", photos, "--force",
                    "--suffix", "_lit")
  assert code == 0 and (photos / "a_lit.png").is_file()
  assert {p: p.read_bytes() for p in before} == before


def test_existing_outputs_globs_and_collisions(llflow_small_dir, photos, tmp_path, capsys):
  out = tmp_path / "out"
  out.mkdir()
  (out / "a.png").write_bytes(b"keep me")
  code, stdout, _ = _run(capsys, "--model", llflow_small_dir, str(photos / "*.png"), "--output", out)
  assert code == 1 and "1 skipped" in stdout  # a.png exists; broken.png fails
  assert (out / "a.png").read_bytes() == b"keep me" and (out / "gray.png").is_file()
  code, _, _ = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", out, "--overwrite")
  assert code == 0 and read_image(out / "a.png")[0].shape == (48, 60, 3)
  save_png(photos / "rot.png", np.zeros((8, 8, 3), np.uint8))  # rot.jpg and rot.png -> out/rot.png
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, photos, "--output", tmp_path / "o2")
  assert code == 2 and "would both be written" in stderr and not (tmp_path / "o2").exists()
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, str(photos / "*.tif"), "--output", out)
  assert code == 2 and "no files match" in stderr


def test_bucketing_shares_compiled_shapes(restorer):
  before = set(restorer.compiled_shapes)
  for h, w in ((150, 180), (170, 130), (129, 192)):
    out = restorer.enhance_image(np.full((h, w, 3), 0.1, np.float32), bucket=64)
    assert out.shape == (h, w, 3)
  assert set(restorer.compiled_shapes) - before <= {("enhance", (1, 192, 192, 3), False)}


def test_self_ensemble_averages_the_eight_transforms(restorer):
  image = _dark(skdata.astronaut()[200:264, 200:264]) / 255.0  # square: one shape for all
  raw = restorer.enhance_image(image, bucket=64, self_ensemble=True, clip=False)
  manual = np.mean([tiling.invert_transform(restorer.enhance_image(tiling.transform(image, t), bucket=64,
                                                                   clip=False), t)
                    for t in tiling.TRANSFORMS], axis=0)
  np.testing.assert_allclose(raw, manual, atol=1e-6)
  assert not np.allclose(raw, restorer.enhance_image(image, bucket=64, clip=False), atol=1e-3)


def _clean_mask(h, w, tile, overlap, reach):
  """Pixels whose every contributing tile sees them at least ``reach`` px from its inner edges."""
  th, tw, corners = tiling.tile_grid(h, w, tile, overlap, 8)
  clean = np.ones((h, w), bool)
  for y, x in corners:
    wgt = tiling.tile_weights(th, tw, y, x, h, w, overlap)[..., 0]
    iy, ix = np.arange(th)[:, None], np.arange(tw)[None, :]
    dist = np.full((th, tw), 10**9)
    if y > 0:
      dist = np.minimum(dist, iy)
    if y + th < h:
      dist = np.minimum(dist, th - 1 - iy)
    if x > 0:
      dist = np.minimum(dist, ix)
    if x + tw < w:
      dist = np.minimum(dist, tw - 1 - ix)
    clean[y:y + th, x:x + tw] &= (wgt == 0) | (dist >= reach)
  return clean


def test_tiles_match_whole_image_away_from_seams(restorer):
  image = _dark(skdata.astronaut()[40:232, 100:420]) / 255.0  # 192x320: two 192x192 tiles
  whole = restorer.enhance_image(image, clip=False)
  kw = dict(max_pixels=192 * 192, tile=192, overlap=64, clip=False)
  tiled = restorer.enhance_image(image, prior_pixels=10**9, **kw)  # global prior at full size
  clean = _clean_mask(192, 320, 192, 64, reach=64)  # the small model's receptive field is < 64 px
  assert 0.5 < clean.mean() < 1
  diff = np.abs(tiled - whole)
  assert diff[clean].max() < 1e-4
  assert diff.mean() < 0.01 * np.abs(whole).mean() and diff.max() < 0.1 * np.abs(whole).max()
  per_tile = restorer.enhance_image(image, prior="tile", **kw)  # own colour maps: same far from seams
  assert np.abs(per_tile - whole)[clean].max() < 1e-4
  # Default (192x320 > prior_pixels = max_pixels): the colour map of a 2x box-downscaled copy
  # (96x160, with its own histeq), bilinearly upscaled, is every tile's prior. Away from the seams
  # the tiles equal the whole image decoded from that same map.
  downscaled = restorer.enhance_image(image, **kw)
  x = image.astype(np.float32)
  small = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) / np.float32(4)
  module, variables = restorer.module, {"params": restorer.params}
  small_map = module.apply(variables, restorer.model_inputs(small[None]), method=module.prior_map)
  prior_map = jax.image.resize(small_map, (1, 192, 320, 3), "linear")  # half-pixel centres, edges clamped
  expected = np.asarray(module.apply(variables, restorer.model_inputs(x[None]), prior_map=prior_map,
                                     method=module.enhance))[0]
  diff = np.abs(downscaled - expected)
  assert diff[clean].max() < 1e-4
  assert diff.mean() < 0.01 * np.abs(expected).mean() and diff.max() < 0.1 * np.abs(expected).max()
  assert np.abs(expected - whole)[clean].max() > 0.1  # the downscaled prior is not the full-size one
  assert ("prior", (1, 96, 160, 3), False) in restorer.compiled_shapes


def test_bad_arguments(llflow_small_dir, tmp_path, capsys):
  with pytest.raises(SystemExit):
    enhance.main(["--model", str(llflow_small_dir), "x.png", "--output", str(tmp_path), "--format", "jpg",
                  "--bit_depth", "16"])
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, tmp_path / "missing.png", "--output", tmp_path / "o")
  assert code == 2 and "does not exist" in stderr
  save_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
  code, _, stderr = _run(capsys, "--model", tmp_path / "nomodel", tmp_path / "x.png", "--output", tmp_path / "o")
  assert code == 2 and "not an lljax model directory" in stderr
  assert not os.path.exists(tmp_path / "o")


def test_output_inside_a_recursive_input_is_not_rescanned(photos):
  (photos / "lit").mkdir()
  save_png(photos / "lit" / "a.png", np.zeros((8, 8, 3), np.uint8))  # an earlier run's output
  jobs, _ = enhance.collect_inputs([str(photos)], recursive=True, output=photos / "lit")
  names = sorted(rel.as_posix() for _, rel in jobs)
  assert names == ["a.png", "b16.png", "broken.png", "gray.png", "rgba.png", "rot.jpg", "sub/c.png"]
  flat = sorted(rel.as_posix() for _, rel in enhance.collect_inputs([str(photos)])[0])
  assert flat == ["a.png", "b16.png", "broken.png", "gray.png", "rgba.png", "rot.jpg"]  # notes.txt ignored


def test_exposure_is_applied_to_the_output_and_checked_first(restorer, llflow_small_dir, photos, tmp_path, capsys):
  """enhance_image(exposure=) and --exposure: the clipped output through
  ``lljax.imaging.exposure.adjust_exposure`` (its targets: tests/imaging); the default keeps the
  model's output; a bad value stops before anything is written."""
  from lljax.imaging import exposure  # pylint: disable=import-outside-toplevel

  low = read_image(photos / "a.png")[0].astype(np.float32) / 255
  plain = restorer.enhance_image(low)
  np.testing.assert_array_equal(restorer.enhance_image(low, exposure=None), plain)
  for target in (0.3, "auto"):
    np.testing.assert_array_equal(restorer.enhance_image(low, exposure=target), exposure.adjust_exposure(plain, target))
  with pytest.raises(ValueError, match="in \\(0, 1\\)"):
    restorer.enhance_image(low, exposure=1.5)
  code, _, stderr = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", tmp_path / "o",
                         "--exposure", "bright")
  assert code == 2 and "--exposure" in stderr and not (tmp_path / "o").exists()
  code, _, _ = _run(capsys, "--model", llflow_small_dir, photos / "a.png", "--output", tmp_path / "o",
                    "--exposure", "0.3")
  assert code == 0 and abs(exposure.brightness(read_image(tmp_path / "o" / "a.png")[0] / 255) - 0.3) < 1 / 255


def test_prior_is_honoured_or_refused(restorer, tmp_path, photos, capsys):
  """LLFlow has a prior map ("global" by default); a model without one refuses the option
  instead of ignoring it."""
  assert restorer.has_prior_map
  low = read_image(photos / "a.png")[0].astype(np.float32) / 255
  np.testing.assert_array_equal(restorer.enhance_image(low, prior="global"), restorer.enhance_image(low))
  from lljax import models  # pylint: disable=import-outside-toplevel
  from lljax.api import Restorer  # pylint: disable=import-outside-toplevel
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel
  family = models.get("devudp")
  module = family.Model(**family.VARIANTS["tiny"])
  gan = Restorer("devudp", family.VARIANTS["tiny"], init_variables(module, 0, *family.init_inputs(module))["params"])
  assert not gan.has_prior_map
  assert gan.enhance_image(low).shape == low.shape
  for prior in ("global", "tile"):
    with pytest.raises(ValueError, match=f"prior='{prior}': devudp has no prior map"):
      gan.enhance_image(low, prior=prior)
  from lljax import checkpoint  # pylint: disable=import-outside-toplevel
  checkpoint.export_model(tmp_path / "gan", "devudp", gan.config, gan.params)
  code, _, stderr = _run(capsys, "--model", tmp_path / "gan", photos / "a.png", "--output", tmp_path / "o",
                         "--prior", "global")
  assert code == 2 and "--prior" in stderr and "no prior map" in stderr and not (tmp_path / "o").exists()


def test_no_tiles_reports_photos_above_the_budget(llflow_small_dir, photos, tmp_path, capsys):
  """--no_tiles: a photo above --max_megapixels is an error naming the options, the others are enhanced."""
  out = tmp_path / "out"
  code, stdout, stderr = _run(capsys, "--model", llflow_small_dir, photos / "a.png", photos / "sub" / "c.png",
                              "--output", out, "--max_megapixels", 0.0026, "--no_tiles")
  assert code == 1 and "a.png" in stderr and "--no_tiles" in stderr and "--max_megapixels" in stderr  # 48x60
  assert (out / "c.png").exists() and not (out / "a.png").exists() and "1 enhanced" in stdout  # 40x64
