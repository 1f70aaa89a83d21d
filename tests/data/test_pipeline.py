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
