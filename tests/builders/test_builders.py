"""Builds every manual-download builder from its dummy_data tree and reads it back.

The fake trees (tfds_builders/<name>/dummy_data, written by
make_dummy_data.py) copy the official folder and file names of each dataset
with a few tiny images.
"""

import hashlib
import importlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import numpy as np
import pytest
from PIL import Image

from lljax.data import pipeline
from lljax.data import prepare
from lljax.data import sources
from lljax.imaging import camera
from lljax.imaging import manual

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILDERS = REPO / 'tfds_builders'

# name -> (train, test) example counts in the dummy trees.
EXPECTED = {
    'lol': (3, 2),
    'lol_v2/real': (3, 2),
    'lol_v2/synthetic': (3, 2),
    'lol_blur/low_blur_noise': (5, 2),
    'lol_blur/low_blur': (5, 2),
    'gopro/blur_gamma': (3, 2),
    'gopro/blur': (3, 2),
    'realblur_j': (3, 3),
    'nightshot/kc8': (3, 2),
    'nightshot/kc4': (3, 2),
}


def _dummy(name):
  return BUILDERS / name.split('/')[0] / 'dummy_data'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp('tfds')
  for name in EXPECTED:
    prepare.prepare(name, _dummy(name), out, quiet=True)
  return out


def _records(name, split, data_dir):
  source = sources.open_source(name, split, data_dir)
  return [source[i] for i in range(len(source))]


def _decode(path):
  return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_split_sizes_names_and_files(name, data_dir):
  root = _dummy(name)
  for split, count in zip(('train', 'test'), EXPECTED[name]):
    records = _records(name, split, data_dir)
    assert len(records) == count
    names = [r['name'].decode() for r in records]
    assert len(set(names)) == count
    for record in records:
      assert record['low'].dtype == np.uint8 and record['low'].shape == record['normal'].shape
      normal_file = record['normal_file'].decode()
      (normal_path,) = root.glob(f'*/{normal_file}') if not name.startswith('nightshot') else [
          root / normal_file]
      np.testing.assert_array_equal(record['normal'], _decode(normal_path))
      if 'low_file' in record:
        (low_path,) = root.glob(f"*/{record['low_file'].decode()}")
        np.testing.assert_array_equal(record['low'], _decode(low_path))


def _pair_ok(name, record):
  low, normal = record['low_file'].decode(), record['normal_file'].decode()
  dataset, _, config = name.partition('/')
  if dataset == 'lol':
    return low.replace('/low/', '/high/') == normal
  if dataset == 'lol_v2':
    return low.replace('Low/low', 'Normal/normal').replace('/Low/', '/Normal/') == normal
  if dataset == 'lol_blur':
    video, frame = record['video'].decode(), record['frame'].decode()
    return (low.endswith(f'{config}/{video}/{frame}.png')
            and normal.endswith(f'high_sharp_scaled/{video}/{frame}.png')
            and record['name'].decode() == f'{video}_{frame}')
  if dataset == 'gopro':
    scene, frame = record['scene'].decode(), record['frame'].decode()
    return (low == f'{low.split("/")[0]}/{scene}/{config}/{frame}.png'
            and normal == low.replace(f'/{config}/', '/sharp/'))
  if dataset == 'realblur_j':
    return (low.replace('/blur/blur_', '/gt/gt_') == normal
            and low.startswith('RealBlur-J_') and record['scene'].decode() in low)
  raise AssertionError(name)


@pytest.mark.parametrize('name', [n for n in sorted(EXPECTED) if not n.startswith('nightshot')])
def test_pairs_follow_the_official_pairing_rule(name, data_dir):
  for split in ('train', 'test'):
    for record in _records(name, split, data_dir):
      assert _pair_ok(name, record), (record['low_file'], record['normal_file'])


def test_realblur_splits_come_from_the_j_list_files(data_dir):
  lists = {}
  for split in ('train', 'test'):
    text = (_dummy('realblur_j') / f'RealBlur/RealBlur_J_{split}_list.txt').read_text()
    lists[split] = {line.split()[1] for line in text.splitlines() if line.strip()}
    got = {r['low_file'].decode() for r in _records('realblur_j', split, data_dir)}
    assert got == lists[split]


