"""Tests of lljax.data.sources: concatenated ('+') and folder sources, skipping decoding."""

import io

import numpy as np
import pytest
from PIL import Image

from lljax.data import pipeline
from lljax.data import sources
from lljax.utils import images
from lljax.utils import png16


class ListSource:

  def __init__(self, names, size=(10, 12)):
    self.examples = [{'low': np.full(size + (3,), i, np.uint8),
                      'normal': np.full(size + (3,), 100 + i, np.uint8),
                      'name': name.encode()} for i, name in enumerate(names)]

  def __len__(self):
    return len(self.examples)

  def __getitem__(self, index):
    return dict(self.examples[index])


def test_concat_source_indexes_through_parts_and_prefixes_names():
  source = sources.ConcatSource([('a/x', ListSource(['p', 'q'])), ('b', ListSource(['p']))])
  assert len(source) == 3
  assert [source[i]['name'] for i in range(3)] == [b'a/x:p', b'a/x:q', b'b:p']
  assert source[2]['low'][0, 0, 0] == 0 and source[1]['low'][0, 0, 0] == 1
  assert source[-1]['name'] == b'b:p'
  assert [ex['name'] for ex in source.__getitems__([2, 0])] == [b'b:p', b'a/x:p']
  assert source.names() == ['a/x:p', 'a/x:q', 'b:p']
  with pytest.raises(IndexError):
    source[3]
  # Unique names again, so eval order is defined.
  assert [ex['name'] for ex in pipeline.eval_examples(source)] == ['a/x:p', 'a/x:q', 'b:p']


def test_plus_joined_names_open_a_concat_source(embedded_data_dir):
  joined = sources.open_source('embedded_photos/lowlight+embedded_photos/lowlight', 'test',
                               embedded_data_dir)
  single = sources.open_source('embedded_photos/lowlight', 'test', embedded_data_dir)
  assert isinstance(joined, sources.ConcatSource) and len(joined) == 2 * len(single)
  assert joined.labels == ['embedded_photos/lowlight'] * 2
  np.testing.assert_array_equal(joined[len(single)]['low'], single[0]['low'])
  with pytest.raises(ValueError, match='empty part'):
    sources.open_source('embedded_photos/lowlight+', 'test', embedded_data_dir)
  with pytest.raises(sources.DatasetNotPreparedError, match="'lol_v2/synthetic'"):
    sources.open_source('embedded_photos/lowlight+lol_v2/synthetic', 'test', embedded_data_dir)


def test_skip_decoding_leaves_bytes(embedded_data_dir):
  source = sources.open_source('embedded_photos/lowlight', 'test', embedded_data_dir)
  raw = sources.skip_decoding(source, ['normal'])
  example = raw[0]
  assert isinstance(example['normal'], bytes) and example['low'].shape[-1] == 3
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(example['normal']))),
                                source[0]['normal'])
  concat = sources.skip_decoding(sources.ConcatSource([('e', source)]), ['low'])
  assert isinstance(concat[0]['low'], bytes)
  plain = ListSource(['a'])
  assert sources.skip_decoding(plain, ['low']) is plain


def _save(path, image, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, **kwargs)


def test_folder_source_reads_converts_and_sorts(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
  _save(tmp_path / 'b.png', rgb)
  _save(tmp_path / 'a.jpg', rgb, quality=95)
  _save(tmp_path / 'sub' / 'gray.bmp', rgb[..., 0])
  (tmp_path / 'sub' / 'deep.png').write_bytes(png16.encode(
      np.full((4, 5, 3), 65535, np.uint16)))
  (tmp_path / 'notes.txt').write_text('not an image')
  (tmp_path / '.DS_Store').write_bytes(b'')
  source = sources.open_source(f'folder:{tmp_path}', 'test')
  assert isinstance(source, sources.FolderSource)
  assert source.names() == ['a', 'b', 'sub/deep', 'sub/gray']
  assert source.ignored == ['notes.txt']
  assert len(source) == 4
  np.testing.assert_array_equal(source[1]['low'], rgb)
  assert source[1]['file'] == b'b.png'
  np.testing.assert_array_equal(source[3]['low'], np.repeat(rgb[..., :1], 3, -1))
  assert source[2]['low'].dtype == np.uint8 and source[2]['low'].max() == 255
  examples = list(pipeline.eval_examples(source))
  assert [ex['name'] for ex in examples] == ['a', 'b', 'sub/deep', 'sub/gray']
  assert 'normal' not in examples[0] and examples[0]['low'].shape == (1, 9, 11, 3)


def test_folder_source_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    sources.FolderSource(tmp_path / 'nope')
  (tmp_path / 'x.txt').write_text('x')
  with pytest.raises(FileNotFoundError, match='holds no images'):
    sources.FolderSource(tmp_path)
  (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nnope')
  rgba = np.zeros((4, 4, 4), np.uint8)
  _save(tmp_path / 'clear.png', rgba)
  source = sources.FolderSource(tmp_path)
  with pytest.raises(images.ImageReadError, match=r'broken\.png'):
    source[source.files.index('broken.png')]
  with pytest.raises(images.ImageReadError, match=r'clear\.png: has transparent pixels'):
    source[source.files.index('clear.png')]
  _save(tmp_path / 'broken.jpg', rgba[..., :3])
  with pytest.raises(ValueError, match="share the name 'broken'"):
    sources.FolderSource(tmp_path)
