"""The measurements behind choices in lljax's code (XLA:CPU behaviour, host-side helpers).

  python benchmarks/xla_cpu_probes.py                 # every probe, one table each
  python benchmarks/xla_cpu_probes.py --only depthwise microbatch_loop

* ``depthwise``: a 3x3 depthwise convolution of a (1, 400, 600, 144) map (UPT-Flow's encoder at
  400x600) as XLA's grouped convolution and as ``lljax.nn.conv.depthwise_taps`` (9 shifted
  multiply-adds), the choice ``Conv2d`` makes on the CPU backend.
* ``microbatch_loop``: the gradient of a 6-layer 3x3 conv net (32 channels, batch 8 of 64x64)
  whole, and in 2 microbatches through ``lljax.trainers.steps.accumulate_gradients`` with
  ``loop="scan"`` and ``loop="unrolled"`` (the CPU's choice, ``steps.backend_choices``).
* ``rng_compile``: compile time of ``jax.random.normal`` for distinct shapes (why
  ``lljax.nn.init`` draws initial values on the host).
* ``srgb_lut``: ``lljax.imaging.srgb.u8_to_linear`` (a 256-entry table) against evaluating the
  sRGB curve per pixel on a 1000x1000 RGB image.
* ``png16_paeth``: ``lljax.utils.png16.decode`` of a 1052x744 16-bit RGBA PNG whose rows all use
  the Paeth filter (its slow path: one anti-diagonal at a time), and of the same pixels with the
  'Up' filter that ``png16.encode`` writes (vectorised row by row).

Times are medians of ``--repeats`` calls after a warm-up call (compilation excluded, except in
``rng_compile``, which times compilation).
"""

import argparse
import statistics
import time

import numpy as np


def median_time(fn, repeats, sync=lambda out: out):
  """Median seconds of ``repeats`` calls of ``fn()`` after one warm-up call."""
  sync(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    sync(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def depthwise(repeats):
  import jax  # pylint: disable=import-outside-toplevel

  from lljax.nn.conv import depthwise_taps  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  x = rng.standard_normal((1, 400, 600, 144), np.float32)
  k = rng.standard_normal((3, 3, 1, 144), np.float32)
  pads = ((1, 1), (1, 1))
  grouped = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=144))
  taps = jax.jit(lambda x, k: depthwise_taps(x, k, pads))
  np.testing.assert_allclose(grouped(x, k), taps(x, k), rtol=1e-4, atol=1e-4)
  print("| 3x3 depthwise conv, (1, 400, 600, 144), float32 | ms |\n|---|---|")
  for name, fn in (("grouped convolution (lax.conv_general_dilated)", grouped), ("depthwise_taps", taps)):
    print(f"| {name} | {1e3 * median_time(lambda fn=fn: fn(x, k), repeats, jax.block_until_ready):.0f} |")


def microbatch_loop(repeats):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from lljax.trainers import steps  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  widths = [3, 32, 32, 32, 32, 32, 3]
  params = [rng.standard_normal((3, 3, a, b), np.float32) / np.sqrt(9 * a) for a, b in zip(widths, widths[1:])]
  batch = {"x": rng.random((8, 64, 64, 3), np.float32), "y": rng.random((8, 64, 64, 3), np.float32)}

  def loss(params, batch):
    h = batch["x"]
    for i, k in enumerate(params):
      h = jax.lax.conv_general_dilated(h, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
      h = jax.nn.relu(h) if i < len(params) - 1 else h
    return jnp.mean((h - batch["y"]) ** 2), ()

  grad_fn = jax.value_and_grad(loss, has_aux=True)
  cases = [("whole batch", jax.jit(lambda p, b: grad_fn(p, b)))]
  for loop in ("scan", "unrolled"):
    cases.append((f"2 microbatches, loop={loop}",
                  jax.jit(lambda p, b, loop=loop: steps.accumulate_gradients(grad_fn, p, b, 2, loop=loop))))
  print("| gradient of a 6-layer conv net, batch 8 of 64x64 | s/step |\n|---|---|")
  for name, fn in cases:
    print(f"| {name} | {median_time(lambda fn=fn: fn(params, batch), repeats, jax.block_until_ready):.3f} |")


def rng_compile(repeats):
  import jax  # pylint: disable=import-outside-toplevel

  key = jax.random.key(0)
  seconds = []
  for i in range(max(repeats, 3)):
    shape = (3, 3, 16 + i, 32 + i)  # a distinct shape: a new compilation
    fn = jax.jit(lambda k, shape=shape: jax.random.normal(k, shape))
    t0 = time.perf_counter()
    fn.lower(key).compile()
    seconds.append(time.perf_counter() - t0)
  print("| jax.random.normal, conv-kernel shapes | compile s per shape (median, min-max) |\n|---|---|")
  print(f"| {len(seconds)} distinct shapes | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) |")


def srgb_lut(repeats):
  from lljax.imaging import srgb  # pylint: disable=import-outside-toplevel

  image = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
  np.testing.assert_allclose(srgb.u8_to_linear(image), srgb.srgb_to_linear(image / 255.0), rtol=1e-12)
  print("| uint8 sRGB -> linear, 1000x1000x3 | ms |\n|---|---|")
  for name, fn in (("u8_to_linear (lookup table)", lambda: srgb.u8_to_linear(image)),
                   ("srgb_to_linear(image / 255) (the curve per pixel)", lambda: srgb.srgb_to_linear(image / 255.0))):
    print(f"| {name} | {1e3 * median_time(fn, repeats):.1f} |")


def png16_paeth(repeats):
  import struct  # pylint: disable=import-outside-toplevel
  import zlib  # pylint: disable=import-outside-toplevel

  from lljax.utils import png16  # pylint: disable=import-outside-toplevel

  height, width = 744, 1052
  rng = np.random.default_rng(0)
  filtered = rng.integers(0, 256, (height, width * 8), dtype=np.uint8)  # any bytes are valid filtered data
  raw = np.concatenate([np.full((height, 1), 4, np.uint8), filtered], axis=1)  # filter 4: Paeth
  chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
  paeth = b"".join([b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)),
                    chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)), chunk(b"IEND", b"")])
  up = png16.encode(png16.decode(paeth))
  print(f"| png16.decode, {width}x{height} 16-bit RGBA | ms |\n|---|---|")
  for name, data in (("Paeth rows (anti-diagonal sweep)", paeth), ("'Up' rows (png16.encode's filter)", up)):
    print(f"| {name} | {1e3 * median_time(lambda data=data: png16.decode(data), repeats):.0f} |")


PROBES = {"depthwise": depthwise, "microbatch_loop": microbatch_loop, "rng_compile": rng_compile,
          "srgb_lut": srgb_lut, "png16_paeth": png16_paeth}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--only", nargs="+", choices=sorted(PROBES), default=list(PROBES))
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  for name in args.only:
    PROBES[name](args.repeats)
    print()


if __name__ == "__main__":
  main()
