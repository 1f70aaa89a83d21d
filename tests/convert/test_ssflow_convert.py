"""SSFlow converter: every release key mapped or dropped by name, shape-inferred architecture, errors."""

import json
import pathlib

import jax
import numpy as np
import pytest

from lljax import checkpoint
from lljax.convert import ConversionError, __main__ as cli, load_torch_params, mapping, torch_io
from lljax.convert import ssflow as conv_ssflow
from lljax.models import ssflow

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "ssflow"


def release_state():
  """A state_dict with exactly the released checkpoint's keys and shapes (blur filters as built)."""
  spec = json.loads((FIXTURES / "release_keys.json").read_text())
  state = {k: np.zeros(v["shape"], np.float32) for k, v in spec["entries"].items()}
  return state, spec


def abstract_params(config):
  model = ssflow.Model(**config)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *ssflow.init_inputs(model)))["params"]


def test_every_release_key_maps_or_is_dropped_by_name():
  state, spec = release_state()
  config = conv_ssflow.infer_config(state)
  assert config == {**ssflow.VARIANTS["lol_blur"], "fac_kernel": 5}
  params, dropped = mapping.convert(state, conv_ssflow.RULES, abstract_params(config))
  assert len(jax.tree.leaves(params)) + len(dropped) == spec["num_entries"] == 807
  # Dropped: exactly the modules never called or whose outputs are discarded, plus BatchNorm counters.
  modules = spec["unused_in_forward"] + spec["computed_but_discarded"]
  owner = lambda k: next((m for m in modules if k.startswith(m + ".")), None)
  assert all(owner(k) or k.endswith(".num_batches_tracked") for k in dropped)
  assert sorted({owner(k) for k in dropped} - {None}) == sorted(modules)
  assert sorted(modules) == sorted(conv_ssflow.UNUSED_MODULES + conv_ssflow.DISCARDED_MODULES)
  used = [k for k in state if k not in dropped]
  assert sum(state[k].size for k in used) == 9_648_033 + 266_432  # parameters + buffers (GS, BN, blur)


def test_fixture_converts_with_no_flags():
  config, params, dropped = load_torch_params("ssflow", FIXTURES / "small.pth")
  assert config == dict(nf=32, channels=(8, 16, 32, 32), cond_channels=16, attn_size=20, fac_kernel=5,
                        K=2, L=3, n_noaffine=2, hidden=16)
  assert all(k.startswith(conv_ssflow.UNUSED_MODULES + conv_ssflow.DISCARDED_MODULES)
             or k.endswith(".num_batches_tracked") for k in dropped)
  state = torch_io.read_state_dict(FIXTURES / "small.pth")
  unet = params["RRDB"]["denoise"]
  np.testing.assert_array_equal(  # buffers are taken from the checkpoint (the fixture perturbed them)
      unet["E_block1_2"]["reshape_conv"]["bot_0"]["filt"],
      state["RRDB.denoise.E_block1.2.reshape_conv.bot.0.filt"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(unet["BasicBlock"]["_process_4"]["running_var"],
                                state["RRDB.denoise.BasicBlock._process.4.running_var"])
  np.testing.assert_array_equal(  # ConvTranspose2d weights are transposed, not flipped
      unet["D_block1"]["reshape_conv"]["top_2"]["kernel"],
      state["RRDB.denoise.D_block1.reshape_conv.top.2.weight"].transpose(2, 3, 0, 1))


def test_one_error_lists_all_problems():
  state, _ = release_state()
  state["RRDB.denoise.extra.weight"] = np.zeros((3, 3, 3, 3), np.float32)
  del state["RRDB.denoise.PPM2.fuse.1.weight"]
  state["RRDB.denoise.D_block2.body1.0.bias"] = np.zeros((5,), np.float32)
  with pytest.raises(ConversionError) as err:
    mapping.convert(state, conv_ssflow.RULES, abstract_params(conv_ssflow.infer_config(state)), source="x.pth")
  msg = str(err.value)
  assert "x.pth does not match" in msg
  assert "unused checkpoint keys" in msg and "RRDB.denoise.extra.weight" in msg
  assert "not found in the checkpoint" in msg and "PPM2/fuse_1/weight" in msg
  assert "shape mismatches" in msg and "RRDB.denoise.D_block2.body1.0.bias (5,)" in msg


def test_foreign_and_inconsistent_checkpoints():
  llflow_keys = json.loads((FIXTURES.parent / "llflow" / "release_keys_LOL_smallNet.json").read_text())["entries"]
  with pytest.raises(ConversionError, match="not an SSFlow checkpoint"):
    conv_ssflow.infer_config({k: np.zeros(v["shape"], np.float32) for k, v in llflow_keys.items()})
  state, _ = release_state()
  state["RRDB.denoise.conv22.0.conv.0.weight"] = np.zeros((32, 128, 3, 3), np.float32)
  with pytest.raises(ConversionError, match="conditioned on 64 channels"):
    conv_ssflow.infer_config(state)
  state, _ = release_state()
  state["RRDB.conv_first.weight"] = np.zeros((32, 6, 3, 3), np.float32)
  with pytest.raises(ConversionError, match="takes 6 channels"):
    conv_ssflow.infer_config(state)


def test_variant_assertion():
  with pytest.raises(ConversionError, match="not the 'lol_blur' variant"):
    load_torch_params("ssflow", FIXTURES / "small.pth", variant="lol_blur")


def test_cli_converts_and_rejects_wrong_model(tmp_path, capsys):
  out = tmp_path / "ssflow_small"
  assert cli.main(["--model", "ssflow", "--pth", str(FIXTURES / "small.pth"), "--output", str(out)]) == 0
  spec = checkpoint.read_model_spec(out)
  assert spec["model"] == "ssflow" and spec["config"]["channels"] == [8, 16, 32, 32]
  assert len(spec["source"]["dropped_unused_keys"]) > 100
  code = cli.main(["--model", "llflow", "--pth", str(FIXTURES / "small.pth"), "--output", str(tmp_path / "x")])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.startswith("lljax.convert: error:") and "takes 3 channels" in err
