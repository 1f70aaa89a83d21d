"""Input pipelines over random-access sources (numpy only, no jax arrays).

A source is anything with `len(source)` and `source[i]` returning a dict
with uint8 HxWx3 arrays 'low' and 'normal' and a 'name' (str or bytes),
e.g. `lljax.data.sources.open_source(...)`.

Determinism: the global batch of step s depends only on (seed, s):
  * sample g = s * batch_size + row reads example perm_e[g % n] with
    e = g // n and perm_e a permutation of range(n) seeded by (seed, e);
  * the crop offset and flip of (s, row) come from an RNG seeded by
    (seed, s, row).
So restarting at `start_step=s` reproduces exactly the batches an
uninterrupted run would have produced from step s on, and process p of P
gets rows [p * B / P, (p + 1) * B / P) of that same global batch.
"""

from __future__ import annotations

from concurrent import futures
import dataclasses
import os
import queue
import threading
from typing import Any, Callable, Iterator, Mapping

import numpy as np

Example = Mapping[str, Any]
HostFn = Callable[[Example], Mapping[str, np.ndarray]]

# Distinct SeedSequence streams for shuffling and augmentation.
_SHUFFLE_STREAM = 0
_AUGMENT_STREAM = 1


def _as_str(value: Any) -> str:
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _to_float(array: Any) -> np.ndarray:
  """uint8 -> float32 / 255 in [0, 1]; other arrays unchanged."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) * np.float32(1.0 / 255.0)
  return array


def _full_fields(example: Example, host_fn: HostFn | None) -> dict[str, Any]:
  """'low', 'normal' and host_fn's outputs of one decoded example."""
  fields = {'low': np.asarray(example['low']), 'normal': np.asarray(example['normal'])}
  if fields['low'].shape != fields['normal'].shape:
    raise ValueError(
        f"example {_as_str(example['name'])!r}: low {fields['low'].shape} and "
        f"normal {fields['normal'].shape} differ in shape")
  if host_fn is not None:
    extra = dict(host_fn(example))
    clash = set(extra) & set(fields)
    if clash:
      raise ValueError(f'host_fn must not return keys {sorted(clash)}')
    fields.update(extra)
  return fields


def _crop_size(crop_size: int | tuple[int, int]) -> tuple[int, int]:
  if isinstance(crop_size, int):
    return crop_size, crop_size
  height, width = crop_size
  return int(height), int(width)


@dataclasses.dataclass(frozen=True)
class _TrainSpec:
  """Everything that fixes the content of a training batch."""

  source: Any
  batch_size: int
  crop: tuple[int, int]
  seed: int
  host_fn: HostFn | None
  flip: bool
  process_index: int
  process_count: int

  @property
  def local_batch(self) -> int:
    return self.batch_size // self.process_count

  def example_index(self, step: int, row: int) -> int:
    sample = step * self.batch_size + row
    epoch, position = divmod(sample, len(self.source))
    return int(_permutation(self.seed, epoch, len(self.source))[position])

  def make_row(self, step: int, row: int) -> dict[str, np.ndarray]:
    """Decoded, cropped, flipped, float fields of global row `row` of `step`."""
    example = self.source[self.example_index(step, row)]
    fields = _full_fields(example, self.host_fn)
    height, width = fields['low'].shape[:2]
    crop_h, crop_w = self.crop
    if height < crop_h or width < crop_w:
      raise ValueError(
          f"example {_as_str(example['name'])!r} is {height}x{width} (HxW), "
          f'smaller than the crop {crop_h}x{crop_w}')
    rng = np.random.default_rng([self.seed, step, row, _AUGMENT_STREAM])
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    flip = bool(rng.integers(0, 2)) and self.flip
    out = {}
    for key, value in fields.items():
      value = np.asarray(value)
      if value.ndim >= 2 and value.shape[:2] == (height, width):
        value = value[top:top + crop_h, left:left + crop_w]
        if flip:
          value = value[:, ::-1]
      out[key] = _to_float(value)
    return out


_PERMUTATIONS: dict[tuple[int, int, int], np.ndarray] = {}
_PERMUTATIONS_LOCK = threading.Lock()


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """Epoch-wise shuffle of range(n), seeded by (seed, epoch); cached."""
  key = (seed, epoch, n)
  with _PERMUTATIONS_LOCK:
    if key not in _PERMUTATIONS:
      if len(_PERMUTATIONS) > 64:
        _PERMUTATIONS.clear()
      rng = np.random.default_rng([seed, epoch, _SHUFFLE_STREAM])
      _PERMUTATIONS[key] = rng.permutation(n)
    return _PERMUTATIONS[key]


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  try:
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}
  except ValueError as e:
    raise ValueError(
        'cannot stack a batch: host_fn outputs must have the same shape for '
        f'every example after cropping ({e})') from e


