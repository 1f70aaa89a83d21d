"""The contact sheet of ``python -m lljax.compare``: each panel's label text (name, time, PSNR/SSIM
per protocol), thumbnails, label wrapping in Pillow's built-in font, the grid layout and
``render_sheet``, which draws the panels and returns where each one is (``Panel``).
"""

import math
from typing import NamedTuple

import numpy as np

PANEL_WIDTH = 512  # default width of a panel on the sheet, pixels
MAX_COLUMNS = 4
PAD = 8  # pixels around and between panels
BACKGROUND, TEXT, ERROR_TEXT, FAILED_FILL = (24, 24, 24), (235, 235, 235), (255, 128, 112), (72, 72, 72)
_MAX_WRAP = 4  # lines one label line may wrap to


class Panel(NamedTuple):
  """One panel of a sheet. ``title``: "input", "target" or the model's label; ``lines``: the
  label's text as drawn; ``image_box``/``label_box``: (top, left, height, width) in sheet pixels."""

  title: str
  lines: tuple
  image_box: tuple
  label_box: tuple


def _seconds_text(row):
  first = f"{row['seconds']:.2f} s" + (" incl. compile" if row["includes_compilation"] else "")
  if row["seconds_warm"] is None:
    return first
  return f"{row['seconds_warm']:.2f} s warm, first {first}"


def _metric_text(spec, metrics):
  psnr = metrics["psnr"]
  psnr = f"{psnr:.2f} dB" if math.isfinite(psnr) else f"{psnr} dB"
  return f"{spec}: {psnr}, SSIM {metrics['ssim']:.3f}"


def label_lines(row):
  """The text under a model's panel: name - directory, time, then PSNR/SSIM per protocol."""
  if row["error"] is not None:
    return [row["label"], f"failed: {row['error']}"]
  lines = [row["label"], _seconds_text(row)]
  for spec, metrics in (row["metrics"] or {}).items():
    lines.append(_metric_text(spec, metrics))
  return lines


def thumbnail(image, width):
  """HWC float in [0, 1] (or uint8) -> uint8 [round(H * width / W), width, 3]: Pillow's Lanczos
  filter when shrinking, nearest neighbour when enlarging (a small photo shows its pixels)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from lljax.utils.images import to_uint8  # pylint: disable=import-outside-toplevel

  u8 = to_uint8(np.asarray(image))
  h, w = u8.shape[:2]
  size = (int(width), max(1, round(h * width / w)))
  if size == (w, h):
    return u8
  resample = Image.Resampling.LANCZOS if width < w else Image.Resampling.NEAREST
  return np.asarray(Image.fromarray(u8).resize(size, resample))


def _font(panel_width):
  """Pillow's built-in font (no font file), its size scaled to the panel: 16 px at 512."""
  from PIL import ImageFont  # pylint: disable=import-outside-toplevel
  return ImageFont.load_default(size=max(10, panel_width // 32))


def _pieces(word, font, width):
  """``word`` split into pieces at most ``width`` pixels wide (most words are one piece)."""
  pieces = []
  while font.getlength(word) > width and len(word) > 1:
    n = 1
    while font.getlength(word[:n + 1]) <= width:
      n += 1
    pieces.append(word[:n])
    word = word[n:]
  return pieces + [word]


def _wrap(text, font, width, max_lines):
  """``text`` broken into lines at most ``width`` pixels wide: at spaces, and inside words longer
  than a line; at most ``max_lines`` lines, the last one ending in "..." when text is left over."""
  lines, line = [], ""
  for word in (piece for w in text.split(" ") for piece in _pieces(w, font, width)):
    candidate = f"{line} {word}" if line else word
    if line and font.getlength(candidate) > width:
      lines.append(line)
      candidate = word
    line = candidate
  lines.append(line)
  if len(lines) > max_lines:
    last = lines[max_lines - 1]
    while last and font.getlength(last + "...") > width:
      last = last[:-1]
    lines = lines[:max_lines - 1] + [last + "..."]
  return lines


def _grid(count, columns=None):
  """(rows, columns) for ``count`` panels: at most MAX_COLUMNS wide, rows as even as possible."""
  if columns is None:
    rows = math.ceil(count / MAX_COLUMNS)
    columns = math.ceil(count / rows)
  columns = max(1, min(int(columns), count))
  return math.ceil(count / columns), columns


def render_sheet(cells, panel_width=PANEL_WIDTH, columns=None):
  """Draws panels in a grid -> (uint8 sheet [H, W, 3], [Panel]).

  Args:
    cells: [(title, image, lines, failed)]: ``image`` uint8 [h, panel_width, 3] (all the same
      size) or None (a grey panel; ``failed``: its label drawn in the error colour); ``lines``:
      label text, wrapped to the panel here.
    panel_width: panel width in pixels. columns: grid columns (default: up to MAX_COLUMNS).
  """
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel

  font = _font(panel_width)
  line_height = font.getbbox("Ag")[3] + max(2, panel_width // 128)
  margin = max(3, panel_width // 64)
  text_width = panel_width - 2 * margin
  wrapped = [[w for line in lines for w in _wrap(line, font, text_width, _MAX_WRAP)] for _, _, lines, _ in cells]
  panel_height = next(image.shape[0] for _, image, _, _ in cells if image is not None)
  label_height = max(len(lines) for lines in wrapped) * line_height + 2 * margin
  rows, cols = _grid(len(cells), columns)
  sheet = Image.new("RGB", (cols * panel_width + (cols + 1) * PAD,
                            rows * (panel_height + label_height) + (rows + 1) * PAD), BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  panels = []
  for i, ((title, image, _, failed), lines) in enumerate(zip(cells, wrapped)):
    row, col = divmod(i, cols)
    top, left = PAD + row * (panel_height + label_height + PAD), PAD + col * (panel_width + PAD)
    if image is None:
      draw.rectangle([left, top, left + panel_width - 1, top + panel_height - 1], fill=FAILED_FILL)
    else:
      sheet.paste(Image.fromarray(image), (left, top))
    for j, line in enumerate(lines):
      y = top + panel_height + margin + j * line_height
      draw.text((left + margin, y), line, font=font, fill=ERROR_TEXT if failed else TEXT)
    panels.append(Panel(title, tuple(lines), (top, left, panel_height, panel_width),
                        (top + panel_height, left, label_height, panel_width)))
  return np.asarray(sheet), panels
