"""The demo page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
which ``.ci/run`` installs) driven by Selenium uploads photos, runs the model and reads back the
pixels it shows. A missing browser fails the test with the reason; it is never skipped."""

import re
import shutil

import numpy as np
import pytest

from demo_client import request
from lljax.utils.images import decode_image, encode_png, to_float01, to_uint8

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")
# The pixels of an <img> as the page decoded them (RGBA, row-major).
READ_PIXELS = """
const img = arguments[0], canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(img, 0, 0);
return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
"""


def _browser(profile):
  """A headless Chromium, or pytest.fail naming what is missing."""
  chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
  if not (chromium and driver):
    pytest.fail("the browser test needs Debian's chromium and chromium-driver (not found: "
                f"{', '.join(n for n, p in (('chromium', chromium), ('chromedriver', driver)) if not p)}); "
                "install them with: apt-get install chromium chromium-driver (.ci/run does)")
  try:
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    pytest.fail(f"the browser test needs selenium ({e}): pip install -e '.[test]'")
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
    options.add_argument(flag)
  try:
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
  except Exception as e:  # pylint: disable=broad-except  # any start failure is the test's failure
    pytest.fail(f"headless chromium did not start: {type(e).__name__}: {e}")


def _wait(browser, condition, timeout, what):
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=import-outside-toplevel
  from selenium.common.exceptions import TimeoutException  # pylint: disable=import-outside-toplevel
  try:
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(lambda b: condition(b))
  except TimeoutException:
    pytest.fail(f"{what} within {timeout} s; the page says: {browser.find_element('tag name', 'body').text!r}")


def _card(browser, name):
  for card in browser.find_elements("css selector", ".card"):
    if card.find_element("css selector", ".name").text == name:
      return card
  return None


def _pixels(browser, img):
  rgba = np.asarray(browser.execute_script(READ_PIXELS, img), np.uint8)
  height, width = browser.execute_script("return [arguments[0].naturalHeight, arguments[0].naturalWidth]", img)
  return rgba.reshape(height, width, 4)


def test_page_enhances_uploaded_photos(demo, llflow_restorer, dark_photo, tmp_path):
  photos = tmp_path / "photos"
  photos.mkdir()
  (photos / "dark.png").write_bytes(encode_png(dark_photo))
  (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
  photos_before = sorted((p.name, p.stat().st_mtime_ns) for p in photos.iterdir())
  browser = _browser(tmp_path / "chromium-profile")
  try:
    browser.get(demo.url)
    _wait(browser, lambda b: b.find_element("tag name", "body").get_attribute("data-ready"), 30,
          "the page did not list the models")
    find = browser.find_element
    choices = find("id", "model").find_elements("tag name", "option")
    assert [o.text.rsplit(" (", 1)[1] for o in choices] == ["llflow)", "infwide)", "not a model)"]
    assert find("id", "temperature-row").is_displayed() and not find("id", "kernel-row").is_displayed()
    choices[1].click()  # INFWIDE: a kernel image, no temperature
    assert find("id", "kernel-row").is_displayed() and not find("id", "temperature-row").is_displayed()
    choices[2].click()  # not a model: the reason, in one line
    error = find("id", "model-error")
    assert error.is_displayed() and "is not an lljax model directory" in error.text and "\n" not in error.text
    choices[0].click()
    assert not error.is_displayed()

    find("id", "photos").send_keys(f"{photos / 'dark.png'}\n{photos / 'broken.jpg'}")
    _wait(browser, lambda b: (c := _card(b, "broken.jpg")) and c.get_attribute("data-state") == "error", 30,
          "the corrupt photo's error did not appear")
    broken = _card(browser, "broken.jpg").find_element("css selector", ".error").text
    assert broken.startswith("cannot read image broken.jpg: ") and "\n" not in broken
    card = _wait(browser, lambda b: (c := _card(b, "dark.png")) and c.get_attribute("data-state") == "done" and c,
                 240, "the enhanced photo did not appear")
    after = card.find_element("css selector", "img.after")
    _wait(browser, lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", after),
          30, "the result image did not load")

    reference = to_uint8(llflow_restorer.enhance(to_float01(dark_photo)[None])[0])
    shown = _pixels(browser, after)
    assert shown.shape == (52, 78, 4) and np.all(shown[..., 3] == 255)
    assert np.abs(shown[..., :3].astype(int) - reference).max() <= 1
    before = _pixels(browser, card.find_element("css selector", "img.before"))
    assert np.array_equal(before[..., :3], dark_photo)
    assert re.search(r"^78×52 px · \d+\.\d\d s", card.find_element("css selector", ".meta").text)

    link = card.find_element("css selector", "a.download")
    assert link.is_displayed() and link.get_attribute("download") == "dark_enhanced.png"
    code, _, png = request(link.get_attribute("href"))
    assert code == 200 and np.abs(decode_image(png, "download")[0].astype(int) - reference).max() <= 1

    slider = card.find_element("css selector", ".slider")
    browser.execute_script("arguments[0].value = 20; arguments[0].dispatchEvent(new Event('input'))", slider)
    split = browser.execute_script(
        "return arguments[0].style.getPropertyValue('--split')", card.find_element("css selector", ".compare"))
    assert split == "20%"
    browser.execute_script("arguments[0].scrollIntoView()", card)
    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 0
  finally:
    browser.quit()
  assert sorted((p.name, p.stat().st_mtime_ns) for p in photos.iterdir()) == photos_before
