"""DEvUDP/FCL-GAN converter against the released key list of FCL-GAN's ``BUM()`` (base 24, six
ResBlocks; tests/fixtures/devudp/release_keys.json, see its README): every key mapped onto a
release-size model or dropped by name, shapes checked, parameter counts derived from the list."""

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from lljax.convert import ConversionError, devudp as conv_devudp, mapping
from lljax.models import devudp

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "devudp"
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def release_state():
  """A zero-valued state_dict with exactly the released keys, shapes and dtypes."""
  spec = json.loads((FIXTURES / "release_keys.json").read_text())
  state = {k: np.zeros(v["shape"], np.dtype(v["dtype"])) for k, v in spec["entries"].items()}
  return state, spec


def abstract_params(config):
  model = devudp.Model(**config)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *devudp.init_inputs(model)))["params"]


def parameters_of(spec, prefix):
  """Trainable values of one official network (torch ``parameters()``: no BatchNorm buffers)."""
  return sum(math.prod(e["shape"]) for k, e in spec["entries"].items()
             if k.startswith(prefix) and k.rsplit(".", 1)[1] not in BUFFERS)


def test_every_release_key_maps_or_is_dropped_by_name():
  state, spec = release_state()
  assert spec["num_entries"] == len(state) == 972
  assert spec["num_elements"] == sum(v.size for v in state.values())
  config = conv_devudp.infer_config(state)
  assert config == devudp.VARIANTS["fclgan"]  # FCL-GAN's BUM: base 24, 6 ResBlocks, BatchNorm, sigmoid
  # Strict: raises on any unused key, unfilled parameter or shape mismatch with the release-size model.
  params, dropped = mapping.convert(state, conv_devudp.RULES, abstract_params(config))
  assert len(jax.tree.leaves(params)) + len(dropped) == spec["num_entries"]
  # Dropped: exactly FCL-GAN's second discriminator (DEvUDP has one) and BatchNorm's counters.
  assert sorted(dropped) == sorted(k for k in state if k.startswith("D_B.") or k.endswith(".num_batches_tracked"))
  assert any(k.startswith("D_B.") for k in dropped)
  mapped = sum(state[k].size for k in state if k not in dropped)
  assert sum(math.prod(p.shape) for p in jax.tree.leaves(params)) == mapped
  # Parameter counts from the release list (the review's FCL-GAN G 2,772,483 and D 391,657).
  assert devudp.count_params(params, "G") == parameters_of(spec, "G_B2S.") == 2_772_483
  assert devudp.count_params(params, "G_inv") == parameters_of(spec, "G_S2B.")
  assert devudp.count_params(params, "D") == parameters_of(spec, "D_S.") == 391_657


def test_values_land_where_they_belong():
  state, _ = release_state()
  rng = np.random.default_rng(0)
  state = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in state.items()}
  params, _ = mapping.convert(state, conv_devudp.RULES, abstract_params(conv_devudp.infer_config(state)))
  g = params["G"]
  np.testing.assert_array_equal(g["feat_extract_0"]["conv"]["kernel"],
                                state["G_B2S.feat_extract.0.main.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(g["Encoder_1"]["layers_5"]["main_1"]["bn"]["running_var"],
                                state["G_B2S.Encoder.1.layers.5.main.1.main.1.running_var"])
  np.testing.assert_array_equal(g["feat_extract_3"]["conv"]["kernel"],  # ConvTranspose2d (I, O, kh, kw)
                                state["G_B2S.feat_extract.3.main.0.weight"].transpose(2, 3, 0, 1))
  np.testing.assert_array_equal(params["G_inv"]["Convs_1"]["bn"]["scale"], state["G_S2B.Convs.1.main.1.weight"])
  np.testing.assert_array_equal(params["D"]["model_12"]["bias"], state["D_S.model.12.bias"])


def test_one_error_lists_all_problems():
  state, _ = release_state()
  state["G_B2S.extra.weight"] = np.zeros((3, 3), np.float32)
  del state["D_S.model.8.weight"]
  state["G_S2B.Convs.0.main.0.weight"] = np.zeros((48, 96, 3, 3), np.float32)
  with pytest.raises(ConversionError) as err:
    mapping.convert(state, conv_devudp.RULES, abstract_params(conv_devudp.infer_config(state)), source="x.pth")
  msg = str(err.value)
  assert "x.pth does not match" in msg
  assert "unused checkpoint keys" in msg and "G_B2S.extra.weight" in msg
  assert "not found in the checkpoint" in msg and "D/model_8/kernel" in msg
  assert "shape mismatches" in msg and "G_S2B.Convs.0.main.0.weight (48, 96, 3, 3)" in msg