class _Prefetcher:
  """Runs `produce(i)` for i = 0, 1, ... in a background thread.

  Keeps up to `depth` results ahead; re-raises the producer's exception in
  the consumer. `close()` (or garbage collection) stops the thread.
  """

  def __init__(self, produce: Callable[[int], Any], depth: int):
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(
        target=_prefetch_loop, args=(produce, self._queue, self._stop),
        daemon=True, name='lljax-prefetch')
    self._thread.start()

  def __iter__(self) -> _Prefetcher:
    return self

  def __next__(self) -> Any:
    if self._stop.is_set() and self._queue.empty():
      raise StopIteration
    ok, value = self._queue.get()
    if not ok:
      self.close()
      raise value
    return value

  def close(self) -> None:
    self._stop.set()

  def __del__(self):
    self.close()


def _prefetch_loop(produce: Callable[[int], Any], out: queue.Queue,
                   stop: threading.Event) -> None:
  # A free function so the thread holds no reference to the _Prefetcher.
  index = 0
  while not stop.is_set():
    try:
      item = (True, produce(index))
    except Exception as e:  # pylint: disable=broad-except  (re-raised in consumer)
      item = (False, e)
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        break
      except queue.Full:
        continue
    if not item[0]:
      return
    index += 1


def train_batches(
    source: Any,
    *,
    batch_size: int,
    crop_size: int | tuple[int, int],
    seed: int,
    start_step: int = 0,
    host_fn: HostFn | None = None,
    flip: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    prefetch: int = 2,
    num_threads: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of random-crop training batches, from `start_step` on.

  Each example is decoded at full size; `host_fn(example)` (if given) sees
  the full example (uint8 HxWx3 'low' and 'normal', plus the source's other
  fields) and returns extra arrays. Every field whose first two dims equal
  the image's (H, W) then gets the same random crop and horizontal flip.
  uint8 arrays are converted to float32 / 255; other dtypes are kept.

  Args:
    source: random-access source (see module docstring), len >= 1.
    batch_size: GLOBAL batch size, divisible by `process_count`.
    crop_size: crop height and width (int for square).
    seed: non-negative int; with the step it fixes every batch.
    start_step: index of the first batch to yield.
    host_fn: optional `example -> {key: array}`, run before cropping.
    flip: random horizontal flips (probability 1/2).
    process_index: this process's index p in [0, process_count).
    process_count: number of processes sharing the global batch.
    prefetch: batches prepared ahead in a background thread (0: none).
    num_threads: threads decoding the rows of a batch (default: CPU count).

  Yields:
    {'low': float32 [b, h, w, 3] in [0, 1], 'normal': same, **host_fn keys}
    with b = batch_size // process_count and (h, w) the crop size; the rows
    are rows [p * b, (p + 1) * b) of the global batch of that step.

  Raises:
    ValueError: (when the batch is made) an example is smaller than the crop.
  """
  if batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} not divisible by process_count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  if seed < 0 or start_step < 0:
    raise ValueError(f'seed ({seed}) and start_step ({start_step}) must be >= 0')
  if len(source) == 0:
    raise ValueError('empty source')
  spec = _TrainSpec(source, batch_size, _crop_size(crop_size), seed, host_fn,
                    flip, process_index, process_count)
  threads = min(num_threads or os.cpu_count() or 1, spec.local_batch)
  pool = futures.ThreadPoolExecutor(threads) if threads > 1 else None

  def produce(offset: int) -> dict[str, np.ndarray]:
    step = start_step + offset
    first = process_index * spec.local_batch
    rows = range(first, first + spec.local_batch)
    make = lambda row: spec.make_row(step, row)
    return _stack(list(pool.map(make, rows) if pool else map(make, rows)))

  if prefetch > 0:
    return _Prefetcher(produce, prefetch)
  return (produce(offset) for offset in _count())


def _count() -> Iterator[int]:
  index = 0
  while True:
    yield index
    index += 1


def _names(source: Any) -> list[str]:
  """Names of all examples; skips image decoding for TFDS sources."""
  features = getattr(getattr(source, 'dataset_info', None), 'features', None)
  if features is not None and dataclasses.is_dataclass(source):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    skip = {key: tfds.decode.SkipDecoding() for key, feature in features.items()
            if isinstance(feature, tfds.features.Image)}
    source = dataclasses.replace(source, decoders=skip)
  return [_as_str(source[i]['name']) for i in range(len(source))]


def eval_examples(
    source: Any,
    *,
    host_fn: HostFn | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
  """Full-size examples in a fixed order (sorted by name), one at a time.

  Args:
    source: random-access source (see module docstring).
    host_fn: optional `example -> {key: array}` on the full uint8 example.
    limit: yield only the first `limit` examples of the sorted order.

  Yields:
    {'low': float32 [1, H, W, 3] in [0, 1], 'normal': same, **host_fn keys
    (batch dim added; uint8 -> float32 / 255), 'name': str}.
  """
  names = _names(source)
  if len(set(names)) != len(names):
    raise ValueError('example names are not unique; eval order would be ambiguous')
  order = sorted(range(len(names)), key=names.__getitem__)
  for index in order[:limit]:
    example = source[index]
    fields = _full_fields(example, host_fn)
    out = {key: _to_float(value)[None] for key, value in fields.items()}
    out['name'] = names[index]
    yield out
