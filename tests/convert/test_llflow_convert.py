"""LLFlow converter: architecture inference, strict key accounting, release keys, CLI errors."""

import json
import pathlib
import pickle
import zipfile

import jax
import numpy as np
import pytest

from lljax import checkpoint
from lljax.convert import ConversionError, __main__ as cli, convert_checkpoint, load_torch_params, mapping
from lljax.convert import llflow as conv_llflow
from lljax.models import llflow

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "llflow"
RELEASES = {"LOL_pc": "lol", "LOLv2_pc": "lol_v2", "LOL_smallNet": "small"}


def release_state(name):
  """A zero-valued state_dict with exactly the released checkpoint's keys and shapes."""
  spec = json.loads((FIXTURES / f"release_keys_{name}.json").read_text())
  return {k: np.broadcast_to(np.float32(0), v["shape"]) for k, v in spec["entries"].items()}, spec


@pytest.mark.parametrize("name", RELEASES)
def test_every_release_key_maps(name):
  state, spec = release_state(name)
  config = conv_llflow.infer_config(state)
  expected = dict(llflow.VARIANTS[RELEASES[name]])
  assert {k: config[k] for k in expected} == {k: tuple(v) if isinstance(v, tuple) else v for k, v in expected.items()}
  model = llflow.Model(**config)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *llflow.init_inputs(model)))["params"]
  params, dropped = mapping.convert(state, conv_llflow.RULES, abstract)
  assert len(jax.tree.leaves(params)) + len(dropped) == spec["num_entries"]
  # every dropped key belongs to a module the official forward never uses, and each such module is dropped
  assert sorted({next(m for m in spec["unused_in_forward"] if k.startswith(m + ".")) for k in dropped}) == \
      sorted(spec["unused_in_forward"])


def test_fixture_converts_with_no_flags():
  config, _, dropped = load_torch_params("llflow", FIXTURES / "small.pth")
  assert config == dict(nf=8, nb=2, gc=32, stack_blocks=(0,), K=2, L=3, n_noaffine=2, hidden=16)
  assert all(k.startswith(conv_llflow.UNUSED_MODULES) for k in dropped)


def test_one_error_lists_all_problems():
  state, _ = release_state("LOL_smallNet")
  state = dict(state)
  state["RRDB.extra.weight"] = np.zeros((3, 3, 3, 3), np.float32)
  del state["flowUpsamplerNet.layers.3.invconv.weight"]
  state["RRDB.trunk_conv.bias"] = np.zeros((5,), np.float32)
  model = llflow.Model(**conv_llflow.infer_config(state))
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *llflow.init_inputs(model)))["params"]
  with pytest.raises(ConversionError) as err:
    mapping.convert(state, conv_llflow.RULES, abstract, source="x.pth")
  msg = str(err.value)
  assert "x.pth does not match" in msg
  assert "unused checkpoint keys" in msg and "RRDB.extra.weight" in msg
  assert "not found in the checkpoint" in msg and "layers_3/invconv/weight" in msg
  assert "shape mismatches" in msg and "RRDB.trunk_conv.bias (5,)" in msg


def test_variant_assertion():
  with pytest.raises(ConversionError, match="not the 'lol' variant"):
    load_torch_params("llflow", FIXTURES / "small.pth", variant="lol")


def test_stack_blocks_override_checked():
  state, _ = release_state("LOL_pc")
  assert conv_llflow.infer_config(state, stack_blocks=(0, 2, 4, 6))["stack_blocks"] == (0, 2, 4, 6)
  with pytest.raises(ConversionError, match="does not fit"):
    conv_llflow.infer_config(state, stack_blocks=(1, 2))


def test_not_an_llflow_checkpoint():
  with pytest.raises(ConversionError, match="not an LLFlow checkpoint"):
    conv_llflow.infer_config({"generator.conv.weight": np.zeros((4, 3, 3, 3), np.float32)})


def test_convert_writes_model_directory_and_never_overwrites(tmp_path):
  out = tmp_path / "converted"
  config = convert_checkpoint("llflow", FIXTURES / "small.pth", out)
  spec = checkpoint.read_model_spec(out)
  assert spec["model"] == "llflow" and spec["config"]["nf"] == config["nf"] == 8
  assert len(spec["source"]["sha256"]) == 64
  assert (out / "params").is_dir()
  with pytest.raises(FileExistsError, match="not empty"):
    convert_checkpoint("llflow", FIXTURES / "small.pth", out)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def _write_pickle_zip(path, payload):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", payload)


@pytest.mark.parametrize("case", ["missing", "truncated", "code", "wrong_model"])
def test_cli_errors_are_one_line(tmp_path, capsys, case):
  pth = tmp_path / "model.pth"
  if case == "truncated":
    pth.write_bytes((FIXTURES / "small.pth").read_bytes()[:100_000])
  elif case == "code":
    _write_pickle_zip(pth, b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
  elif case == "wrong_model":
    _write_pickle_zip(pth, pickle.dumps({"a": 1}, protocol=2))
  out = tmp_path / "out"
  code = cli.main(["--model", "llflow", "--pth", str(pth), "--output", str(out)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.startswith("lljax.convert: error:") and str(pth.name) in err
  assert not out.exists() and not (tmp_path / "pwned").exists()
  if case == "code":  # says what was refused, and never invites allow-listing it
    assert "'os.system'" in err and "never imports or runs pickled code" in err
    assert "stubs" not in err and "allow" not in err


def test_cli_unknown_model(tmp_path, capsys):
  code = cli.main(["--model", "nosuch", "--pth", str(FIXTURES / "small.pth"), "--output", str(tmp_path / "o")])
  assert code == 2 and "unknown model 'nosuch'" in capsys.readouterr().err
