"""DEvUDP networks: FCL-GAN parity (tests/fixtures/devudp, official FCL-GAN code, see its README),
both variants' shapes and ranges, the shortcut, D's map size, parameter counts, G-only enhance."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import nhwc
from lljax.convert import devudp as conv_devudp, load_torch_params, mapping, torch_io
from lljax.models import devudp
from lljax.nn import init_variables, instance_norm

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "devudp"
ATOL = 1e-4




@pytest.fixture(scope="module", name="fclgan")
def fclgan_fixture():
  config, params, dropped = load_torch_params("devudp", FIXTURES / "small.pth")
  return devudp.Model(**config), {"params": params}, config, dropped, np.load(FIXTURES / "small_io.npz")


def test_converter_reads_fclgan_architecture(fclgan):
  _, _, config, dropped, _ = fclgan
  assert config == dict(base=8, num_res=2, d_base=8, norm="batch", shortcut=True, out_act="sigmoid",
                        symmetric=False)
  assert dropped and all(k.startswith("D_B.") or k.endswith("num_batches_tracked") for k in dropped)


def test_generators_and_discriminator_match_fclgan(fclgan):
  m, v, _, _, io = fclgan
  b, s = nhwc(io["input_blurry"]), nhwc(io["input_sharp"])
  gen = jax.jit(lambda x: m.apply(v, x, method=m.generate))
  deg = jax.jit(lambda x: m.apply(v, x, method=m.degrade))
  dis = jax.jit(lambda x: m.apply(v, x, method=m.discriminate))
  fake_s, fake_b = gen(b), deg(s)
  got = {"G_B2S_out": fake_s, "G_S2B_out": fake_b, "cycle_recon_b": deg(fake_s), "cycle_recon_s": gen(fake_b),
         "D_S_of_G_B2S_out": dis(nhwc(io["G_B2S_out"])), "D_S_of_input_sharp": dis(s)}
  for key, value in got.items():
    np.testing.assert_allclose(np.asarray(value), nhwc(io[key]), atol=ATOL, rtol=0, err_msg=key)
  # FCL-GAN's test path through the API convention: enhance = G on [0, 1] data.
  out = m.apply(v, {"low": b}, method=m.enhance)
  np.testing.assert_allclose(np.asarray(out), nhwc(io["G_B2S_out"]), atol=ATOL, rtol=0)


def test_generator_intermediates_match_fclgan(fclgan):
  """FCL-GAN's G_B2S stage outputs (the fixture's mid_* arrays) against lljax's submodules."""
  m, v, _, _, io = fclgan
  gen = jax.jit(lambda x: m.apply(v, x, method=m.generate, capture_intermediates=True, mutable=["intermediates"]))
  _, state = gen(nhwc(io["input_blurry"]))
  inter = state["intermediates"]["G"]
  stages = {"Encoder0": "Encoder_0", "Encoder1": "Encoder_1", "Encoder2": "Encoder_2", "Decoder0": "Decoder_0",
            "Decoder2": "Decoder_2"}
  for official, ours in stages.items():
    np.testing.assert_allclose(np.asarray(inter[ours]["__call__"][0]), nhwc(io[f"mid_G_B2S_{official}"]),
                               atol=ATOL, rtol=0, err_msg=official)


def test_second_discriminator_matches_fclgan(fclgan):
  """FCL-GAN's D_B (dropped by the converter: DEvUDP has one D) loaded into lljax's D."""
  m, _, _, _, io = fclgan
  state = torch_io.read_state_dict(FIXTURES / "small.pth")
  state = {("D_S." + k[4:] if k.startswith("D_B.") else k): val for k, val in state.items()
           if not k.startswith("D_S.")}
  abstract = jax.eval_shape(lambda: m.init(jax.random.key(0), *devudp.init_inputs(m)))["params"]
  params, _ = mapping.convert(state, conv_devudp.RULES, abstract)
  dis = jax.jit(lambda x: m.apply({"params": params}, x, method=m.discriminate))
  for key, x in (("D_B_of_G_S2B_out", io["G_S2B_out"]), ("D_B_of_input_blurry", io["input_blurry"])):
    np.testing.assert_allclose(np.asarray(dis(nhwc(x))), nhwc(io[key]), atol=ATOL, rtol=0, err_msg=key)


