"""``python -m lljax.demo``: its HTTP API against ``lljax.load(DIR).enhance``, its one-line errors,
the controls it offers, and its start and clean stop."""

import inspect
import io
import json
import re
import signal
import socket
import urllib.parse

import numpy as np
import pytest

from demo_client import DemoProcess, request, submit, wait_job
from lljax import api, models
from lljax.demo import __main__ as demo_main
from lljax.demo import catalog, jobs
from lljax.utils.images import decode_image, encode_png, to_float01

PIXEL = 1 / 255 + 1e-6


def _listing(folder):
  return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def _result(url, status):
  assert status["state"] == "done", status
  code, headers, body = request(url + status["result"])
  assert code == 200 and headers["Content-Type"] == "image/png"
  return decode_image(body, "result.png"), headers


def test_results_match_restorer_enhance(demo, llflow_small_dir, llflow_restorer, dark_photo, dark_png):
  models_before = _listing(llflow_small_dir)
  for temperature in (0.0, 0.7):
    code, status = submit(demo.url, model="0", image=("dark.png", dark_png), temperature=str(temperature))
    assert code == 202, status
    (result, info), headers = _result(demo.url, wait_job(demo.url, status["id"]))
    reference = llflow_restorer.enhance(to_float01(dark_photo)[None], temperature=temperature)[0]
    assert result.shape == dark_photo.shape and info["bit_depth"] == 8
    assert np.abs(to_float01(result) - reference).max() <= PIXEL
    assert "dark_enhanced.png" in headers["Content-Disposition"]
    if temperature == 0.0:
      mean_result = result
  assert np.abs(mean_result.astype(int) - result).max() > 1  # the temperature reached the model

  # A 16-bit PNG comes back as a 16-bit PNG of the same pixels.
  fine = np.linspace(0, 200, dark_photo.shape[1])[:, None]  # detail below 8 bits
  deep = np.clip(to_float01(dark_photo) * 65535 + fine, 0, 65535).astype(np.uint16)
  code, status = submit(demo.url, model="0", image=("deep.png", encode_png(deep)))
  status = wait_job(demo.url, status["id"])
  assert status["bit_depth"] == 16 and (status["width"], status["height"]) == (78, 52)
  (result, info), _ = _result(demo.url, status)
  assert info["bit_depth"] == 16
  assert np.abs(to_float01(result) - llflow_restorer.enhance(to_float01(deep)[None])[0]).max() <= PIXEL

  # The slider's pictures are the 8-bit input and result.
  before = decode_image(request(demo.url + status["before"])[2], "before.png")[0]
  after = decode_image(request(demo.url + status["after"])[2], "after.png")[0]
  assert np.abs(to_float01(before) - to_float01(deep)).max() <= PIXEL / 2 + 1e-6
  assert np.abs(after.astype(int) - np.round(to_float01(result) * 255)).max() <= 1
  # The server writes nothing: not into its working folder, not into the model's.
  assert _listing(demo.cwd) == [] and _listing(llflow_small_dir) == models_before


def _error(code_and_answer, expected_code=400):
  code, answer = code_and_answer
  assert code == expected_code, answer
  assert "\n" not in answer["error"]
  return answer["error"]


