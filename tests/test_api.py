"""Public API: lljax.load on a converted release; enhance/encode; bad input."""

import pathlib

import numpy as np
import pytest

import lljax
from lljax.convert import convert_checkpoint
from lljax.models import llflow

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "llflow"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  out = tmp_path_factory.mktemp("api") / "llflow_small"
  convert_checkpoint("llflow", FIXTURES / "small.pth", out)
  return out


@pytest.fixture(scope="module")
def io():
  return {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in np.load(FIXTURES / "small_io.npz").items()}


def test_enhance_reproduces_official_output(converted, io):
  restorer = lljax.load(converted)
  raw = restorer.enhance(io["low_rgb01"], clip=False)
  np.testing.assert_allclose(raw, io["dec_output"], atol=1e-4)
  clipped = restorer.enhance(io["low_rgb01"][0])  # a single HWC image works too
  np.testing.assert_allclose(clipped, np.clip(io["dec_output"], 0, 1), atol=1e-4)


def test_encode_reproduces_official_nll(converted, io):
  out = lljax.load(converted).encode(io["low_rgb01"], io["gt_input"])
  np.testing.assert_allclose(out["z"], io["enc_z"], atol=1e-4)
  np.testing.assert_allclose(out["nll"], io["enc_nll_bpp_lrmean"], atol=1e-4)


def test_any_size_is_padded_and_cropped(converted, io):
  """61x90: histeq of the unpadded image; image and histeq reflect-padded at the bottom/right to
  64x96; the model run whole; the output cropped back."""
  restorer = lljax.load(converted)
  low = io["low_rgb01"][:, :61, :90]
  raw = restorer.enhance(low, clip=False)
  assert raw.shape == low.shape
  histeq = llflow.equalize_hist(np.round(low[0] * 255).astype(np.uint8))[None].astype(np.float32) / 255
  pad = lambda x: np.pad(x, ((0, 0), (0, 3), (0, 6), (0, 0)), mode="reflect")
  module = restorer.module
  whole = module.apply({"params": restorer.params}, {"low": pad(low), "histeq": pad(histeq)}, method=module.enhance)
  np.testing.assert_allclose(raw, np.asarray(whole)[:, :61, :90], atol=1e-5)
  np.testing.assert_array_equal(restorer.enhance(low), np.clip(raw, 0, 1))


def test_bad_inputs(converted, io):
  restorer = lljax.load(converted)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    restorer.enhance(io["low_rgb01"] * 255)
  with pytest.raises(ValueError, match="NHWC"):
    restorer.enhance(np.zeros((2, 3, 8, 8), np.float32))
  with pytest.raises(ValueError, match="divisible by 8"):
    restorer.encode(io["low_rgb01"][:, :60], io["gt_input"][:, :60])


def test_load_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="not an lljax model directory"):
    lljax.load(tmp_path)
