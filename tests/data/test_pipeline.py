"""Tests of lljax.data.pipeline (train batches and eval examples)."""

import itertools
import threading

import numpy as np
import pytest

from lljax.data import pipeline


def _coded_image(example_id: int, height: int, width: int) -> np.ndarray:
  """uint8 HxWx3 whose pixel (y, x) is (y, x, id): crops reveal their origin."""
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([y, x, np.full_like(y, example_id)], -1).astype(np.uint8)


class ListSource:
  """Minimal random-access source over in-memory examples."""

  def __init__(self, sizes, names=None):
    self.examples = []
    for i, (height, width) in enumerate(sizes):
      low = _coded_image(i, height, width)
      name = names[i] if names else f'ex{i:02d}'
      self.examples.append({'low': low, 'normal': 255 - low, 'name': name.encode()})

  def __len__(self):
    return len(self.examples)

  def __getitem__(self, index):
    return dict(self.examples[index])


SIZES = [(40 + 3 * i, 50 + 4 * i) for i in range(5)]


def _take(iterator, count):
  batches = list(itertools.islice(iterator, count))
  iterator.close()
  return batches


def _decode(crop):
  """(y0, x0, id, flipped) of one float crop of a coded image."""
  codes = np.round(crop * 255).astype(int)
  flipped = codes[0, 1, 1] < codes[0, 0, 1]
  x0 = codes[0, -1, 1] if flipped else codes[0, 0, 1]
  return codes[0, 0, 0], x0, codes[0, 0, 2], flipped


def test_shapes_dtypes_and_ranges():
  (batch,) = _take(pipeline.train_batches(ListSource(SIZES), batch_size=6,
                                          crop_size=(32, 40), seed=0), 1)
  assert set(batch) == {'low', 'normal'}
  for value in batch.values():
    assert value.shape == (6, 32, 40, 3) and value.dtype == np.float32
    assert value.min() >= 0 and value.max() <= 1


def test_all_aligned_fields_share_crop_and_flip():
  source = ListSource(SIZES)
  seen_shapes = []

  def host_fn(example):
    assert example['low'].dtype == np.uint8
    seen_shapes.append(example['low'].shape)
    return {'low_copy': example['low'].copy(), 'full_hw': np.array(example['low'].shape[:2])}

  batches = _take(pipeline.train_batches(source, batch_size=5, crop_size=24, seed=3,
                                         host_fn=host_fn), 4)
  assert set(seen_shapes) <= set((h, w, 3) for h, w in SIZES)  # Full images.
  for batch in batches:
    np.testing.assert_array_equal(batch['low_copy'], batch['low'])
    np.testing.assert_allclose(batch['normal'], 1 - batch['low'], atol=1e-6)
    for row in range(5):
      y0, x0, example_id, flipped = _decode(batch['low'][row])
      np.testing.assert_array_equal(batch['full_hw'][row], SIZES[example_id])
      # The crop is exactly the window at (y0, x0) of that example.
      window = source[example_id]['low'][y0:y0 + 24, x0:x0 + 24]
      expected = window[:, ::-1] if flipped else window
      np.testing.assert_array_equal(np.round(batch['low'][row] * 255), expected)


def test_crops_and_flips_vary_and_flip_can_be_disabled():
  rows = [_decode(crop) for batch in _take(pipeline.train_batches(
      ListSource(SIZES), batch_size=5, crop_size=16, seed=0), 8) for crop in batch['low']]
  assert 10 < sum(flipped for *_, flipped in rows) < 30
  assert len({(y0, x0) for y0, x0, *_ in rows}) > 20
  rows = [_decode(crop) for batch in _take(pipeline.train_batches(
      ListSource(SIZES), batch_size=5, crop_size=16, seed=0, flip=False), 4)
          for crop in batch['low']]
  assert not any(flipped for *_, flipped in rows)


