"""`realblur_j` dataset: RealBlur-J (Rim et al., ECCV 2020), 3 758 train / 980 test pairs.

Pairs and splits come from the official list files RealBlur_J_{train,test}_list.txt
("<gt path> <blur path>" per line). Built from the RealBlur archive or its
extracted folder; no TensorFlow needed.
"""

from __future__ import annotations

from tfds_builders import manual_builder
from lljax.imaging import manual

tfds = manual_builder.tfds

FOLDER = 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref'  # sic: 'itensity', as published.
LISTS = {'train': 'RealBlur_J_train_list.txt', 'test': 'RealBlur_J_test_list.txt'}

LAYOUT = manual.Layout(
    dataset='RealBlur-J',
    description=(f'RealBlur/{{{FOLDER}/<scene>/{{blur/blur_<n>.png,gt/gt_<n>.png}},'
                 f"{','.join(LISTS.values())}}}"),
    required_dirs=(FOLDER,),
    required_files=tuple(LISTS.values()),
    archives=('RealBlur.tar.gz', 'RealBlur.tgz', 'RealBlur.tar', 'RealBlur.zip', 'RealBlur-J.zip'),
)


class Builder(manual_builder.ManualBuilder):
  """RealBlur-J: JPEG-pipeline camera output, blurred and aligned sharp pairs."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: train 3 758 / test 980 pairs from the list files.'}
  HOMEPAGE = 'http://cg.postech.ac.kr/research/RealBlur/'
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download RealBlur (http://cg.postech.ac.kr/research/RealBlur/, or the
  Google Drive folder 1xUNAAVzLhNQuGriKTk1hrE-MT-H_56fq) and put the archive
  (RealBlur.tar.gz or RealBlur.zip) -- or its extracted folder holding
  {FOLDER}/ and {', '.join(LISTS.values())} -- into manual_dir.
  """

  def _layout(self):
    return LAYOUT

  def _extra_features(self):
    return {'scene': tfds.features.Text(doc="scene folder, e.g. 'scene230'")}

  def _feature_docs(self):
    return 'blurred photo (blur/), uint8 RGB', 'aligned sharp photo (gt/), uint8 RGB'

  def _split_items(self, root):
    return {split: self._list_items(root, list_file) for split, list_file in LISTS.items()}

  def _list_items(self, root, list_file):
    items = []
    for number, line in enumerate(root.read_text(list_file).splitlines(), 1):
      if not line.strip():
        continue
      where = f'{list_file} line {number}'
      fields = line.split()
      if len(fields) < 2:
        raise root.error(list_file, f'line {number}: expected "<gt path> <blur path>", got {line!r}')
      gt, blur = fields[:2]
      for path in (gt, blur):
        if not path.startswith(FOLDER + '/') or '..' in path.split('/'):
          raise root.error(list_file, f'line {number}: {path!r} is not inside {FOLDER}/')
        if not root.exists(path):
          raise root.error(path, f'file not found (listed in {where})')
      scene = gt.split('/')[1]
      items.append(manual_builder.Item(f'{scene}_{manual_builder.stem(blur)}', blur, gt,
                                       {'scene': scene}))
    return items
