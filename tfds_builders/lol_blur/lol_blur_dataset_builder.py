"""`lol_blur` dataset: LOL-Blur (Zhou et al., ECCV 2022), 170/30 videos x 60 frames.

Configs choose the input folder: `low_blur_noise` (the official protocol) or
`low_blur` (used by some papers, e.g. HVI-CIDNet; numbers are then not
comparable). The target is always `high_sharp_scaled`. Built from the manual
download (archive or extracted folder); no TensorFlow needed.
"""

from __future__ import annotations

import dataclasses

from tfds_builders import manual_builder
from lljax.imaging import manual

tfds = manual_builder.tfds

TARGET = 'high_sharp_scaled'
FOLDERS = ('low_blur', 'low_blur_noise', 'low_sharp', 'high_sharp_scaled', 'high_sharp_original')


@dataclasses.dataclass(eq=False)
class LolBlurConfig(tfds.core.BuilderConfig):
  """Attributes:
    input_folder: folder of the `low` images (one of FOLDERS).
    target_folder: folder of the `normal` images.
  """

  input_folder: str = 'low_blur_noise'
  target_folder: str = TARGET


class Builder(manual_builder.ManualBuilder):
  """LOL-Blur: dark, blurred (and noisy) frames with sharp normal-light targets."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: configs low_blur_noise and low_blur.'}
  HOMEPAGE = 'https://shangchenzhou.com/projects/LEDNet/'
  BUILDER_CONFIGS = [
      LolBlurConfig(name='low_blur_noise', input_folder='low_blur_noise',
                    description='Official protocol: low_blur_noise -> high_sharp_scaled.'),
      LolBlurConfig(name='low_blur', input_folder='low_blur',
                    description='Noise-free input: low_blur -> high_sharp_scaled.'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download LOL-Blur from the LEDNet page (Google Drive folder
  11HcsiHNvM7JUlbuHIniREdQ2peDUhtwX or BaiduPan, key dz6u) and put the
  archive (LOL-Blur.zip) or the extracted folder LOL-Blur/ -- with train/
  and test/, each holding low_blur/, low_blur_noise/, high_sharp_scaled/,
  ... with one 4-digit folder per video -- into manual_dir. If the download
  comes as several archives, extract them all into one LOL-Blur/ folder.
  Only the config's input folder and high_sharp_scaled/ are read.
  """

  def _layout(self):
    config = self.builder_config
    folders = (config.input_folder, config.target_folder)
    return manual.Layout(
        dataset='LOL-Blur',
        description=('LOL-Blur/{train,test}/{' + ','.join(folders) + '}/<video>/<frame>.png '
                     '(same <video>/<frame> in every folder)'),
        required_dirs=tuple(f'{split}/{folder}' for split in ('train', 'test') for folder in folders),
        archives=('LOL-Blur.zip', 'LOL_Blur.zip', 'LOLBlur.zip', 'lol_blur.zip'),
    )

  def _extra_features(self):
    return {
        'video': tfds.features.Text(doc="video id, the 4-digit folder name, e.g. '0012'"),
        'frame': tfds.features.Text(doc="frame id, the file stem, e.g. '0089'"),
    }

  def _feature_docs(self):
    config = self.builder_config
    return (f'dark blurred input ({config.input_folder}/), uint8 RGB',
            f'sharp normal-light target ({config.target_folder}/), uint8 RGB')

  def _split_items(self, root):
    config = self.builder_config
    splits = {}
    for split in ('train', 'test'):
      low_dir, normal_dir = f'{split}/{config.input_folder}', f'{split}/{config.target_folder}'
      lows = root.list_images(low_dir, recursive=True)
      normals = root.list_images(normal_dir, recursive=True)
      for folder, paths in [(low_dir, lows), (normal_dir, normals)]:
        flat = next((p for p in paths if manual_builder.relative_to(p, folder).count('/') != 1), None)
        if flat is not None:
          raise root.error(flat, f'expected {folder}/<video>/<frame>.png')
      key = lambda folder: (lambda p: manual_builder.relative_to(p, folder).rsplit('.', 1)[0])
      pairs = manual.match_pairs(root, lows, normals, key(low_dir), key(normal_dir))
      items = []
      for low, normal in pairs:
        video, frame = manual_builder.relative_to(low, low_dir).rsplit('.', 1)[0].split('/')
        items.append(manual_builder.Item(f'{video}_{frame}', low, normal,
                                         {'video': video, 'frame': frame}))
      splits[split] = items
    return splits
