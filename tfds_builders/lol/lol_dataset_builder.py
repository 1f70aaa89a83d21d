"""`lol` dataset: LOL v1 (Wei et al., BMVC 2018), 485 train / 15 test pairs.

Built from the manually downloaded LOLdataset.zip or its extracted folder;
no TensorFlow needed (`python -m lljax.data.prepare lol --manual_dir DIR`).
"""

from __future__ import annotations

from tfds_builders import manual_builder
from lljax.imaging import manual

LAYOUT = manual.Layout(
    dataset='LOL',
    description='LOLdataset/{our485,eval15}/{low,high}/<n>.png (same file name in low/ and high/)',
    required_dirs=('our485/low', 'our485/high', 'eval15/low', 'eval15/high'),
    archives=('LOLdataset.zip', 'LOL.zip'),
)

SPLITS = {'train': 'our485', 'test': 'eval15'}


class Builder(manual_builder.ManualBuilder):
  """LOL v1: real low/normal-light pairs, 600x400 PNG."""

  VERSION = manual_builder.tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: train = our485 (485), test = eval15 (15).'}
  HOMEPAGE = 'https://daooshee.github.io/BMVC2018website/'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download LOLdataset.zip from the LOL project page
  (https://daooshee.github.io/BMVC2018website/; Google Drive file
  1L-kqSQyrmMueBh_ziWoPFhfsAh50h20H) and put it -- or the folder it
  extracts to, LOLdataset/ with our485/ and eval15/ -- into manual_dir.
  """

  def _feature_docs(self):
    return 'low-light image (low/), uint8 RGB', 'normal-light image (high/), uint8 RGB'

  def _layout(self):
    return LAYOUT

  def _split_items(self, root):
    splits = {}
    for split, folder in SPLITS.items():
      pairs = manual.match_pairs(
          root, root.list_images(f'{folder}/low'), root.list_images(f'{folder}/high'),
          key_low=manual_builder.stem, key_normal=manual_builder.stem)
      splits[split] = [manual_builder.Item(manual_builder.stem(low), low, high)
                       for low, high in pairs]
    return splits