def test_instance_norm_is_torch_default():
  x = np.random.default_rng(0).normal(2.0, 3.0, (2, 5, 7, 4)).astype(np.float32)
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)  # biased, as torch's InstanceNorm2d
  np.testing.assert_allclose(np.asarray(instance_norm(x)), (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


TINY = {"in": {}, "dt": dict(norm="batch", shortcut=True)}  # tiny widths, each variant's semantics


@pytest.mark.parametrize("variant", ["in", "dt"])
def test_variant_shapes_ranges_and_shortcut(variant):
  kwargs = {k: devudp.VARIANTS[variant][k] for k in ("norm", "shortcut", "out_act", "symmetric")}
  m = devudp.Model("tiny", **kwargs)
  params = init_variables(m, 0, *devudp.init_inputs(m, 32))["params"]
  x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 48, 3)).astype(np.float32)
  y = np.asarray(m.apply({"params": params}, x, method=m.generate))
  assert y.shape == x.shape and y.dtype == np.float32
  assert y.min() >= -1 and y.max() <= 1 and y.std() > 0
  low = (x + 1) / 2
  out = np.asarray(m.apply({"params": params}, {"low": low}, method=m.enhance))
  np.testing.assert_allclose(out, (y + 1) / 2, atol=1e-5)  # [0, 1] at the API, [-1, 1] inside
  # Zero the last conv: the output is tanh(x) with the global shortcut (dt), tanh(0) without (in).
  last = params["G"]["feat_extract_5"]["conv"]
  zeroed = {**params, "G": {**params["G"], "feat_extract_5": {"conv": jax.tree.map(np.zeros_like, last)}}}
  y0 = np.asarray(m.apply({"params": zeroed}, x, method=m.generate))
  np.testing.assert_allclose(y0, np.tanh(x) if variant == "dt" else np.zeros_like(x), atol=1e-6)
  with pytest.raises(ValueError, match="divisible by 4"):
    m.apply({"params": params}, x[:, :30], method=m.generate)


def test_discriminator_map_is_16x16_for_256():
  m = devudp.Model("tiny")
  params = init_variables(m, 0, *devudp.init_inputs(m, 32))["params"]
  x = np.zeros((1, 256, 256, 3), np.float32)
  d = jax.jit(lambda p, x: m.apply({"params": p}, x, method=m.discriminate))(params, x)
  assert d.shape == (1, 16, 16, 1)


def _abstract(variant, net="generate"):
  m = devudp.Model(variant)
  x = jnp.zeros((1, 16, 16, 3))
  return jax.eval_shape(lambda: m.init(jax.random.key(0), x, method=getattr(m, net)))["params"]


def test_parameter_counts_match_paper_and_fclgan():
  # Paper Table 1, "No.P" (G alone): 6.95 M (DEvUDP), 6.96 M (DEvUDP-DT): all the paper gives.
  n_in, n_dt = devudp.count_params(_abstract("in"), "G"), devudp.count_params(_abstract("dt"), "G")
  assert (round(n_in / 1e6, 2), round(n_dt / 1e6, 2)) == (6.95, 6.96)
  # Regression pin, not a reference: lljax's own exact counts for (base 46, 4 ResBlocks).
  assert (n_in, n_dt) == (6_951_431, 6_962_931)
  # FCL-GAN's BUM(): G_B2S and D_S from the official release key list (torch parameters(), no buffers).
  spec = json.loads((FIXTURES / "release_keys.json").read_text())["entries"]
  official = lambda prefix: sum(math.prod(e["shape"]) for k, e in spec.items() if k.startswith(prefix)
                                and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
  assert devudp.count_params(_abstract("fclgan"), "G") == official("G_B2S.")
  assert devudp.count_params(_abstract("fclgan", "discriminate"), "D") == official("D_S.")


def test_enhance_uses_G_alone():
  m = devudp.Model("tiny")
  params = init_variables(m, 0, *devudp.init_inputs(m, 32))["params"]
  other = init_variables(m, 1, *devudp.init_inputs(m, 32))["params"]
  low = {"low": np.random.default_rng(2).random((1, 16, 16, 3), np.float32)}
  run = lambda p: np.asarray(m.apply({"params": p}, low, method=m.enhance))
  base = run(params)
  np.testing.assert_array_equal(run({**other, "G": params["G"]}), base)
  assert np.abs(run({**params, "G": other["G"]}) - base).max() > 1e-3
  with pytest.raises(ValueError, match="unknown DEvUDP variant"):
    devudp.Model("nope")
