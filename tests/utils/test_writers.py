"""Tests for lljax.utils.writers: JSONL round trip and TensorBoard event parsing."""

import glob
import json
import math
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from lljax.utils.writers import MetricWriter, read_jsonl


def _read_events(path):
  """Parses a TFRecord file: u64 length, u32 crc(length), data, u32 crc(data)."""
  events = []
  with open(path, "rb") as f:
    blob = f.read()
  pos = 0
  while pos < len(blob):
    header = blob[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    (header_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
    data = blob[pos + 12:pos + 12 + length]
    (data_crc,) = struct.unpack("<I", blob[pos + 12 + length:pos + 16 + length])
    assert header_crc == masked_crc32c(header)
    assert data_crc == masked_crc32c(data)
    events.append(event_pb2.Event.FromString(data))
    pos += 16 + length
  assert pos == len(blob)
  return events


def _event_file(workdir):
  (path,) = glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  return path


def _summary_values(events):
  """(step, tag, value proto) for every summary value in the events."""
  return [(e.step, v.tag, v) for e in events if e.HasField("summary") for v in e.summary.value]


def test_scalars_round_trip(tmp_path):
  with MetricWriter(tmp_path) as writer:
    writer.write_scalars(1, {"loss": -3.21, "lr": np.float32(5e-4), "n": np.int64(7)})
    writer.write_scalars(2, {"loss": jnp.asarray(2.5), "psnr": jnp.asarray([20.0])})
    writer.write_scalars(3, {"loss": math.nan, "grad_norm": np.inf, "x": -np.inf})

  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in records] == [1, 2, 3]
  assert records[0]["loss"] == -3.21
  assert records[0]["lr"] == pytest.approx(5e-4)
  assert records[0]["n"] == 7 and isinstance(records[0]["n"], int)
  assert records[1] == {"step": 2, "time": records[1]["time"], "loss": 2.5, "psnr": 20.0}
  assert math.isnan(records[2]["loss"])
  assert records[2]["grad_norm"] == math.inf and records[2]["x"] == -math.inf
  assert all(isinstance(r["time"], float) for r in records)
  assert records[0]["time"] <= records[1]["time"] <= records[2]["time"]

  # The raw file is strict JSON, one object per line.
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 3
  raw = json.loads(lines[2], parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
  assert raw["loss"] == "nan" and raw["grad_norm"] == "inf" and raw["x"] == "-inf"


def test_event_file_contains_scalars(tmp_path):
  with MetricWriter(tmp_path) as writer:
    writer.write_scalars(10, {"train/loss": 0.5, "lr": 1e-3})
    writer.write_scalars(20, {"train/loss": 0.25, "bad": math.nan})
  values = _summary_values(_read_events(_event_file(tmp_path)))
  scalars = {(step, tag): v.simple_value for step, tag, v in values}
  assert scalars[(10, "train/loss")] == 0.5
  assert scalars[(10, "lr")] == pytest.approx(1e-3)
  assert scalars[(20, "train/loss")] == 0.25
  assert math.isnan(scalars[(20, "bad")])


def test_images_and_text_go_to_tensorboard(tmp_path):
  image = np.zeros((6, 8, 3), np.uint8)
  image[:, :4] = 255
  with MetricWriter(tmp_path) as writer:
    writer.write_images(5, {"samples": image, "gray": image[..., 0]})
    writer.write_text(5, {"config": "lr: 1e-3"})
    with pytest.raises(ValueError, match="uint8"):
      writer.write_images(5, {"float": image.astype(np.float32)})
  values = {tag: v for _, tag, v in _summary_values(_read_events(_event_file(tmp_path)))}
  assert values["samples"].image.height == 6 and values["samples"].image.width == 8
  assert values["samples"].image.encoded_image_string.startswith(b"\x89PNG")
  assert "gray" in values
  text_tags = [tag for tag in values if tag.startswith("config")]
  assert text_tags and b"lr: 1e-3" in values[text_tags[0]].tensor.string_val[0]
  assert not (tmp_path / "metrics.jsonl").read_text()  # no scalars written


def test_disabled_writer_is_a_no_op(tmp_path):
  workdir = tmp_path / "run"
  with MetricWriter(workdir, enabled=False) as writer:
    writer.write_scalars(1, {"loss": 1.0})
    writer.write_images(1, {"x": np.zeros((2, 2, 3), np.uint8)})
    writer.write_text(1, {"t": "x"})
    writer.flush()
  assert not workdir.exists()


def test_appends_across_writers_and_rejects_misuse(tmp_path):
  with MetricWriter(tmp_path) as writer:
    writer.write_scalars(1, {"a": 1.0})
    with pytest.raises(ValueError, match="reserved"):
      writer.write_scalars(1, {"step": 1.0})
    with pytest.raises(ValueError, match="scalar expected"):
      writer.write_scalars(1, {"v": np.zeros(3)})
  with pytest.raises(RuntimeError, match="closed"):
    writer.write_scalars(2, {"a": 2.0})
  writer.close()  # idempotent
  with MetricWriter(tmp_path) as writer:
    writer.write_scalars(2, {"a": 2.0})
  assert [r["a"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1.0, 2.0]
  assert len(glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))) == 2


def test_read_jsonl_tolerates_only_a_cut_off_last_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"')
  assert read_jsonl(path) == [{"step": 1, "a": 1.0}]
  path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"\n{"step": 3}\n')
  with pytest.raises(ValueError, match="metrics.jsonl:2"):
    read_jsonl(path)