@pytest.mark.parametrize('name', ['lol', 'gopro/blur', 'nightshot/kc8'])
def test_metadata_records_sha256_of_every_file_read(name, data_dir):
  path = next((data_dir / name).glob('*/metadata.json'))
  meta = json.loads(path.read_text())
  assert meta['sources'][0]['kind'] == 'folder'
  root = next(p for p in _dummy(name).rglob('*') if p.is_dir() and p.name in (
      'LOLdataset', 'GOPRO_Large')) if 'nightshot' not in name else _dummy(name)
  for rel, sha in meta['files_sha256'].items():
    assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == sha
  assert meta['num_files'] == len(meta['files_sha256']) > 0
  lines = ''.join(f'{rel}\t{sha}\n' for rel, sha in sorted(meta['files_sha256'].items()))
  assert meta['files_digest'] == hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize('config, test_kc', [('kc8', 8.0), ('kc4', 4.0)])
def test_nightshot_inputs_are_the_documented_synthesis(config, test_kc, data_dir):
  from tfds_builders.nightshot import nightshot_dataset_builder as nightshot
  for split in ('train', 'test'):
    for record in _records(f'nightshot/{config}', split, data_dir):
      rel = record['normal_file'].decode().split('/', 2)[2]
      assert record['seed'] == nightshot.example_seed(split, rel)
      params = camera.CameraNoiseParams(kc=test_kc if split == 'test' else None)
      low, kernel, info = camera.synthesize_night_blur(record['normal'], int(record['seed']),
                                                       params)
      np.testing.assert_array_equal(record['low'], low)
      np.testing.assert_array_equal(record['kernel'], kernel)
      assert record['kernel'].sum() == pytest.approx(1, abs=1e-5)
      for key in ('kc', 'sigma_beta', 'sigma_r', 'dark_current'):
        assert record[key] == pytest.approx(info[key], rel=1e-6)
      if split == 'test':
        assert record['kc'] == test_kc
      else:
        assert 4 <= record['kc'] <= 15


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_read_back_through_the_pipeline(name, data_dir):
  source = sources.open_source(name, 'train', data_dir)
  batches = pipeline.train_batches(source, batch_size=4, crop_size=16, seed=0, rot90=True)
  batch = next(batches)
  batches.close()
  assert batch['low'].shape == batch['normal'].shape == (4, 16, 16, 3)
  examples = list(pipeline.eval_examples(sources.open_source(name, 'test', data_dir),
                                         pad=pipeline.PadRule(8)))
  assert len(examples) == EXPECTED[name][1]
  assert all(ex['low'].shape[1] % 8 == 0 for ex in examples)


def test_lol_v2_union_reads_as_one_source(data_dir):
  source = sources.open_source('lol_v2/real+lol_v2/synthetic', 'train', data_dir)
  assert len(source) == 6
  names = [ex['name'] for ex in pipeline.eval_examples(source)]
  assert names[0].startswith('lol_v2/real:low') and names[-1].startswith('lol_v2/synthetic:r')
  batches = pipeline.train_batches(source, batch_size=6, crop_size=16, seed=1)
  assert next(batches)['low'].shape == (6, 16, 16, 3)
  batches.close()


def test_unpaired_gopro_batches(data_dir):
  source = sources.open_source('gopro/blur_gamma', 'train', data_dir)
  batches = pipeline.train_batches(source, batch_size=3, crop_size=16, seed=0, unpaired=True,
                                   resize_short=24)
  batch = next(batches)
  batches.close()
  assert set(batch) == {'low', 'normal'} and batch['normal'].shape == (3, 16, 16, 3)


# ----------------------------------------------------------------------------
# Archives, prepare CLI and bad input.


def _zip_tree(folder, archive):
  with zipfile.ZipFile(archive, 'w') as z:
    for path in sorted(folder.rglob('*')):
      z.write(path, path.relative_to(folder).as_posix())


