"""In-training evaluation: the config's metric protocols on the eval split, and sample grids.

``config.eval_protocols`` names protocols of ``lljax.metrics.protocols`` (``"honest"``, a paper's
exact recipe such as ``"llflow"``, or ``"name:option=value"``). Each eval enhances the first
``config.eval_limit`` examples of ``config.data.eval_split`` at full size and writes the means:
the honest protocol as ``eval/<metric>`` (psnr, ssim, mae), any other as
``eval/<protocol>/<metric>``; LPIPS is left to ``python -m lljax.evaluate``. The first
``config.num_samples`` examples form an input | output | target PNG grid under
``workdir/samples`` and in TensorBoard.
"""

import time

import jax
import numpy as np

from lljax import inference
from lljax.metrics import protocols as protocols_lib
from lljax.utils.images import make_grid, save_png, to_uint8


def metric_prefix(protocol):
  """``eval/`` for the honest protocol, ``eval/<spec>/`` for the others."""
  return "eval/" if protocol.spec == "honest" else f"eval/{protocol.spec}/"


class Evaluator:
  """``evaluator(params, step) -> {metric: mean}`` over the eval split, logged by ``writer``.

  ``examples()`` yields the eval examples (``lljax.data.pipeline.eval_examples``);
  ``model_inputs(example) -> (low, extra inputs)`` is the trainer's (INFWIDE: saturation and the
  example's kernel).
  """

  def __init__(self, config, family, model_kwargs, workdir, writer, examples, model_inputs):
    self.config, self.family, self.workdir, self.writer = config, family, workdir, writer
    self.examples, self.model_inputs = examples, model_inputs
    self.programs = inference.programs(config.model.name, model_kwargs, config.precision)
    self.protocols = [protocols_lib.get(spec) for spec in config.eval_protocols]

  def __call__(self, params, step):
    """``params``: host arrays (``parallel.host_tree``), put on this process's first device once."""
    start = time.time()
    params = jax.device_put(params, jax.local_devices()[0])
    sums, count, rows = {}, 0, []
    for example in self.examples():
      low, extra = self.model_inputs(example)
      output = inference.enhance_batch(self.family, self.programs, params, low, extra)[0]
      target = to_uint8(example["normal"][0])
      for protocol in self.protocols:
        measured = protocol.measure(output, target, with_lpips=False).metrics
        for name, value in measured.items():
          key = metric_prefix(protocol) + name
          sums[key] = sums.get(key, 0.0) + value
      count += 1
      if len(rows) < self.config.num_samples:
        rows.append([to_uint8(low[0]), to_uint8(np.clip(output, 0.0, 1.0)), target])
    if not count:
      return {}
    means = {k: v / count for k, v in sums.items()}
    self._write(step, means, rows, time.time() - start)
    return means

  def _write(self, step, means, rows, seconds):
    grid = make_grid(rows)
    samples = self.workdir / "samples"
    samples.mkdir(exist_ok=True)
    save_png(samples / f"step_{step:07d}.png", grid)
    self.writer.write_images(step, {"samples (input | output | target)": grid})
    self.writer.write_scalars(step, {**means, "eval/seconds": seconds})
    print("  eval @ step %d: %s" % (step, "  ".join(f"{k[5:]}={v:.4f}" for k, v in means.items())))
