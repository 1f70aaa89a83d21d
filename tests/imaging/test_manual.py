"""Tests of lljax.imaging.manual and finder: manual downloads, archives, checked reading."""

import hashlib
import io
import pathlib
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from lljax.imaging import finder
from lljax.imaging import manual
from lljax.utils import png16

LAYOUT = manual.Layout(
    dataset='Toy',
    description='Toy/{train,test}/{low,high}/<n>.png',
    required_dirs=('train/low', 'train/high', 'test/low', 'test/high'),
    archives=('Toy.zip', 'Toy.tar.gz'),
)


def _png(path, image, **kwargs):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, **kwargs)
  return path


def _rgb(seed, height=6, width=8):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _toy_tree(base):
  for split in ('train', 'test'):
    for n in range(2):
      for side in ('low', 'high'):
        _png(base / f'Toy/{split}/{side}/{n}.png', _rgb(hash((split, side, n)) % 1000))
  return base


def test_locate_finds_an_extracted_folder_below_manual_dir(tmp_path):
  _toy_tree(tmp_path / 'downloads' / 'deep')
  (tmp_path / 'downloads' / 'unrelated').mkdir()
  root = finder.locate(tmp_path / 'downloads', LAYOUT)
  assert root.path == tmp_path / 'downloads' / 'deep' / 'Toy'
  assert root.sources == [{'kind': 'folder', 'path': 'Toy'}]
  assert root.display('train/low/0.png') == f'{root.path}/train/low/0.png'
  root.cleanup()  # No-op for folders.
  assert root.path.exists()


@pytest.mark.parametrize('kind', ['zip', 'tar.gz'])
def test_locate_reads_archives_and_records_their_sha256(tmp_path, kind):
  tree = _toy_tree(tmp_path / 'src')
  (tree / 'Toy' / 'README.txt').write_text('not needed')
  archive = tmp_path / 'manual' / f'Toy.{kind}'
  archive.parent.mkdir()
  if kind == 'zip':
    with zipfile.ZipFile(archive, 'w') as z:
      for path in sorted(tree.rglob('*')):
        z.write(path, path.relative_to(tree).as_posix())
  else:
    with tarfile.open(archive, 'w:gz') as t:
      t.add(tree / 'Toy', arcname='Toy')
  extract = tmp_path / 'extract'
  with finder.locate(archive.parent, LAYOUT, extract) as root:
    assert root.path.is_relative_to(extract)
    assert not (root.path / 'README.txt').exists()  # Only the layout's members.
    assert sorted(root.list_images('test/low')) == ['test/low/0.png', 'test/low/1.png']
    image = root.read('test/low/1.png')
    np.testing.assert_array_equal(image.array, np.asarray(Image.open(tree / 'Toy/test/low/1.png')))
    assert image.data == (tree / 'Toy/test/low/1.png').read_bytes()
    assert root.display('test/low/1.png') == f'{archive}:Toy/test/low/1.png'
    (source,) = root.sources
    assert source['sha256'] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert source['kind'] == ('zip' if kind == 'zip' else 'tar')
    meta = root.metadata()
    assert meta['files_sha256'] == {
        'test/low/1.png': hashlib.sha256(image.data).hexdigest()}
  assert not any(extract.iterdir())  # Temporary copy removed.


def test_missing_manual_dir_and_no_data_name_what_is_expected(tmp_path):
  with pytest.raises(manual.ManualDataError, match=r'does not exist.*Toy\.zip'):
    finder.locate(tmp_path / 'nope', LAYOUT)
  (tmp_path / 'empty').mkdir()
  with pytest.raises(manual.ManualDataError, match=r'no Toy data in manual_dir .*empty.*'
                     r'Toy/\{train,test\}/\{low,high\}'):
    finder.locate(tmp_path / 'empty', LAYOUT)


def test_wrong_folder_layout_says_what_is_missing(tmp_path):
  _toy_tree(tmp_path)
  shutil.rmtree(tmp_path / 'Toy' / 'test' / 'high')
  with pytest.raises(manual.ManualDataError) as error:
    finder.locate(tmp_path, LAYOUT)
  message = str(error.value)
  assert f"{tmp_path / 'Toy'}: wrong layout for Toy: missing test/high" in message
  assert 'expected Toy/{train,test}/{low,high}' in message


def test_wrong_archive_layout_names_the_archive(tmp_path):
  with zipfile.ZipFile(tmp_path / 'Toy.zip', 'w') as z:
    z.writestr('Train/input/1.png', b'x')
  with pytest.raises(manual.ManualDataError,
                     match=r'Toy\.zip: wrong layout for Toy: it holds Train; expected'):
    finder.locate(tmp_path, LAYOUT)


def test_damaged_archive_and_unsafe_member_are_refused(tmp_path):
  (tmp_path / 'Toy.zip').write_bytes(b'PK\x03\x04 not really a zip')
  with pytest.raises(manual.ManualDataError, match=r'Toy\.zip: cannot read the archive'):
    finder.locate(tmp_path, LAYOUT)
  (tmp_path / 'Toy.zip').unlink()
  with zipfile.ZipFile(tmp_path / 'Toy.zip', 'w') as z:
    z.writestr('../evil.png', b'x')
  with pytest.raises(manual.ManualDataError, match='unsafe member path'):
    finder.locate(tmp_path, LAYOUT)


