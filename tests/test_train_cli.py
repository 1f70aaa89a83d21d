"""``python -m lljax.train`` user errors: one clear line, exit code 2, nothing overwritten."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def run_train(*args, cwd=ROOT):
  env = {**os.environ, "LLJAX_COMPILATION_CACHE": ""}
  return subprocess.run([sys.executable, "-m", "lljax.train", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("config,message", [
    ("configs/llflow.py:nosuch", "unknown config argument 'nosuch'; presets: embedded, lol, lol_v2, small"),
    ("configs/nosuch.py", "nosuch.py"),
])
def test_bad_config(tmp_path, config, message):
  result = run_train(f"--config={config}", f"--workdir={tmp_path / 'w'}")
  assert result.returncode != 0
  assert message in result.stderr
  assert not (tmp_path / "w").exists()


def test_unknown_model_and_typo_override(tmp_path):
  result = run_train("--config=configs/llflow.py:quick", "--config.model.name=nosuch", f"--workdir={tmp_path}")
  assert result.returncode == 2 and "unknown model 'nosuch'; known models: " in result.stderr
  assert "llflow" in result.stderr.rsplit("known models: ", 1)[1]
  result = run_train("--config=configs/llflow.py:quick", "--config.bach_size=2", f"--workdir={tmp_path}")
  assert result.returncode != 0 and "bach_size" in result.stderr


def test_workdir_that_is_a_file(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("user data")
  result = run_train("--config=configs/llflow.py:quick", f"--workdir={blocker}")
  assert result.returncode == 2 and "is not a directory" in result.stderr
  assert blocker.read_text() == "user data"


def test_dataset_not_prepared(tmp_path):
  result = run_train("--config=configs/llflow.py:lol", f"--config.data.data_dir={tmp_path / 'tfds'}",
                     f"--workdir={tmp_path / 'w'}")
  assert result.returncode == 2
  assert "Dataset 'lol' is not prepared" in result.stderr and "python -m lljax.data.prepare lol" in result.stderr