def _assert_batches_equal(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_deterministic_given_seed():
  make = lambda seed, **kw: _take(pipeline.train_batches(
      ListSource(SIZES), batch_size=4, crop_size=20, seed=seed, **kw), 5)
  _assert_batches_equal(make(1), make(1))
  _assert_batches_equal(make(1), make(1, prefetch=0, num_threads=1))
  assert not np.array_equal(make(1)[0]['low'], make(2)[0]['low'])


def test_restart_reproduces_uninterrupted_batches():
  # 5 examples, batch 4: batches straddle epoch boundaries.
  uninterrupted = _take(pipeline.train_batches(ListSource(SIZES), batch_size=4,
                                               crop_size=20, seed=5), 8)
  resumed = _take(pipeline.train_batches(ListSource(SIZES), batch_size=4, crop_size=20,
                                         seed=5, start_step=5), 3)
  _assert_batches_equal(uninterrupted[5:], resumed)


def test_each_epoch_visits_every_example_once():
  ids = np.concatenate([[_decode(crop)[2] for crop in batch['low']] for batch in _take(
      pipeline.train_batches(ListSource(SIZES), batch_size=3, crop_size=16, seed=0), 5)])
  epochs = ids.reshape(3, 5)  # 15 samples = 3 epochs of 5.
  for epoch in epochs:
    assert sorted(epoch) == list(range(5))
  assert len({tuple(epoch) for epoch in epochs}) > 1  # Reshuffled per epoch.


def test_processes_partition_the_global_batch():
  make = lambda **kw: _take(pipeline.train_batches(
      ListSource(SIZES), batch_size=6, crop_size=20, seed=9, **kw), 3)
  global_batches = make()
  local = [make(process_index=p, process_count=2) for p in range(2)]
  for step, batch in enumerate(global_batches):
    for key in batch:
      assert local[0][step][key].shape[0] == 3
      np.testing.assert_array_equal(
          np.concatenate([local[0][step][key], local[1][step][key]]), batch[key])


@pytest.mark.parametrize('prefetch', [0, 2])
def test_too_small_image_names_example_and_sizes(prefetch):
  source = ListSource([(20, 30)], names=['tiny_v00'])
  batches = pipeline.train_batches(source, batch_size=2, crop_size=32, seed=0,
                                   prefetch=prefetch)
  with pytest.raises(ValueError, match=r"'tiny_v00' is 20x30.*crop 32x32"):
    next(batches)


def test_invalid_arguments():
  with pytest.raises(ValueError, match='divisible'):
    pipeline.train_batches(ListSource(SIZES), batch_size=5, crop_size=8, seed=0,
                           process_count=2)
  with pytest.raises(ValueError, match='process_index'):
    pipeline.train_batches(ListSource(SIZES), batch_size=4, crop_size=8, seed=0,
                           process_index=2, process_count=2)


def test_prefetch_threads_stop_on_close():
  before = set(threading.enumerate())
  batches = pipeline.train_batches(ListSource(SIZES), batch_size=2, crop_size=8, seed=0,
                                   num_threads=2)
  next(batches)
  readers = lambda: [t for t in set(threading.enumerate()) - before
                     if t.name.startswith('grain-prefetch')]
  assert readers()
  batches.close()
  for thread in readers():
    thread.join(timeout=5)
  assert not readers()
  with pytest.raises(ValueError, match='closed'):
    next(batches)


def test_eval_examples_sorted_full_size_with_host_fn():
  names = ['c', 'a', 'd', 'b']
  source = ListSource(SIZES[:4], names=names)
  host_fn = lambda ex: {'low_copy': ex['low'].copy(), 'tag': np.float32(7)}
  examples = list(pipeline.eval_examples(source, host_fn=host_fn))
  assert [ex['name'] for ex in examples] == ['a', 'b', 'c', 'd']
  for ex in examples:
    height, width = SIZES[names.index(ex['name'])]
    assert ex['low'].shape == ex['normal'].shape == (1, height, width, 3)
    assert ex['low'].dtype == np.float32
    np.testing.assert_array_equal(ex['low_copy'], ex['low'])
    assert ex['tag'].shape == (1,)
  limited = list(pipeline.eval_examples(source, limit=2))
  assert [ex['name'] for ex in limited] == ['a', 'b']


def test_on_the_embedded_dataset(train_source, test_source):
  (batch,) = _take(pipeline.train_batches(train_source, batch_size=4, crop_size=64,
                                          seed=0), 1)
  assert batch['low'].shape == batch['normal'].shape == (4, 64, 64, 3)
  assert batch['low'].dtype == np.float32
  assert batch['low'].mean() < batch['normal'].mean()
  examples = list(pipeline.eval_examples(test_source))
  assert [ex['name'] for ex in examples] == [
      'chelsea_v00', 'chelsea_v01', 'coffee_v00', 'coffee_v01']
  assert examples[0]['low'].shape == (1, 296, 448, 3)
  assert len(list(pipeline.eval_examples(test_source, limit=1))) == 1


def _transform_of(crop, window):
  """Which of the 8 flips/transposes maps `window` to `crop` (None if none)."""
  for transpose in (False, True):
    for hflip in (False, True):
      for vflip in (False, True):
        candidate = window[:, ::-1] if hflip else window
        candidate = candidate[::-1] if vflip else candidate
        candidate = np.swapaxes(candidate, 0, 1) if transpose else candidate
        if candidate.shape == crop.shape and np.array_equal(candidate, crop):
          return transpose, hflip, vflip
  return None


def test_rot90_and_vflip_give_all_eight_transforms_of_aligned_windows():
  source = ListSource(SIZES)
  batches = _take(pipeline.train_batches(source, batch_size=5, crop_size=(12, 16), seed=1,
                                         vflip=True, rot90=True), 12)
  seen = set()
  for batch in batches:
    assert batch['low'].shape == (5, 12, 16, 3)
    np.testing.assert_allclose(batch['normal'], 1 - batch['low'], atol=1e-6)
    for crop in np.round(batch['low'] * 255).astype(np.uint8):
      full = source[int(crop[0, 0, 2])]['low']
      # Find the window: the crop's pixel values are (y, x) coordinates.
      ys, xs = crop[..., 0], crop[..., 1]
      window = full[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
      transform = _transform_of(crop, window)
      assert transform is not None
      seen.add(transform)
  assert len(seen) == 8


def test_default_augmentation_draws_are_unchanged_by_the_new_options():
  make = lambda **kw: _take(pipeline.train_batches(ListSource(SIZES), batch_size=4,
                                                   crop_size=20, seed=3, **kw), 3)
  plain, with_vflip = make(), make(vflip=True)
  for a, b in zip(plain, with_vflip):
    # Same windows and horizontal flips; vertical flips added on top.
    for crop_a, crop_b in zip(a['low'], b['low']):
      assert np.array_equal(crop_a, crop_b) or np.array_equal(crop_a, crop_b[::-1])


def test_resize_short_keeps_the_aspect_before_cropping():
  assert pipeline.resize_short_side(np.zeros((40, 100, 3), np.uint8), 30).shape == (30, 75, 3)
  assert pipeline.resize_short_side(np.zeros((90, 60, 3), np.uint8), 30).shape == (45, 30, 3)
  source = ListSource([(40, 100)])
  seen = []

  def host_fn(example):
    seen.append(example['low'].shape)
    return {}

  (batch,) = _take(pipeline.train_batches(source, batch_size=2, crop_size=24, seed=0,
                                          resize_short=30, host_fn=host_fn), 1)
  assert batch['low'].shape == (2, 24, 24, 3)
  assert set(seen) == {(30, 75, 3)}  # host_fn sees the resized image.
  with pytest.raises(ValueError, match='smaller than the crop'):
    next(pipeline.train_batches(source, batch_size=1, crop_size=32, seed=0, resize_short=30,
                                prefetch=0))


def test_unpaired_streams_are_independent_and_deterministic():
  source = ListSource(SIZES)
  make = lambda **kw: _take(pipeline.train_batches(source, batch_size=5, crop_size=16, seed=2,
                                                   unpaired=True, **kw), 6)
  batches = make()
  pairs = []
  for batch in batches:
    for low, normal in zip(batch['low'], batch['normal']):
      pairs.append((_decode(low)[2], 255 - int(round(normal[0, 0, 2] * 255))))
  low_ids = [p[0] for p in pairs]
  normal_ids = [p[1] for p in pairs]
  # Each stream is its own epoch-wise shuffle of all 5 examples...
  for epoch in range(6):
    assert sorted(low_ids[5 * epoch:5 * epoch + 5]) == list(range(5))
    assert sorted(normal_ids[5 * epoch:5 * epoch + 5]) == list(range(5))
  # ...and the two disagree (not the paired order).
  assert sum(a != b for a, b in pairs) > 10
  _assert_batches_equal(batches, make())
  _assert_batches_equal(batches[4:], _take(pipeline.train_batches(
      source, batch_size=5, crop_size=16, seed=2, unpaired=True, start_step=4), 2))


def test_unpaired_target_source_and_argument_checks():
  lows = ListSource(SIZES[:2])
  targets = ListSource(SIZES[2:])
  (batch,) = _take(pipeline.train_batches(lows, batch_size=4, crop_size=16, seed=0,
                                          unpaired=True, target_source=targets), 1)
  normal_ids = {255 - int(round(n[0, 0, 2] * 255)) for n in batch['normal']}
  assert normal_ids <= {0, 1, 2}  # ids inside `targets` (its own numbering)
  unpaired_only = ListSource(SIZES[:1])
  del unpaired_only.examples[0]['normal']
  with pytest.raises(ValueError, match="'ex00' has no normal image .*unpaired=True"):
    next(pipeline.train_batches(unpaired_only, batch_size=1, crop_size=8, seed=0, prefetch=0))
  with pytest.raises(ValueError, match='only used with unpaired'):
    pipeline.train_batches(lows, batch_size=2, crop_size=8, seed=0, target_source=targets)


def test_pad_rules():
  image = np.arange(5 * 7).reshape(5, 7, 1).astype(np.float32)
  rule = pipeline.PadRule(4, 'reflect')
  padded = rule.pad(image)
  assert padded.shape == (8, 8, 1)
  np.testing.assert_array_equal(padded[:5, :7], image)
  np.testing.assert_array_equal(padded[5, :7], image[3])  # Reflection.
  center = pipeline.PadRule(8, 'edge', 'center')
  assert center.padding(5, 7) == ((1, 2), (0, 1))
  padded = center.pad(image[None])
  assert padded.shape == (1, 8, 8, 1)
  example = {'window': (1, 0, 5, 7)}
  np.testing.assert_array_equal(pipeline.unpad(padded, example)[0], image)
  assert pipeline.PadRule(1).pad(image) is image
  with pytest.raises(ValueError, match='pad mode'):
    pipeline.PadRule(8, 'wrap')


def test_pad_rule_of_a_model_family():
  from lljax.models import llflow
  assert pipeline.pad_rule(llflow) == pipeline.PadRule(8, 'reflect', 'bottom_right')


def test_eval_examples_pad_inputs_not_targets():
  source = ListSource([(13, 21)], names=['x'])
  host_fn = lambda ex: {'low_copy': ex['low'].copy(), 'scalar': np.float32(1)}
  (ex,) = pipeline.eval_examples(source, host_fn=host_fn, pad=pipeline.PadRule(8))
  assert ex['low'].shape == ex['low_copy'].shape == (1, 16, 24, 3)
  assert ex['normal'].shape == (1, 13, 21, 3)
  assert ex['window'] == (0, 0, 13, 21)
  np.testing.assert_allclose(pipeline.unpad(ex['low'], ex), 1 - ex['normal'], atol=1e-6)
