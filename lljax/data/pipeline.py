"""Input pipelines over random-access sources, on grain (numpy only, no jax arrays).

A source is anything with `len(source)` and `source[i]` returning a dict
with uint8 HxWx3 arrays 'low' (the degraded input) and 'normal' (the
reference) and a 'name' (str or bytes), e.g.
`lljax.data.sources.open_source(...)`. Unpaired sources may hold only one
of the two images (e.g. `sources.FolderSource`).

Training batches (`train_batches`) are a grain `MapDataset` over sample
indices, mapped by a function that reads, resizes, crops and augments one
example, read ahead by grain's thread pool and batched.

Determinism: the global batch of step s depends only on (seed, s):
  * sample g = s * batch_size + row reads example perm_e[g % n] with
    e = g // n and perm_e a permutation of range(n) seeded by (seed, e);
  * the crop offset and flips of (s, row) come from an RNG seeded by
    (seed, s, row).
So restarting at `start_step=s` reproduces exactly the batches an
uninterrupted run would have produced from step s on, and process p of P
gets rows [p * B / P, (p + 1) * B / P) of that same global batch. In
unpaired mode the 'normal' images form a second stream with its own
permutations and crops (seeded by further streams of the same seed).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence

import grain
import numpy as np
from PIL import Image

from lljax import tiling
from lljax.data import sources as sources_lib

Example = Mapping[str, Any]
HostFn = Callable[[Example], Mapping[str, np.ndarray]]

# Distinct SeedSequence streams for shuffling and augmentation.
_SHUFFLE_STREAM = 0
_AUGMENT_STREAM = 1
_SHUFFLE_STREAM_B = 2  # Unpaired mode: the 'normal' stream.
_AUGMENT_STREAM_B = 3
# Length of the (lazy) index dataset: far more samples than any run reads.
_ENDLESS = 2**62


def _as_str(value: Any) -> str:
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _to_float(array: Any) -> np.ndarray:
  """uint8 -> float32 / 255 in [0, 1] (a division, as torchvision's ``ToTensor``: multiplying by
  1/255 differs in the last bit for half the values); other arrays unchanged."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) / np.float32(255.0)
  return array


def _full_fields(example: Example, host_fn: HostFn | None,
                 keys: Sequence[str] = ('low', 'normal')) -> dict[str, Any]:
  """The image fields `keys` and host_fn's outputs of one decoded example."""
  missing = [key for key in keys if key not in example]
  if missing:
    raise ValueError(f"example {_as_str(example.get('name', '?'))!r} has no "
                     f"{', '.join(missing)} image (it has {', '.join(sorted(example))}); "
                     'unpaired sources need unpaired=True')
  fields = {key: np.asarray(example[key]) for key in keys}
  shapes = {key: value.shape for key, value in fields.items()}
  if len(set(shapes.values())) > 1:
    described = ' and '.join(f'{key} {shape}' for key, shape in shapes.items())
    raise ValueError(f"example {_as_str(example['name'])!r}: {described} differ in shape")
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


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 HxWxC so that its shorter side is `size`, keeping the aspect.

  As torchvision's `Resize(size)` on PIL images (DEvUDP / CRNet): the longer
  side becomes int(size * long / short); PIL bilinear, which low-pass
  filters (antialiases) when shrinking.
  """
  height, width = image.shape[:2]
  if min(height, width) == size:
    return image
  if height <= width:
    new_h, new_w = size, int(size * width / height)
  else:
    new_h, new_w = int(size * height / width), size
  resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
  return np.asarray(resized)


def _resize_example(example: Example, size: int) -> dict[str, Any]:
  """`resize_short_side` on every uint8 image of the example's image size."""
  shapes = [np.shape(v) for k, v in example.items()
            if k in ('low', 'normal') and isinstance(v, np.ndarray)]
  hw = shapes[0][:2] if shapes else None
  out = dict(example)
  for key, value in example.items():
    if (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3
        and value.shape[:2] == hw):
      out[key] = resize_short_side(value, size)
  return out


