"""Tests of the embedded_photos TFDS dataset, its photos and lljax.data.sources."""

import dataclasses
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lljax.data import sources
from lljax.imaging import camera
from lljax.imaging import lowlight
from lljax.imaging import motion
from lljax.imaging import photos
from tfds_builders.embedded_photos import embedded_photos_dataset_builder as builder_lib

REPO = pathlib.Path(__file__).resolve().parents[2]


def _examples(source):
  return [source[i] for i in range(len(source))]


def _raw_records(source):
  """name -> example with the PNG bytes left encoded."""
  skip = {'low': tfds.decode.SkipDecoding(), 'normal': tfds.decode.SkipDecoding()}
  raw = dataclasses.replace(source, decoders=skip)
  return {ex['name'].decode(): ex for ex in _examples(raw)}


def test_photos_load_and_split():
  assert set(photos.TRAIN_PHOTOS) | set(photos.TEST_PHOTOS) == set(photos.EMBEDDED_PHOTOS)
  assert not set(photos.TRAIN_PHOTOS) & set(photos.TEST_PHOTOS)
  assert set(photos.TEST_PHOTOS) == {'chelsea', 'coffee'}
  image = photos.load_photo('motorcycle_right')
  assert image.dtype == np.uint8 and image.shape == (500, 741, 3)
  with pytest.raises(KeyError, match='unknown photo'):
    photos.load_photo('lena')


def test_crop_to_multiple_is_top_left():
  image = np.arange(13 * 21 * 3).reshape(13, 21, 3)
  np.testing.assert_array_equal(builder_lib.crop_to_multiple(image), image[:8, :16])


def test_split_sizes_and_disjoint_photos(train_source, test_source):
  assert len(train_source) == 8 * len(photos.TRAIN_PHOTOS) == 40
  assert len(test_source) == 2 * len(photos.TEST_PHOTOS) == 4
  train_photos = {ex['photo'].decode() for ex in _raw_records(train_source).values()}
  test_photos = {ex['photo'].decode() for ex in _raw_records(test_source).values()}
  assert train_photos == set(photos.TRAIN_PHOTOS)
  assert test_photos == set(photos.TEST_PHOTOS)


def test_names_unique_and_well_formed(train_source, test_source):
  for source, variants in [(train_source, 8), (test_source, 2)]:
    records = _raw_records(source)
    assert len(records) == len(source)  # Unique names.
    expected = {f'{ex["photo"].decode()}_v{k:02d}' for ex in records.values()
                for k in range(variants)}
    assert set(records) == expected


def test_images_shapes_content_and_darkness(test_source, train_source):
  params = lowlight.LowLightParams()
  references = {name: builder_lib.crop_to_multiple(photos.load_photo(name))
                for name in photos.EMBEDDED_PHOTOS}
  for source in [train_source, test_source]:
    for ex in _examples(source):
      low, normal = ex['low'], ex['normal']
      assert low.dtype == normal.dtype == np.uint8
      assert low.shape == normal.shape and low.shape[2] == 3
      assert low.shape[0] % 8 == 0 and low.shape[1] % 8 == 0
      assert low.mean() < normal.mean()
      assert params.exposure_range[0] <= ex['exposure'] * (1 + 1e-6)
      assert ex['exposure'] <= params.exposure_range[1] * (1 + 1e-6)
      np.testing.assert_array_equal(normal, references[ex['photo'].decode()])


def test_low_image_is_the_documented_synthesis(test_source):
  ex = next(e for e in _examples(test_source) if e['name'] == b'coffee_v01')
  seed = builder_lib.variant_seed('coffee', 1)
  low, info = lowlight.synthesize_low_light(ex['normal'], seed)
  np.testing.assert_array_equal(ex['low'], low)
  for key in info:
    assert ex[key] == pytest.approx(info[key], rel=1e-6)


def test_reading_imports_no_tensorflow(embedded_data_dir):
  had_tensorflow = 'tensorflow' in sys.modules
  source = sources.open_source('embedded_photos/lowlight', 'test', embedded_data_dir)
  assert source[0]['low'].shape[-1] == 3
  if not had_tensorflow:
    assert 'tensorflow' not in sys.modules


# Builds a second copy (1 variant per train photo) in a fresh interpreter,
# reads it through lljax and checks that tensorflow was never imported (a
# fresh process, so the check holds even where tensorflow is installed).
_REBUILD = textwrap.dedent('''
    import sys
    from lljax.data import pipeline, sources
    from tfds_builders.embedded_photos import embedded_photos_dataset_builder as b
    config = b.EmbeddedPhotosConfig(name='lowlight_rebuild', lowlight=True,
                                    train_variants=1, test_variants=2)
    with sources._quiet_tfds():
      b.Builder(config=config, data_dir=sys.argv[1]).download_and_prepare()
    source = sources.open_source('embedded_photos/lowlight_rebuild', 'test', sys.argv[1])
    assert [e['name'] for e in pipeline.eval_examples(source)] == [
        'chelsea_v00', 'chelsea_v01', 'coffee_v00', 'coffee_v01']
    assert 'tensorflow' not in sys.modules
    print('OK')
''')


