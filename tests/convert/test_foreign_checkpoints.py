"""A checkpoint of another model given to the converter: the error names the model it looks like.

Every family's fixtures are tried as every other model, through the CLI a user runs.
"""

import json
import pathlib

import pytest

from lljax import models
from lljax.convert import __main__ as cli, guess_model, torch_io

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
# checkpoint file -> the model it belongs to
CHECKPOINTS = {f"{name}/small.pth": name for name in models.available()}
CHECKPOINTS["infwide/release_format.pth"] = "infwide"  # OmegaConf inside: only INFWIDE's reader reads it


def test_every_family_has_a_fixture():
  assert sorted(set(CHECKPOINTS.values())) == models.available()
  assert all((FIXTURES / path).is_file() for path in CHECKPOINTS)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/release_keys*.json")))
def test_release_keys_are_recognised(path):
  keys = json.loads((FIXTURES / path).read_text())["entries"]
  assert guess_model(keys) == path.split("/")[0]


def test_small_fixtures_are_recognised():
  for path, owner in CHECKPOINTS.items():
    if path.endswith("small.pth"):
      assert guess_model(torch_io.read_state_dict(FIXTURES / path)) == owner, path
  assert guess_model({"generator.conv.weight": None}) is None and guess_model({}) is None


@pytest.mark.parametrize("path,model", [(p, m) for p, owner in CHECKPOINTS.items() for m in models.available()
                                        if m != owner])
def test_other_models_checkpoint_names_its_model(tmp_path, capsys, path, model):
  owner = CHECKPOINTS[path]
  out = tmp_path / "out"
  code = cli.main(["--model", model, "--pth", str(FIXTURES / path), "--output", str(out)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.startswith("lljax.convert: error: ") and not out.exists()
  assert f"looks like a checkpoint of model '{owner}', not '{model}'" in err and f"--model {owner})" in err