def test_archives_build_the_same_dataset_as_folders(tmp_path, data_dir):
  manual_dir = tmp_path / 'downloads'
  manual_dir.mkdir()
  _zip_tree(_dummy('lol'), manual_dir / 'LOLdataset.zip')
  with tarfile.open(manual_dir / 'RealBlur.tar.gz', 'w:gz') as t:
    t.add(_dummy('realblur_j') / 'RealBlur', arcname='RealBlur')
  out = tmp_path / 'tfds'
  (lol,) = prepare.prepare('lol', manual_dir, out, quiet=True)
  (realblur,) = prepare.prepare('realblur_j', manual_dir, out, quiet=True)
  for summary, archive in [(lol, 'LOLdataset.zip'), (realblur, 'RealBlur.tar.gz')]:
    (source,) = summary['sources']
    assert source['path'] == archive
    assert source['sha256'] == hashlib.sha256((manual_dir / archive).read_bytes()).hexdigest()
    name = summary['dataset']
    folder_meta = json.loads(next((data_dir / name).glob('*/metadata.json')).read_text())
    assert summary['files_digest'] == folder_meta['files_digest']
    for split in ('train', 'test'):
      a = {r['name']: r for r in _records(name, split, out)}
      b = {r['name']: r for r in _records(name, split, data_dir)}
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key]['low'], b[key]['low'])
  assert not list((out).glob('.*-build-*'))  # Temporary build and extraction removed.


def test_prepare_cli_skips_prepared_and_overwrites_on_request(tmp_path, capsys):
  out = tmp_path / 'tfds'
  args = ['lol', '--manual_dir', str(_dummy('lol')), '--data_dir', str(out), '--quiet']
  assert prepare.main(args) == 0
  first = capsys.readouterr().out
  assert 'lol: test 2, train 3' in first and 'read folder LOLdataset' in first
  assert prepare.main(args) == 0
  assert 'already prepared' in capsys.readouterr().out
  marker = out / 'lol' / '1.0.0' / 'old_build_marker'
  marker.write_text('x')
  assert prepare.main(args + ['--overwrite']) == 0
  assert not marker.exists()  # The version folder was replaced by the new build.
  assert (out / 'lol' / '1.0.0' / 'dataset_info.json').exists()
  assert not [p for p in (out / 'lol').iterdir() if p.name.startswith('.')]


@pytest.mark.parametrize('args, message', [
    (['lol'], 'lol needs --manual_dir'),
    (['lol', '--manual_dir', '/nonexistent/dir'], 'manual_dir /nonexistent/dir does not exist'),
    (['coco', '--manual_dir', '.'], "unknown dataset 'coco'"),
    (['lol', '--manual_dir', str(REPO / 'pyproject.toml')], 'pyproject.toml is a file; pass the folder'),
    (['lol_v2/raw', '--manual_dir', '.'], "lol_v2 has no config 'raw'; configs: real, synthetic"),
])
def test_prepare_cli_usage_errors(tmp_path, capsys, args, message):
  assert prepare.main(args + ['--data_dir', str(tmp_path)]) == 1
  assert message in capsys.readouterr().err


def _broken_copy(tmp_path, name):
  copy = tmp_path / 'manual'
  shutil.copytree(_dummy(name), copy)
  return copy


def _prepare_error(manual_dir, name, tmp_path):
  out = tmp_path / 'tfds'
  with pytest.raises(manual.ManualDataError) as error:
    prepare.prepare(name, manual_dir, out, quiet=True)
  # Nothing half-built is left behind.
  assert not (out / name.split('/')[0]).exists() or not list(
      (out / name.split('/')[0]).rglob('dataset_info.json'))
  assert not list(out.glob('.*-build-*'))
  return str(error.value)


def test_missing_target_is_an_error_naming_the_file(tmp_path):
  copy = _broken_copy(tmp_path, 'lol')
  (copy / 'LOLdataset/eval15/high/111.png').unlink()
  message = _prepare_error(copy, 'lol', tmp_path)
  assert message.endswith("LOLdataset/eval15/low/111.png: input image without its target '111'")