def test_two_copies_are_ambiguous(tmp_path):
  _toy_tree(tmp_path / 'a')
  _toy_tree(tmp_path / 'b')
  with pytest.raises(manual.ManualDataError, match='several copies'):
    finder.locate(tmp_path, LAYOUT)


def test_glob_layouts_match_case_insensitively(tmp_path):
  layout = manual.Layout('G', 'G', required_dirs=('train/*/sharp',))
  (tmp_path / 'GOPRO' / 'train' / 'SCENE1' / 'Sharp').mkdir(parents=True)
  assert finder.locate(tmp_path, layout).path == tmp_path / 'GOPRO'


@pytest.fixture
def root(tmp_path):
  _toy_tree(tmp_path)
  return finder.locate(tmp_path, LAYOUT)


def test_read_rejects_corrupt_and_truncated_files(root):
  (root.path / 'train/low/bad.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  with pytest.raises(manual.ManualDataError, match=r'train/low/bad\.png: '):
    root.read('train/low/bad.png')
  buffer = io.BytesIO()
  Image.fromarray(_rgb(1, 64, 64)).save(buffer, format='JPEG', quality=90)
  (root.path / 'train/low/cut.jpg').write_bytes(buffer.getvalue()[:-300])
  with pytest.raises(manual.ManualDataError, match=r'train/low/cut\.jpg: .*(truncated|OSError)'):
    root.read('train/low/cut.jpg')
  with pytest.raises(manual.ManualDataError, match=r'train/low/none\.png: file not found'):
    root.read('train/low/none.png')


def test_read_converts_gray_palette_16bit_and_opaque_alpha(root):
  gray = _rgb(2)[..., 0]
  _png(root.path / 'g.png', gray)
  image = root.read('g.png')
  np.testing.assert_array_equal(image.array, np.repeat(gray[..., None], 3, -1))
  assert image.converted == 'grayscale -> RGB'
  assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.data))), image.array)

  values16 = np.array([[0, 128, 257, 65535]], np.uint16)
  rgb16 = np.repeat(values16[..., None], 3, -1)
  (root.path / 'deep.png').write_bytes(png16.encode(rgb16))
  image = root.read('deep.png')
  np.testing.assert_array_equal(image.array[0, :, 0], [0, 0, 1, 255])
  assert image.converted == '16-bit -> 8-bit'

  rgba = np.concatenate([_rgb(3), np.full((6, 8, 1), 255, np.uint8)], -1)
  _png(root.path / 'opaque.png', rgba)
  assert root.read('opaque.png').converted == 'opaque alpha dropped'
  np.testing.assert_array_equal(root.read('opaque.png').array, rgba[..., :3])

  Image.fromarray(_rgb(4)).convert('P').save(root.path / 'pal.png')
  assert root.read('pal.png').converted == 'PNG mode P -> RGB'
  assert set(root.converted) == {'g.png', 'deep.png', 'opaque.png', 'pal.png'}


def test_read_refuses_transparency(root):
  rgba = np.concatenate([_rgb(3), np.full((6, 8, 1), 255, np.uint8)], -1)
  rgba[0, 0, 3] = 10
  _png(root.path / 'see_through.png', rgba)
  with pytest.raises(manual.ManualDataError, match=r'see_through\.png: has transparent pixels'):
    root.read('see_through.png')


def test_plain_rgb_png_is_stored_byte_for_byte_and_jpeg_as_png(root):
  path = root.path / 'train/low/0.png'
  assert root.read('train/low/0.png').data == path.read_bytes()
  Image.fromarray(_rgb(5)).save(root.path / 'photo.jpg', quality=90)
  image = root.read('photo.jpg')
  assert image.converted == 'JPEG -> PNG'
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(image.data))), image.array)


def test_read_pair_checks_sizes(root):
  _png(root.path / 'train/high/big.png', _rgb(6, 7, 8))
  _png(root.path / 'train/low/big.png', _rgb(6, 6, 8))
  with pytest.raises(manual.ManualDataError,
                     match=r'size mismatch within a pair: .*low/big\.png is 8x6 \(WxH\) but '
                     r'.*high/big\.png is 8x7'):
    root.read_pair('train/low/big.png', 'train/high/big.png')


def test_match_pairs_names_the_lonely_file(root):
  (root.path / 'train/high/1.png').unlink()
  (root.path / 'train/low/notes.txt').write_text('x')
  lows, highs = root.list_images('train/low'), root.list_images('train/high')
  assert root.ignored == ['train/low/notes.txt']
  stem = lambda p: p.rsplit('/', 1)[1].split('.')[0]
  with pytest.raises(manual.ManualDataError,
                     match=r'train/low/1\.png: input image without its target'):
    manual.match_pairs(root, lows, highs, stem, stem)
  with pytest.raises(manual.ManualDataError,
                     match=r'train/high/0\.png: target image without its input .*and 1 more'):
    manual.match_pairs(root, [], ['train/high/0.png', 'train/high/9.png'], stem, stem)


def test_list_images_refuses_unexpected_folders(root):
  (root.path / 'train/low/sub').mkdir()
  with pytest.raises(manual.ManualDataError, match=r'train/low/sub: unexpected folder'):
    root.list_images('train/low')
  assert 'train/low/sub' not in root.list_images('train/low', recursive=True)