@dataclasses.dataclass(frozen=True)
class Augment:
  """Random crop and geometric augmentation of one training row.

  Attributes:
    crop: (height, width) of the crop.
    flip: horizontal flips (p = 1/2).
    vflip: vertical flips (p = 1/2).
    rot90: transposes (p = 1/2); with `flip` and `vflip` all 8 rotations
      and reflections are equally likely (BasicSR / LEDNet's augmentation).
      A transposed non-square crop is cut as (width, height) first.
    resize_short: resize each example so its shorter side is this before
      cropping (keeps the aspect ratio; DEvUDP: int(1.5 * crop)).
  """

  crop: tuple[int, int]
  flip: bool = True
  vflip: bool = False
  rot90: bool = False
  resize_short: int | None = None

  def apply(self, fields: Mapping[str, Any], rng: np.random.Generator,
            name: str) -> dict[str, np.ndarray]:
    """Crops and augments every field whose first two dims are the image's (H, W).

    Draw order (kept stable: the default options draw exactly top, left,
    flip): transpose (rot90 only), top, left, flip, vertical flip (vflip
    only). Other fields pass through; uint8 becomes float32 / 255.
    """
    reference = next(iter(fields.values()))
    height, width = np.shape(reference)[:2]
    transpose = self.rot90 and bool(rng.integers(0, 2))
    crop_h, crop_w = self.crop[::-1] if transpose else self.crop
    if height < crop_h or width < crop_w:
      raise ValueError(f'example {name!r} is {height}x{width} (HxW), smaller than the crop '
                       f'{crop_h}x{crop_w}')
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    flip = bool(rng.integers(0, 2)) and self.flip
    vflip = self.vflip and bool(rng.integers(0, 2))
    # Flip columns (flip), rows (vflip), then transpose: as tiling.transform's
    # (transpose, flip rows, flip columns), a transpose first swaps the flips.
    geometry = (True, flip, vflip) if transpose else (False, vflip, flip)
    out = {}
    for key, value in fields.items():
      value = np.asarray(value)
      if value.ndim >= 2 and value.shape[:2] == (height, width):
        value = tiling.transform(value[top:top + crop_h, left:left + crop_w], geometry)
      out[key] = _to_float(value)
    return out


_PERMUTATIONS: dict[tuple[int, int, int, int], np.ndarray] = {}
_PERMUTATIONS_LOCK = threading.Lock()


def _permutation(seed: int, epoch: int, n: int, stream: int = _SHUFFLE_STREAM) -> np.ndarray:
  """Epoch-wise shuffle of range(n), seeded by (seed, epoch, stream); cached."""
  key = (seed, epoch, n, stream)
  with _PERMUTATIONS_LOCK:
    if key not in _PERMUTATIONS:
      if len(_PERMUTATIONS) > 64:
        _PERMUTATIONS.clear()
      rng = np.random.default_rng([seed, epoch, stream])
      _PERMUTATIONS[key] = rng.permutation(n)
    return _PERMUTATIONS[key]


@dataclasses.dataclass(frozen=True)
class _TrainSpec:
  """Everything that fixes the content of a training batch."""

  source: Any
  batch_size: int
  seed: int
  host_fn: HostFn | None
  augment: Augment
  process_index: int
  process_count: int
  target_source: Any = None  # Unpaired mode: where the 'normal' stream reads.

  @property
  def local_batch(self) -> int:
    return self.batch_size // self.process_count

  def example_index(self, step: int, row: int, stream: int = _SHUFFLE_STREAM,
                    n: int | None = None) -> int:
    n = len(self.source) if n is None else n
    epoch, position = divmod(step * self.batch_size + row, n)
    return int(_permutation(self.seed, epoch, n, stream)[position])

  def _read(self, source: Any, index: int) -> Example:
    example = source[index]
    if self.augment.resize_short:
      example = _resize_example(example, self.augment.resize_short)
    return example

  def make_row(self, step: int, row: int) -> dict[str, np.ndarray]:
    """Decoded, cropped, augmented, float fields of global row `row` of `step`."""
    example = self._read(self.source, self.example_index(step, row))
    keys = ('low',) if self.target_source is not None else ('low', 'normal')
    fields = _full_fields(example, self.host_fn, keys)
    rng = np.random.default_rng([self.seed, step, row, _AUGMENT_STREAM])
    out = self.augment.apply(fields, rng, _as_str(example['name']))
    if self.target_source is not None:
      target = self.target_source
      other = self._read(target, self.example_index(step, row, _SHUFFLE_STREAM_B, len(target)))
      rng = np.random.default_rng([self.seed, step, row, _AUGMENT_STREAM_B])
      out.update(self.augment.apply(_full_fields(other, None, ('normal',)), rng,
                                    _as_str(other['name'])))
    return out


