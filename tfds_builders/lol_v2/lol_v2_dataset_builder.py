"""`lol_v2` dataset: LOL-v2 (Yang et al., TIP 2021), configs `real` and `synthetic`.

Built from the manually downloaded LOL-v2 archive or its extracted folder;
no TensorFlow needed (`python -m lljax.data.prepare lol_v2 --manual_dir DIR`).
"""

from __future__ import annotations

import dataclasses
import re

from tfds_builders import manual_builder
from lljax.imaging import manual

tfds = manual_builder.tfds


@dataclasses.dataclass(eq=False)
class LolV2Config(tfds.core.BuilderConfig):
  """Attributes:
    folder: the subset's folder in LOL-v2/.
    low_prefix, normal_prefix: file-name prefixes that pairing strips
      (real: 'low00001.png' <-> 'normal00001.png'; synthetic: same names).
  """

  folder: str = ''
  low_prefix: str = ''
  normal_prefix: str = ''


def _layout(config: LolV2Config) -> manual.Layout:
  folder = config.folder
  return manual.Layout(
      dataset=f'LOL-v2 {config.name}',
      description=(f'LOL-v2/{folder}/{{Train,Test}}/{{Low,Normal}}/*.png'
                   + (f' ({config.low_prefix}NNNNN.png <-> {config.normal_prefix}NNNNN.png)'
                      if config.low_prefix else ' (same file name in Low/ and Normal/)')),
      required_dirs=tuple(f'{folder}/{split}/{side}' for split in ('Train', 'Test')
                          for side in ('Low', 'Normal')),
      archives=('LOL-v2.zip', 'LOL_v2.zip', 'LOLv2.zip', 'LOL-v2-Dataset.zip'),
  )


def _pair_key(prefix: str):
  pattern = re.compile(f'^{re.escape(prefix)}', re.IGNORECASE)
  return lambda path: pattern.sub('', manual_builder.stem(path))


class Builder(manual_builder.ManualBuilder):
  """LOL-v2: real captured (600x400) and synthetic (384x384) low/normal pairs."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: real 689/100, synthetic 900/100 pairs.'}
  HOMEPAGE = 'https://github.com/flyywh/SGM-Low-Light'
  BUILDER_CONFIGS = [
      LolV2Config(name='real', description='Real_captured: 689 train / 100 test pairs, 600x400.',
                  folder='Real_captured', low_prefix='low', normal_prefix='normal'),
      LolV2Config(name='synthetic', description='Synthetic: 900 train / 100 test pairs, 384x384.',
                  folder='Synthetic'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the LOL-v2 archive (Google Drive file
  1Ou9EljYZW8o5dbDCf9R34FS8Pd8kEp2U, as linked by the Retinexformer README;
  or Baidu) and put it -- as LOL-v2.zip, or the folder LOL-v2/ holding
  Real_captured/ and Synthetic/ -- into manual_dir.
  """

  def _layout(self):
    return _layout(self.builder_config)

  def _split_items(self, root):
    config = self.builder_config
    splits = {}
    for split, folder in [('train', 'Train'), ('test', 'Test')]:
      base = f'{config.folder}/{folder}'
      pairs = manual.match_pairs(
          root, root.list_images(f'{base}/Low'), root.list_images(f'{base}/Normal'),
          key_low=_pair_key(config.low_prefix), key_normal=_pair_key(config.normal_prefix))
      splits[split] = [manual_builder.Item(manual_builder.stem(low), low, normal)
                       for low, normal in pairs]
    return splits
