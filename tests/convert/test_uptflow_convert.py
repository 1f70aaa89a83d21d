"""UPT-Flow converter: release keys of both window sizes, shape-inferred architecture, window-size
detection, strict key accounting and one-line CLI errors."""

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from lljax.convert import ConversionError, __main__ as cli, _check_variant, load_torch_params, mapping, torch_io
from lljax.convert import uptflow as conv_uptflow
from lljax.models import uptflow
from lljax.nn import relative_position_index

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "uptflow"
RELEASES = {"LOL_winsize5": ("lol", 5, 23_437_502), "winsize8": ("ws8", 8, 23_445_854)}


def release_state(name):
  """A state_dict with the released keys and shapes: zero weights, the window's index buffers."""
  spec = json.loads((FIXTURES / f"release_keys_{name}.json").read_text())
  ws = RELEASES[name][1]
  state = {}
  for key, entry in spec["entries"].items():
    if key.endswith("relative_position_index"):
      state[key] = relative_position_index(ws).astype(np.int64)
    else:
      state[key] = np.broadcast_to(np.float32(0), entry["shape"])
  return state, spec


def abstract_params(config):
  model = uptflow.Model(**config)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *uptflow.init_inputs(model)))["params"]


@pytest.mark.parametrize("name", RELEASES)
def test_every_release_key_maps(name):
  variant, ws, n_params = RELEASES[name]
  state, spec = release_state(name)
  config = conv_uptflow.infer_config(state)
  assert config == uptflow.VARIANTS[variant] and config["win_size"] == ws
  params, dropped = mapping.convert(state, conv_uptflow.RULES, abstract_params(config))
  assert len(jax.tree.leaves(params)) + len(dropped) == spec["num_entries"] == 1929
  assert len(dropped) == 14 and all(k.endswith("attn.relative_position_index") for k in dropped)
  # the official parameter counts (the paper's 23.45 M is the window-8 model)
  assert sum(math.prod(p.shape) for p in jax.tree.leaves(params)) == n_params
  assert n_params + 14 * ws**4 == spec["num_elements"]  # + the int64 index buffers


def test_fixture_converts_with_no_flags():
  config, params, dropped = load_torch_params("uptflow", FIXTURES / "small.pth")
  assert config == dict(dim=8, heads=(2, 2, 4, 8), depths=(2,) * 7, num_heads=(1, 2, 4, 8, 8, 4, 2),
                        num_refinement=2, ffn_expansion_factor=2.66, mlp_ratio=4.0, win_size=5, K=2, L=3,
                        n_noaffine=2, hidden=16)
  assert len(dropped) == 14
  # values land where they belong (spot checks of each transform)
  state = torch_io.read_state_dict(FIXTURES / "small.pth")
  np.testing.assert_array_equal(params["RRDB"]["patch_embed"]["kernel"],
                                state["RRDB.patch_embed.proj.weight"].transpose(2, 3, 1, 0))
  attn = params["RRDB"]["bottlen"]["blocks_1"]["attn"]
  np.testing.assert_array_equal(attn["proj"]["kernel"], state["RRDB.bottlen.blocks.1.attn.proj.weight"].T)
  np.testing.assert_array_equal(attn["temperature"], state["RRDB.bottlen.blocks.1.attn.temperature"].ravel())
  eca = params["RRDB"]["decoderlayer_3"]["blocks_0"]["mlp"]["eca"]["kernel"]
  np.testing.assert_array_equal(eca[:, 0, 0], state["RRDB.decoderlayer_3.blocks.0.mlp.eca.conv.weight"].ravel())
  gate = params["flowUpsamplerNet"]["layers_13"]["affine"]["fAffine_2"]["attention"]["channel_gate"]
  np.testing.assert_array_equal(gate["fc2"]["kernel"],
                                state["flowUpsamplerNet.layers.13.affine.fAffine_2.model.4.ChannelGate.mlp.3.weight"].T)


@pytest.mark.parametrize("name,asserted", [("LOL_winsize5", "ws8"), ("winsize8", "lol")])
def test_other_window_size_is_named(name, asserted):
  state, _ = release_state(name)
  config = conv_uptflow.infer_config(state)
  _check_variant(uptflow, "uptflow", RELEASES[name][0], config)  # the matching variant passes
  other = uptflow.VARIANTS[asserted]["win_size"]
  with pytest.raises(ConversionError, match=rf"not the '{asserted}' variant \(win_size: checkpoint "
                     rf"{RELEASES[name][1]} vs {asserted} {other}\)"):
    _check_variant(uptflow, "uptflow", asserted, config)


def test_fixture_with_asserted_window_8_fails():
  with pytest.raises(ConversionError, match="win_size: checkpoint 5 vs ws8 8"):
    load_torch_params("uptflow", FIXTURES / "small.pth", variant="ws8")


def test_index_buffer_and_bias_table_checks():
  state, _ = release_state("LOL_winsize5")
  key = "RRDB.decoderlayer_2.blocks.1.attn.relative_position_index"
  state[key] = relative_position_index(5).T.astype(np.int64).copy() + 1
  with pytest.raises(ConversionError, match=f"{key} is not the relative position index of window size 5"):
    conv_uptflow.infer_config(state)
  state, _ = release_state("LOL_winsize5")
  state["RRDB.bottlen.blocks.0.attn.relative_position_bias_table"] = np.zeros((225, 8), np.float32)
  with pytest.raises(ConversionError, match=r"rows \[81, 225\]"):
    conv_uptflow.infer_config(state)


def test_one_error_lists_all_problems():
  state, _ = release_state("LOL_winsize5")
  state["RRDB.extra.weight"] = np.zeros((3, 3), np.float32)
  del state["flowUpsamplerNet.layers.14.invconv.weight"]
  state["RRDB.latent.1.attn.qkv.weight"] = np.zeros((1152, 384, 3, 3), np.float32)
  config = conv_uptflow.infer_config(state)
  with pytest.raises(ConversionError) as err:
    mapping.convert(state, conv_uptflow.RULES, abstract_params(config), source="x.pth")
  msg = str(err.value)
  assert "x.pth does not match" in msg
  assert "unused checkpoint keys" in msg and "RRDB.extra.weight" in msg
  assert "not found in the checkpoint" in msg and "layers_14/invconv/weight" in msg
  assert "shape mismatches" in msg and "RRDB.latent.1.attn.qkv.weight (1152, 384, 3, 3)" in msg


def test_not_a_uptflow_checkpoint():
  with pytest.raises(ConversionError, match="not a UPT-Flow checkpoint"):
    conv_uptflow.infer_config({"RRDB.conv_first.weight": np.zeros((64, 12, 3, 3), np.float32)})


def test_cli(tmp_path, capsys):
  out = tmp_path / "converted"
  assert cli.main(["--model", "uptflow", "--pth", str(FIXTURES / "small.pth"), "--output", str(out)]) == 0
  assert "win_size=5" in capsys.readouterr().out and (out / "params").is_dir()
  llflow_pth = FIXTURES.parent / "llflow" / "small.pth"
  code = cli.main(["--model", "uptflow", "--pth", str(llflow_pth), "--output", str(tmp_path / "wrong")])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.startswith("lljax.convert: error:") and "not a UPT-Flow checkpoint" in err
  assert len(err.splitlines()) == 1 and not (tmp_path / "wrong").exists()
  code = cli.main(["--model", "uptflow", "--pth", str(FIXTURES / "small.pth"), "--variant", "ws8",
                   "--output", str(tmp_path / "ws8")])
  assert code == 2 and "win_size: checkpoint 5 vs ws8 8" in capsys.readouterr().err