def _stack(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  try:
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}
  except ValueError as e:
    shapes = {key: sorted({np.shape(row[key]) for row in rows}, key=str) for key in rows[0]}
    raise ValueError(f'cannot stack rows into a batch (host_fn outputs of varying shape?): '
                     f'{shapes}') from e


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
    vflip: bool = False,
    rot90: bool = False,
    resize_short: int | None = None,
    unpaired: bool = False,
    target_source: Any = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of random-crop training batches, from `start_step` on.

  Each example is decoded at full size (and resized if `resize_short`);
  `host_fn(example)` (if given) sees the full example (uint8 HxWx3 'low'
  and 'normal', plus the source's other fields, e.g. a NightShot 'kernel')
  and returns extra arrays. Every field whose first two dims equal the
  image's (H, W) then gets the same random crop and flips. uint8 arrays are
  converted to float32 / 255; other dtypes are kept.

  Args:
    source: random-access source (see module docstring), len >= 1.
    batch_size: GLOBAL batch size, divisible by `process_count`.
    crop_size: crop height and width (int for square).
    seed: non-negative int; with the step it fixes every batch.
    start_step: index of the first batch to yield.
    host_fn: optional `example -> {key: array}`, run before cropping (in
      unpaired mode on the 'low' stream's example, whose 'normal' is then
      left undecoded for TFDS sources).
    flip: random horizontal flips (probability 1/2).
    process_index: this process's index p in [0, process_count).
    process_count: number of processes sharing the global batch.
    prefetch: batches read ahead by the background threads (0: none, read
      in the calling thread).
    num_threads: threads reading rows (default: CPU count).
    vflip: random vertical flips (probability 1/2).
    rot90: random transposes (probability 1/2): 90-degree rotations.
    resize_short: if set, each image is first resized so that its shorter
      side has this length, keeping the aspect ratio (PIL bilinear).
    unpaired: 'low' and 'normal' come from two independent streams (own
      permutations and crops), as unpaired GAN training needs.
    target_source: unpaired mode: the source of the 'normal' stream
      (default: `source`).

  Returns:
    An iterator (with `close()`) of {'low': float32 [b, h, w, 3] in [0, 1],
    'normal': same, **host_fn keys} with b = batch_size // process_count and
    (h, w) the crop size; the rows are rows [p * b, (p + 1) * b) of the
    global batch of that step.

  Raises:
    ValueError: bad arguments; (when the batch is made) an example smaller
      than the crop, or a pair whose images differ in size.
  """
  if batch_size % process_count:
    raise ValueError(f'batch_size {batch_size} not divisible by process_count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  if seed < 0 or start_step < 0:
    raise ValueError(f'seed ({seed}) and start_step ({start_step}) must be >= 0')
  if len(source) == 0:
    raise ValueError('empty source')
  if target_source is not None and not unpaired:
    raise ValueError('target_source is only used with unpaired=True')
  if unpaired:
    target_source = source if target_source is None else target_source
    if len(target_source) == 0:
      raise ValueError('empty target_source')
  augment = Augment(_crop_size(crop_size), flip=flip, vflip=vflip, rot90=rot90,
                    resize_short=resize_short)
  if unpaired:  # Each stream decodes only its own image.
    source = sources_lib.skip_decoding(source, ['normal'])
    target_source = sources_lib.skip_decoding(target_source, ['low'])
  spec = _TrainSpec(source, batch_size, seed, host_fn, augment, process_index,
                    process_count, target_source if unpaired else None)
  local_batch = spec.local_batch
  first_row = process_index * local_batch

  def row(sample: int) -> dict[str, np.ndarray]:
    offset, local_row = divmod(sample, local_batch)
    return spec.make_row(start_step + offset, first_row + local_row)

  threads = max(1, num_threads or os.cpu_count() or 1) if prefetch > 0 else 0
  options = grain.ReadOptions(num_threads=threads,
                              prefetch_buffer_size=prefetch * local_batch if threads else 0)
  dataset = (grain.MapDataset.range(_ENDLESS).map(row)
             .to_iter_dataset(options)
             .batch(local_batch, batch_fn=_stack))
  return iter(dataset)


# ----------------------------------------------------------------------------
# Evaluation.


@dataclasses.dataclass(frozen=True)
class PadRule:
  """How a model wants full images padded.

  Attributes:
    multiple: pad H and W up to multiples of this (1: no padding).
    mode: numpy pad mode: 'reflect' (LLFlow, LEDNet), 'edge' (replicate,
      INFWIDE's ResUNet), 'symmetric', 'constant' (zeros).
    position: 'bottom_right' (all padding after the image) or 'center'
      (split, the extra pixel after).
  """

  multiple: int = 1
  mode: str = 'reflect'
  position: str = 'bottom_right'

  def __post_init__(self):
    if self.multiple < 1:
      raise ValueError(f'multiple must be >= 1, got {self.multiple}')
    if self.mode not in ('reflect', 'edge', 'symmetric', 'constant'):
      raise ValueError(f'unknown pad mode {self.mode!r}')
    if self.position not in ('bottom_right', 'center'):
      raise ValueError(f'unknown pad position {self.position!r}')

  def padding(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) for an image of this size."""
    extra_h, extra_w = -height % self.multiple, -width % self.multiple
    if self.position == 'center':
      return (extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)
    return (0, extra_h), (0, extra_w)

  def pad(self, image: np.ndarray) -> np.ndarray:
    """Pads [H, W, ...] (or [N, H, W, ...] when `image.ndim == 4`)."""
    spatial = 1 if image.ndim == 4 else 0
    height, width = image.shape[spatial:spatial + 2]
    (top, bottom), (left, right) = self.padding(height, width)
    if not (top or bottom or left or right):
      return image
    mode = self.mode
    if mode == 'reflect' and min(height, width) < 2:
      mode = 'edge'  # Reflection needs 2 pixels.
    widths = [(0, 0)] * image.ndim
    widths[spatial], widths[spatial + 1] = (top, bottom), (left, right)
    return np.pad(image, widths, mode=mode)


def pad_rule(family: Any) -> PadRule:
  """The padding rule of a model family (lljax.models.<name>).

  Reads `PAD_MULTIPLE` and, where a family defines them, `PAD_MODE`
  (default 'reflect') and `PAD_POSITION` (default 'bottom_right').
  """
  return PadRule(int(getattr(family, 'PAD_MULTIPLE', 1)),
                 getattr(family, 'PAD_MODE', 'reflect'),
                 getattr(family, 'PAD_POSITION', 'bottom_right'))


def unpad(output: np.ndarray, example: Mapping[str, Any]) -> np.ndarray:
  """Crops a model output [N, H', W', C] back to the example's unpadded window."""
  top, left, height, width = (int(v) for v in example['window'])
  return output[:, top:top + height, left:left + width]


def eval_examples(
    source: Any,
    *,
    host_fn: HostFn | None = None,
    limit: int | None = None,
    pad: PadRule | None = None,
) -> Iterator[dict[str, Any]]:
  """Full-size examples in a fixed order (sorted by name), one at a time.

  Args:
    source: random-access source (see module docstring); unpaired sources
      (no 'normal', e.g. `FolderSource`) yield 'low' only.
    host_fn: optional `example -> {key: array}` on the full uint8 example.
    limit: yield only the first `limit` examples of the sorted order.
    pad: optional padding rule (see `pad_rule(family)`): 'low' and the
      host_fn arrays of the image's size are padded (host_fn sees the
      unpadded image); 'normal' is not. `unpad(output, example)` crops a
      model output back.

  Yields:
    {'low': float32 [1, H, W, 3] in [0, 1], 'normal': same (if the source
    has it), **host_fn keys (batch dim added; uint8 -> float32 / 255),
    'name': str} plus, with `pad`, 'window': (top, left, H, W) of the
    image inside the padded arrays.
  """
  names = sources_lib.example_names(source)
  if len(set(names)) != len(names):
    raise ValueError('example names are not unique; eval order would be ambiguous')
  order = sorted(range(len(names)), key=names.__getitem__)
  for index in order[:limit]:
    example = source[index]
    keys = ('low', 'normal') if 'normal' in example else ('low',)
    fields = _full_fields(example, host_fn, keys)
    height, width = fields['low'].shape[:2]
    out = {}
    for key, value in fields.items():
      value = np.asarray(value)
      if pad is not None and key != 'normal' and value.ndim >= 2 and value.shape[:2] == (
          height, width):
        value = pad.pad(value)
      out[key] = _to_float(value)[None]
    out['name'] = names[index]
    if pad is not None:
      (top, _), (left, _) = pad.padding(height, width)
      out['window'] = (top, left, height, width)
    yield out