def test_size_mismatch_is_an_error_naming_both_files(tmp_path):
  copy = _broken_copy(tmp_path, 'gopro')
  path = copy / 'GOPRO_Large/test/GOPR0384_11_00/sharp/000002.png'
  Image.fromarray(np.zeros((20, 48, 3), np.uint8)).save(path)
  message = _prepare_error(copy, 'gopro/blur', tmp_path)
  assert 'size mismatch within a pair' in message
  assert 'blur/000002.png is 48x28 (WxH)' in message and 'sharp/000002.png is 48x20' in message


def test_corrupt_and_truncated_images_are_errors_naming_the_file(tmp_path):
  copy = _broken_copy(tmp_path, 'lol_blur')
  path = copy / 'LOL-Blur/train/low_blur_noise/0005/0031.png'
  path.write_bytes(path.read_bytes()[:-40])
  message = _prepare_error(copy, 'lol_blur/low_blur_noise', tmp_path)
  assert 'LOL-Blur/train/low_blur_noise/0005/0031.png: ' in message
  copy = tmp_path / 'night'
  shutil.copytree(_dummy('nightshot'), copy)
  jpeg = copy / 'NightShot/test_LR/0001.jpg'
  jpeg.write_bytes(jpeg.read_bytes()[:200])
  assert 'NightShot/test_LR/0001.jpg: ' in _prepare_error(copy, 'nightshot/kc8', tmp_path)


def test_wrong_layout_says_which_layout_was_expected(tmp_path):
  copy = _broken_copy(tmp_path, 'lol_v2')
  (copy / 'LOL-v2/Synthetic/Test/Normal').rename(copy / 'LOL-v2/Synthetic/Test/target')
  message = _prepare_error(copy, 'lol_v2/synthetic', tmp_path)
  assert 'wrong layout for LOL-v2 synthetic: missing Synthetic/Test/Normal' in message
  assert 'expected LOL-v2/Synthetic/{Train,Test}/{Low,Normal}/*.png' in message


def test_list_file_naming_a_missing_image_is_an_error(tmp_path):
  copy = _broken_copy(tmp_path, 'realblur_j')
  (copy / 'RealBlur/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene230/gt/gt_2.png').unlink()
  message = _prepare_error(copy, 'realblur_j', tmp_path)
  assert 'scene230/gt/gt_2.png: file not found (listed in RealBlur_J_test_list.txt line' in message


def test_grayscale_and_16_bit_images_are_converted_and_recorded(tmp_path):
  from lljax.utils import png16
  copy = _broken_copy(tmp_path, 'lol')
  gray = np.random.default_rng(0).integers(0, 256, (24, 40), dtype=np.uint8)
  Image.fromarray(gray).save(copy / 'LOLdataset/our485/high/5.png')
  deep = np.repeat((gray.astype(np.uint16) * 257)[..., None], 3, -1)
  (copy / 'LOLdataset/our485/low/5.png').write_bytes(png16.encode(deep))
  (summary,) = prepare.prepare('lol', copy, tmp_path / 'tfds', quiet=True)
  assert summary['converted'] == 2
  (record,) = [r for r in _records('lol', 'train', tmp_path / 'tfds') if r['name'] == b'5']
  np.testing.assert_array_equal(record['normal'], np.repeat(gray[..., None], 3, -1))
  np.testing.assert_array_equal(record['low'], record['normal'])


_NO_TF = textwrap.dedent('''
    import sys
    from lljax.data import prepare, sources
    assert prepare.main(['lol', '--manual_dir', sys.argv[1], '--data_dir', sys.argv[2],
                         '--quiet']) == 0
    assert len(sources.open_source('lol', 'test', sys.argv[2])) == 2
    assert 'tensorflow' not in sys.modules
    print('OK')
''')


def test_prepare_and_read_without_tensorflow(tmp_path):
  result = subprocess.run([sys.executable, '-c', _NO_TF, str(_dummy('lol')), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith('OK')


@pytest.mark.parametrize('builder', sorted({n.split('/')[0] for n in EXPECTED}))
def test_builder_package_has_the_tfds_files(builder):
  folder = BUILDERS / builder
  for name in (f'{builder}_dataset_builder.py', 'README.md', 'CITATIONS.bib', '__init__.py'):
    assert (folder / name).is_file(), name
  module = importlib.import_module(f'tfds_builders.{builder}')
  assert module.Builder.name == builder
  assert module.Builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()
