"""`gopro` dataset: GOPRO_Large (Nah et al., CVPR 2017), 2 103 train / 1 111 test pairs.

Configs choose the blurred input: `blur_gamma` (frames averaged after a
gamma-2.2 camera response, the input of the CVPR 2017 paper) or `blur`
(averaged assuming a linear response). Built from GOPRO_Large.zip or its
extracted folder; no TensorFlow needed.
"""

from __future__ import annotations

import dataclasses

from tfds_builders import manual_builder
from lljax.imaging import manual

tfds = manual_builder.tfds


@dataclasses.dataclass(eq=False)
class GoProConfig(tfds.core.BuilderConfig):
  """Attributes:
    input_folder: 'blur_gamma' or 'blur' (the `low` images).
  """

  input_folder: str = 'blur_gamma'


class Builder(manual_builder.ManualBuilder):
  """GoPro: blurred frames (averages of sharp 240 fps frames) and their middle sharp frame."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: configs blur_gamma and blur.'}
  HOMEPAGE = 'https://seungjunnah.github.io/Datasets/gopro.html'
  BUILDER_CONFIGS = [
      GoProConfig(name='blur_gamma', input_folder='blur_gamma',
                  description='Input blur_gamma/ (gamma-2.2 CRF, the CVPR 2017 paper).'),
      GoProConfig(name='blur', input_folder='blur',
                  description='Input blur/ (linear CRF).'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download GOPRO_Large.zip (https://seungjunnah.github.io/Datasets/gopro.html;
  Google Drive 1y4wvPdOG3mojpFCHTqLgriexhbjoWVkK) and put it -- or the
  extracted folder GOPRO_Large/ with train/ and test/, one folder per scene
  (e.g. GOPR0372_07_00/) holding blur/, blur_gamma/ and sharp/ -- into
  manual_dir.
  """

  def _layout(self):
    folder = self.builder_config.input_folder
    return manual.Layout(
        dataset='GoPro',
        description=(f'GOPRO_Large/{{train,test}}/<scene>/{{{folder},sharp}}/<frame>.png '
                     '(same frame name in both folders)'),
        required_dirs=tuple(f'{split}/*/{sub}' for split in ('train', 'test')
                            for sub in (folder, 'sharp')),
        archives=('GOPRO_Large.zip', 'GoPro.zip', 'GOPRO.zip'),
    )

  def _extra_features(self):
    return {
        'scene': tfds.features.Text(doc="scene (sequence) id, e.g. 'GOPR0372_07_00'"),
        'frame': tfds.features.Text(doc="frame id, the file stem, e.g. '000047'"),
    }

  def _feature_docs(self):
    return (f'blurred frame ({self.builder_config.input_folder}/), uint8 RGB',
            'sharp frame (sharp/), uint8 RGB')

  def _split_items(self, root):
    folder = self.builder_config.input_folder
    splits = {}
    for split in ('train', 'test'):
      items = []
      for scene in root.list_dir(split):
        scene_dir = f'{split}/{scene}'
        if not (root.path / scene_dir).is_dir():
          root.ignored.append(scene_dir)
          continue
        for sub in (folder, 'sharp'):
          if not root.exists(f'{scene_dir}/{sub}'):
            raise root.error(f'{scene_dir}/{sub}', 'missing folder; expected '
                             + self._layout().description)
        pairs = manual.match_pairs(
            root, root.list_images(f'{scene_dir}/{folder}'), root.list_images(f'{scene_dir}/sharp'),
            manual_builder.stem, manual_builder.stem)
        for low, normal in pairs:
          frame = manual_builder.stem(low)
          items.append(manual_builder.Item(f'{scene}_{frame}', low, normal,
                                           {'scene': scene, 'frame': frame}))
      splits[split] = items
    return splits