def test_bad_uploads_get_a_clear_one_line_error(demo, dark_png, not_a_model):
  assert "cannot read image broken.png: not an image" in _error(
      submit(demo.url, model="0", image=("broken.png", b"this is not a picture")))
  truncated = _error(submit(demo.url, model="0", image=("cut.png", dark_png[:len(dark_png) // 2])))
  assert truncated.startswith("cannot read image cut.png: ")
  assert "no photo received" in _error(submit(demo.url, model="0", image=("empty.png", b"")))
  assert f"{not_a_model} is not an lljax model directory" in _error(
      submit(demo.url, model="2", image=("dark.png", dark_png)))
  assert "unknown model '7'" in _error(submit(demo.url, model="7", image=("dark.png", dark_png)))
  assert "temperature must be a number" in _error(
      submit(demo.url, model="0", image=("dark.png", dark_png), temperature="warm"))
  assert "temperature must be a number, got 'nan'" in _error(
      submit(demo.url, model="0", image=("dark.png", dark_png), temperature="nan"))
  assert "infwide has no temperature setting" in _error(
      submit(demo.url, model="1", image=("dark.png", dark_png), kernel=("k.npy", _npy(np.ones((5, 5)))),
             temperature="0.5"))
  # INFWIDE's kernel: required, readable, within the model's support; LLFlow takes none.
  assert "choose the photo's blur kernel" in _error(submit(demo.url, model="1", image=("dark.png", dark_png)))
  assert "k.npy: the blur kernel is 41x41, larger than the model's 37x37 support" in _error(
      submit(demo.url, model="1", image=("dark.png", dark_png), kernel=("k.npy", _npy(np.ones((41, 41))))))
  assert "k.png: not a readable kernel image" in _error(
      submit(demo.url, model="1", image=("dark.png", dark_png), kernel=("k.png", b"\x89PNG broken")))
  assert "llflow does not take a blur kernel" in _error(
      submit(demo.url, model="0", image=("dark.png", dark_png), kernel=("k.npy", _npy(np.ones((5, 5))))))
  code, _, body = request(demo.url + "api/jobs", b"image=x", "application/x-www-form-urlencoded")
  assert code == 400 and "multipart/form-data" in json.loads(body)["error"]
  code, _, body = request(demo.url + "api/jobs/999/result.png")
  assert code == 404 and "no job 999" in json.loads(body)["error"]


def _npy(array):
  buffer = io.BytesIO()
  np.save(buffer, np.asarray(array, np.float32))
  return buffer.getvalue()


def test_models_list_their_controls(demo, not_a_model):
  listed = json.loads(request(demo.url + "api/models")[2])["models"]
  assert [m["model"] for m in listed] == ["llflow", "infwide", None]
  llflow, infwide, bad = listed
  assert llflow["controls"]["temperature"]["default"] == 0.0 and not llflow["controls"]["kernel"]
  assert infwide["controls"]["kernel"] and "temperature" not in infwide["controls"]
  assert bad["error"].startswith(f"{not_a_model} is not an lljax model directory") and "controls" not in bad


def test_exposure_control_follows_enhance_image_signature():
  llflow, infwide = models.get("llflow"), models.get("infwide")

  def with_exposure(self, image, kernel=None, *, temperature=0.0, exposure=None):
    del self, image, kernel, temperature, exposure

  def with_default(self, image, *, exposure=1.5):
    del self, image, exposure

  assert catalog.controls(llflow, with_exposure) == {
      "kernel": False, "exposure": {"default": None},
      "temperature": {"default": 0.0, **catalog.TEMPERATURE_RANGE}}
  assert catalog.controls(infwide, with_default) == {"kernel": True, "exposure": {"default": 1.5}}
  has_exposure = "exposure" in inspect.signature(api.Restorer.enhance_image).parameters
  assert ("exposure" in catalog.controls(llflow)) == has_exposure


def test_starts_answers_and_stops_cleanly(llflow_small_dir, tmp_path):
  server = DemoProcess(["--models", llflow_small_dir], tmp_path)
  try:
    url = server.wait_url()
    code, headers, page = request(url)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<title>lljax demo</title>" in page
    assert not re.search(rb"""(src|href)=["']?(https?:)?//|url\(["']?(https?:)?//|@import""", page)  # offline
    assert json.loads(request(url + "api/models")[2])["models"][0]["model"] == "llflow"
    assert server.stop(signal.SIGINT) == 0, server.output
  finally:
    server.stop(signal.SIGKILL)
  assert server.output.splitlines()[-1] == "lljax.demo: stopped"
  address = urllib.parse.urlsplit(url)
  with pytest.raises(ConnectionRefusedError):  # nothing listens on the port any more
    socket.create_connection((address.hostname, address.port), timeout=5)
  assert list(tmp_path.iterdir()) == []


def test_no_model_or_a_taken_port_is_a_usage_error(tmp_path, llflow_small_dir, capsys):
  assert demo_main.main(["--models", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"lljax.demo: error: none of the --models directories is a model: {tmp_path} is not")
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    assert demo_main.main(["--models", str(llflow_small_dir), "--port", str(taken.getsockname()[1])]) == 2
  assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


class _Recorder:
  """A Restorer stand-in that records what the worker asks of it and reports one compiling tile."""

  family = models.get("llflow")
  progress = None

  def enhance_image(self, image, kernel=None, **kwargs):
    self.kernel, self.kwargs = kernel, kwargs
    self.progress("enhance", (1, 512, 512, 3), True, 2, 4)
    self.stage = self.job.stage
    return image


class _Entry:
  index = 0

  def __init__(self, restorer):
    self.restorer = lambda: restorer


@pytest.mark.parametrize("megapixels, max_pixels", [(None, 1_000_000), (0.2, 200_000)])
def test_large_photos_take_the_tiles_of_enhance(megapixels, max_pixels):
  recorder = _Recorder()
  worker = jobs.Worker(megapixels)
  rgb = np.zeros((8, 8, 3), np.uint8)
  recorder.job = job = jobs.Job("1", _Entry(recorder), "a.png", rgb, {"mode": "RGB", "bit_depth": 8},
                                options={"temperature": 0.5})
  worker.submit(job)
  worker.close(timeout=30)
  assert job.state == "done" and job.compiled and recorder.progress is None
  assert recorder.kwargs == {"max_pixels": max_pixels, "tile": 512, "overlap": 128, "temperature": 0.5}
  assert recorder.stage == "compiling the model for 512x512 (once per size), then running tile 2/4"
