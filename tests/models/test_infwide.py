"""INFWIDE: parity with the official forward (every head and intermediate), converter, API."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lljax
from lljax import models
from lljax.convert import ConversionError, convert_checkpoint, infwide as conv, mapping, torch_io

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "infwide"
ATOL = 1e-4
HEADS = {"out_half": "out_half", "out_full": "out_full", "denoised": "out_denoise", "feat": "mid_feat",
         "feat_wd": "mid_feat_wd", "feat_out": "mid_feat_out", "nsr": "mid_nsr", "img_wd": "mid_img_wd"}


def nhwc(a):
  return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


@pytest.fixture(scope="module")
def io():
  return dict(np.load(FIXTURES / "small_io.npz"))


@pytest.fixture(scope="module")
def small():
  family = models.get("infwide")
  state = conv.read_state(FIXTURES / "small.pth")
  config = conv.infer_config(state)
  module = family.Model(**config)
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))["params"]
  params, dropped = mapping.convert(state, conv.RULES, abstract)
  assert not dropped
  return config, module, params


@pytest.mark.parametrize("case", ["", "odd_"])
def test_every_head_matches_the_official_forward(small, io, case):
  _, module, params = small
  low, kernel = nhwc(io[case + "input_blurry"]), io[case + "input_kernel"][:, 0]
  out = jax.jit(lambda p, x, k: module.apply({"params": p}, x, k, method=module.intermediates))(params, low, kernel)
  for ours, theirs in HEADS.items():
    np.testing.assert_allclose(np.asarray(out[ours]), nhwc(io[case + theirs]), atol=ATOL, err_msg=ours)


def test_feature_wiener_of_the_input_matches(io):
  from lljax.nn.fft import wiener_deconv  # pylint: disable=import-outside-toplevel
  run = jax.jit(wiener_deconv)
  for case in ("", "odd_"):
    out = run(jnp.asarray(nhwc(io[case + "input_blurry"])), jnp.asarray(io[case + "input_kernel"][:, 0]))
    np.testing.assert_allclose(np.asarray(out), nhwc(io[case + "wiener_of_input"]), atol=ATOL)


def test_small_checkpoint_architecture_is_inferred_without_flags(small):
  config, _, _ = small
  assert config == dict(n_colors=3, feat=8, unet=(8, 16, 32, 64), unet_nb=2, fsr_feats=8, fsr_resblocks=2,
                        xrf_feats=8, xrf_resblocks=2, xrf_convs=3)


def test_every_release_key_maps_and_the_release_variant_is_inferred():
  entries = json.loads((FIXTURES / "release_keys.json").read_text())["entries"]
  state = {k: np.zeros(v["shape"], np.float32) for k, v in entries.items()}
  assert len(state) == 276
  family = models.get("infwide")
  config = conv.infer_config(state)
  release = dict(family.VARIANTS["release"])
  assert {k: config[k] for k in release} == release
  module = family.Model(**config)
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))["params"]
  params, dropped = mapping.convert(state, conv.RULES, abstract)
  assert not dropped
  assert sum(p.size for p in jax.tree.leaves(params)) == 15_742_342


def test_release_format_is_read_without_running_pickled_code():
  # The trainer's dict {arch, epoch, state_dict, optimizer (AMSGrad), config (OmegaConf DictConfig)}.
  path = FIXTURES / "release_format.pth"
  with pytest.raises(torch_io.UnsafeCheckpointError, match="omegaconf"):
    torch_io.read_state_dict(path)
  state = conv.read_state(path)
  reference = conv.read_state(FIXTURES / "small.pth")
  assert list(state) == list(reference)
  for k in state:
    np.testing.assert_array_equal(state[k], reference[k])
  whole = torch_io.load(path, stubs=conv.OMEGACONF_STUBS)
  assert isinstance(whole["config"], torch_io.OpaqueObject) and whole["epoch"] == 400


def test_foreign_or_truncated_checkpoint_is_diagnosed():
  state = conv.read_state(FIXTURES / "small.pth")
  with pytest.raises(ConversionError, match="not an INFWIDE checkpoint"):
    conv.infer_config({k: v for k, v in state.items() if not k.startswith("FeatModule1")})
  config = conv.infer_config(state)
  family = models.get("infwide")
  module = family.Model(**config)
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *family.init_inputs(module)))["params"]
  extra = {**state, "MergeRefineModule.extra.weight": np.zeros((1,), np.float32)}
  missing = {k: v for k, v in state.items() if k != "DenoiseUnet.m_tail.weight"}
  with pytest.raises(ConversionError, match="unused checkpoint keys"):
    mapping.convert(extra, conv.RULES, abstract)
  with pytest.raises(ConversionError, match="not found in the checkpoint"):
    mapping.convert(missing, conv.RULES, abstract)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  out = tmp_path_factory.mktemp("infwide") / "small"
  convert_checkpoint("infwide", FIXTURES / "release_format.pth", out)
  return out


def test_api_enhance_with_kernels_reproduces_the_official_output(converted, io):
  restorer = lljax.load(converted)
  assert restorer.needs_kernel
  low, kernel = nhwc(io["input_blurry"]), io["input_kernel"][0, 0]
  raw = restorer.enhance(low, kernel * 7.0, clip=False)  # kernels are normalised to unit sum
  np.testing.assert_allclose(raw, nhwc(io["out_full"]), atol=ATOL)
  one = restorer.enhance_image(low[0], kernel, clip=False)  # one photo, same program
  np.testing.assert_allclose(one, nhwc(io["out_full"])[0], atol=ATOL)


def test_api_kernel_errors(converted, io):
  restorer = lljax.load(converted)
  low = nhwc(io["input_blurry"])
  with pytest.raises(ValueError, match="pass a blur kernel"):
    restorer.enhance(low)
  with pytest.raises(ValueError, match="negative"):
    restorer.enhance(low, -np.ones((3, 3)))
  with pytest.raises(ValueError, match="larger than the model's 37x37"):
    restorer.enhance(low, np.ones((39, 39)))
  with pytest.raises(ValueError, match="all zero"):
    restorer.enhance(low, np.zeros((5, 5)))
  with pytest.raises(ValueError, match="for 1 images"):
    restorer.enhance(low, np.ones((2, 5, 5)))
  flow = lljax.api.Restorer.__new__(lljax.api.Restorer)
  flow.family = models.get("llflow")
  flow.model_name = "llflow"
  with pytest.raises(ValueError, match="does not take blur kernels"):
    flow._kernel_inputs(np.ones((3, 3)), 1)  # pylint: disable=protected-access


def test_tiny_variant_shapes_and_odd_sizes():
  family = models.get("infwide")
  module = family.Model("tiny")
  from lljax.nn import init_variables  # pylint: disable=import-outside-toplevel
  params = init_variables(module, 0, *family.init_inputs(module))["params"]
  out = jax.eval_shape(lambda p: module.apply({"params": p}, jnp.zeros((2, 21, 30, 3)), jnp.ones((2, 4, 6))), params)
  assert out["half"].shape == (2, 10, 15, 3)  # round(10.5) = 10 (half to even), as the official code
  assert out["full"].shape == out["denoised"].shape == (2, 21, 30, 3)


def _write_photo_and_kernel(folder, io, kernel_name="photo_kernel.png"):
  from lljax.utils.images import save_png, to_uint8  # pylint: disable=import-outside-toplevel
  folder.mkdir(parents=True, exist_ok=True)
  save_png(folder / "photo.png", to_uint8(nhwc(io["input_blurry"])[0]))
  kernel = io["input_kernel"][0, 0]
  if kernel_name.endswith(".npy"):
    np.save(folder / kernel_name, kernel)
  else:
    save_png(folder / kernel_name, np.round(kernel / kernel.max() * 255).astype(np.uint8))
  return folder / "photo.png"


def test_enhance_cli_reads_the_kernel_next_to_each_photo(converted, io, tmp_path, capsys):
  from lljax import enhance  # pylint: disable=import-outside-toplevel
  from lljax.utils import kernels  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import read_image, to_float01, to_uint8  # pylint: disable=import-outside-toplevel
  photos = tmp_path / "in"
  photo = _write_photo_and_kernel(photos, io)
  (photos / "lonely.png").write_bytes(photo.read_bytes())  # no kernel next to it
  status = enhance.main(["--model", str(converted), str(photos), "--output", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert status == 1 and "lonely.png: no blur kernel: expected lonely_kernel.png or lonely_kernel.npy" in err
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]  # the kernel is no photo
  kernel = kernels.read_kernel(photos / "photo_kernel.png", 37)
  expected = to_uint8(lljax.load(converted).enhance_image(to_float01(read_image(photo)[0]), kernel))
  np.testing.assert_array_equal(read_image(tmp_path / "out" / "photo.png")[0], expected)
  np.save(photos / "lonely_kernel.npy", -np.ones((3, 3)))
  status = enhance.main(["--model", str(converted), str(photos / "lonely.png"), "--output", str(tmp_path / "o2")])
  assert status == 1 and "negative values" in capsys.readouterr().err


def test_evaluate_cli_with_kernel_files(converted, io, tmp_path, capsys):
  from lljax import evaluate  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import save_png, to_uint8  # pylint: disable=import-outside-toplevel
  _write_photo_and_kernel(tmp_path / "low", io, "photo_kernel.npy")
  (tmp_path / "gt").mkdir()
  save_png(tmp_path / "gt" / "photo.png", to_uint8(nhwc(io["sharp_reference"])[0]))
  status = evaluate.main(["--model", str(converted), "--low_dir", str(tmp_path / "low"), "--gt_dir",
                          str(tmp_path / "gt"), "--no_lpips", "--output", str(tmp_path / "res")])
  assert status == 0, capsys.readouterr().err
  results = json.loads((tmp_path / "res" / "metrics.json").read_text())
  assert results["count"] == 1 and "infwide" in results["protocols"]


def test_real_capture_padding_and_crop():
  from lljax.models import infwide  # pylint: disable=import-outside-toplevel
  image = np.random.default_rng(0).random((5, 8, 3)).astype(np.float32)
  padded, window = infwide.real_capture_input(image)
  assert padded.shape == (5 + 2 * 2, 8 + 2 * 4, 3) and window == (2, 4, 5, 8)
  np.testing.assert_allclose(infwide.real_capture_crop(padded, window), image / 1.2, rtol=1e-6)
  np.testing.assert_allclose(padded[1, 4:12], image[0] / 1.2, rtol=1e-6)  # symmetric: edge row repeated
  np.testing.assert_allclose(padded[0, 4:12], image[1] / 1.2, rtol=1e-6)