@pytest.fixture(scope='module')
def rebuilt_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('rebuild')
  result = subprocess.run([sys.executable, '-c', _REBUILD, str(data_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith('OK')
  return data_dir


def test_build_and_read_work_without_tensorflow(rebuilt_dir):
  info = json.loads(next(rebuilt_dir.glob('embedded_photos/*/1.0.0/dataset_info.json')).read_text())
  assert info['fileFormat'] == 'array_record'


def test_building_twice_gives_identical_examples(rebuilt_dir, embedded_data_dir):
  for split in ['train', 'test']:
    again = _raw_records(tfds.data_source('embedded_photos/lowlight_rebuild', split=split,
                                          data_dir=str(rebuilt_dir)))
    first = _raw_records(sources.open_source('embedded_photos/lowlight', split,
                                             embedded_data_dir))
    for name, ex in again.items():
      # Same PNG bytes (hence pixels) and the same metadata.
      assert ex.keys() == first[name].keys()
      for key, value in ex.items():
        assert value == first[name][key], (name, key)
    if split == 'test':
      # Both builds hold the same test keys, so TFDS's write-time shuffle
      # must give the same record order.
      assert list(again) == list(first)


def test_open_source_unprepared_dataset_error(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    sources.open_source('lol', 'train', data_dir=tmp_path)
  message = str(error.value)
  assert "'lol'" in message and str(tmp_path) in message
  assert 'python -m lljax.data.prepare lol --manual_dir' in message
  assert isinstance(error.value, sources.DatasetNotPreparedError)


def test_prepared_dirs_finds_configs_and_versions(tmp_path):
  for version_dir in ['lol/1.0.0', 'lol_v2/real/2.0.0', 'lol_v2/real/1.0.0.incomplete7']:
    (tmp_path / version_dir).mkdir(parents=True)
    (tmp_path / version_dir / 'dataset_info.json').write_text('{}')
  found = lambda *args: sorted(p.relative_to(tmp_path).as_posix()
                               for p in sources._prepared_dirs(tmp_path, *args))
  assert found('lol', None, None) == ['lol/1.0.0']
  assert found('lol_v2', 'real', None) == ['lol_v2/real/2.0.0']
  assert found('lol_v2', None, '2.0.0') == ['lol_v2/real/2.0.0']
  assert found('lol_v2', 'synthetic', None) == []
  assert found('gopro', None, None) == []


def test_ensure_embedded_is_idempotent(embedded_data_dir, capsys):
  path = sources.ensure_embedded('lowlight', embedded_data_dir)
  assert path == embedded_data_dir / 'embedded_photos' / 'lowlight' / '1.0.0'
  assert capsys.readouterr().out == ''  # Nothing rebuilt, nothing printed.
  leftovers = list((embedded_data_dir / 'embedded_photos').glob('.lowlight-build-*'))
  assert not leftovers


# ----------------------------------------------------------------------------
# The blur configs (built small: one variant per photo).

_SMALL_CONFIGS = {
    'blur': dict(blur=True),
    'lowlight_blur': dict(lowlight=True, blur=True),
    'night_blur': dict(night_noise=camera.CameraNoiseParams()),
}


@pytest.fixture(scope='module')
def blur_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('blur_configs')
  for name, flags in _SMALL_CONFIGS.items():
    config = builder_lib.EmbeddedPhotosConfig(
        name=f'{name}_small', train_variants=2, test_variants=1, train_photos=('rocket',),
        test_photos=('chelsea',), **flags)
    with sources._quiet_tfds():
      builder_lib.Builder(config=config, data_dir=data_dir).download_and_prepare()
  return data_dir


def test_configs_and_the_unchanged_lowlight_features():
  names = [c.name for c in builder_lib.Builder.BUILDER_CONFIGS]
  assert names == ['lowlight', 'blur', 'lowlight_blur', 'night_blur']  # lowlight stays default
  features = builder_lib.Builder(config='lowlight', data_dir='/nonexistent').info.features
  assert set(features) == {'low', 'normal', 'name', 'photo', 'exposure', 'photons', 'read_sigma'}


@pytest.mark.parametrize('name', sorted(_SMALL_CONFIGS))
def test_blur_configs_store_kernels_and_the_documented_synthesis(name, blur_dir):
  for split in ('train', 'test'):
    source = tfds.data_source(f'embedded_photos/{name}_small', split=split, data_dir=str(blur_dir))
    assert len(source) == (2 if split == 'train' else 1)
    for ex in _examples(source):
      seed = builder_lib.variant_seed(ex['photo'].decode(), int(ex['name'][-2:]))
      if name == 'blur':
        low, kernel, _ = motion.synthesize_blur(ex['normal'], seed)
      elif name == 'lowlight_blur':
        low, kernel, info = lowlight.synthesize_low_light_blur(ex['normal'], seed)
        assert ex['exposure'] == pytest.approx(info['exposure'], rel=1e-6)
      else:
        params = camera.CameraNoiseParams(kc=8.0 if split == 'test' else None)
        low, kernel, info = camera.synthesize_night_blur(ex['normal'], seed, params)
        assert ex['kc'] == info['kc'] and (split == 'train' or ex['kc'] == 8.0)
      np.testing.assert_array_equal(ex['low'], low)
      np.testing.assert_array_equal(ex['kernel'], kernel)
      assert ex['kernel'].shape == (37, 37) and ex['kernel'].sum() == pytest.approx(1, abs=1e-5)
