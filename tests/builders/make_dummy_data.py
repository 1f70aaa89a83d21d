"""Writes the fake dataset trees in tfds_builders/<name>/dummy_data/.

Each tree copies the official folder and file names of its dataset (see the
builder READMEs and ../shared/research/infwide_lednet_datasets.md section C)
with a few tiny, deterministic images. Run from the repository root:

    python tests/builders/make_dummy_data.py
"""

import pathlib
import shutil
import zlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2] / 'tfds_builders'


def _image(key: str, width: int, height: int) -> np.ndarray:
  """A smooth random uint8 RGB image, fixed by `key`."""
  rng = np.random.default_rng(zlib.crc32(key.encode()))
  y, x = np.mgrid[0:height, 0:width] / max(width, height)
  coef = rng.uniform(-1, 1, size=(3, 3))
  base = 0.5 + 0.25 * (coef[:, 0, None, None] * x + coef[:, 1, None, None] * y)
  base = base + 0.15 * rng.standard_normal((3, height, width))
  return np.clip(base.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)


def _dark(image: np.ndarray) -> np.ndarray:
  return (image.astype(np.float64) * 0.15).astype(np.uint8)


def _box_blur(image: np.ndarray) -> np.ndarray:
  padded = np.pad(image.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode='edge')
  out = sum(padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
            for dy in range(3) for dx in range(3)) / 9
  return out.astype(np.uint8)


def _save(path: pathlib.Path, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix == '.png':
    Image.fromarray(image).save(path, compress_level=9)
  else:
    Image.fromarray(image).save(path, quality=90)


def lol(out: pathlib.Path) -> None:
  for folder, names in [('our485', ['2', '5', '100']), ('eval15', ['1', '111'])]:
    for name in names:
      high = _image(f'lol/{folder}/{name}', 40, 24)
      _save(out / f'LOLdataset/{folder}/high/{name}.png', high)
      _save(out / f'LOLdataset/{folder}/low/{name}.png', _dark(high))


def lol_v2(out: pathlib.Path) -> None:
  for split, numbers in [('Train', [1, 2, 3]), ('Test', [690, 691])]:
    for n in numbers:
      high = _image(f'lolv2/real/{n}', 40, 24)
      _save(out / f'LOL-v2/Real_captured/{split}/Normal/normal{n:05d}.png', high)
      _save(out / f'LOL-v2/Real_captured/{split}/Low/low{n:05d}.png', _dark(high))
  for split, names in [('Train', ['r000da54ft', 'r0a3c4f1at', 'r1e2f3a4bt']),
                       ('Test', ['r13e56f6ct', 'r2b2c3d4et'])]:
    for name in names:
      high = _image(f'lolv2/syn/{name}', 24, 24)
      _save(out / f'LOL-v2/Synthetic/{split}/Normal/{name}.png', high)
      _save(out / f'LOL-v2/Synthetic/{split}/Low/{name}.png', _dark(high))


def lol_blur(out: pathlib.Path) -> None:
  videos = {'train': {'0001': ['0000', '0001', '0030'], '0005': ['0002', '0031']},
            'test': {'0256': ['0089', '0090']}}
  for split, frames_of in videos.items():
    for video, frames in frames_of.items():
      for frame in frames:
        sharp = _image(f'lolblur/{video}/{frame}', 42, 24)
        scaled = (sharp * 0.9).astype(np.uint8)
        low_sharp = _dark(sharp)
        low_blur = _box_blur(low_sharp)
        noise = np.random.default_rng(int(video + frame)).integers(0, 3, sharp.shape)
        tree = {'high_sharp_original': sharp, 'high_sharp_scaled': scaled,
                'low_sharp': low_sharp, 'low_blur': low_blur,
                'low_blur_noise': np.clip(low_blur + noise, 0, 255).astype(np.uint8)}
        for folder, image in tree.items():
          _save(out / f'LOL-Blur/{split}/{folder}/{video}/{frame}.png', image)


def gopro(out: pathlib.Path) -> None:
  scenes = {'train': {'GOPR0372_07_00': ['000047', '000048'], 'GOPR0374_11_00': ['000001']},
            'test': {'GOPR0384_11_00': ['000001', '000002']}}
  for split, frames_of in scenes.items():
    for scene, frames in frames_of.items():
      for frame in frames:
        sharp = _image(f'gopro/{scene}/{frame}', 48, 28)
        blur = _box_blur(sharp)
        gamma = (255 * (_box_blur(sharp) / 255) ** 1.1).astype(np.uint8)
        for folder, image in [('sharp', sharp), ('blur', blur), ('blur_gamma', gamma)]:
          _save(out / f'GOPRO_Large/{split}/{scene}/{folder}/{frame}.png', image)


def realblur(out: pathlib.Path) -> None:
  for variant, folder in [('J', 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref'),
                          ('R', 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref')]:
    lists = {'train': [], 'test': []}
    for split, scene, numbers in [('train', 'scene001', [1, 2]), ('train', 'scene002', [1]),
                                  ('test', 'scene230', [1, 2]),
                                  ('test', 'scene244_reflect', [3])]:
      for n in numbers:
        gt = _image(f'realblur/{variant}/{scene}/{n}', 36 + n, 30)
        _save(out / f'RealBlur/{folder}/{scene}/gt/gt_{n}.png', gt)
        _save(out / f'RealBlur/{folder}/{scene}/blur/blur_{n}.png', _box_blur(gt))
        lists[split].append(f'{folder}/{scene}/gt/gt_{n}.png {folder}/{scene}/blur/blur_{n}.png')
    for split, lines in lists.items():
      path = out / f'RealBlur/RealBlur_{variant}_{split}_list.txt'
      path.write_text('\n'.join(lines) + '\n')


def nightshot(out: pathlib.Path) -> None:
  # The archive's inner names are not documented (INFWIDE's configs use
  # NightShot/train_LR/); JPEG and PNG both occur in INFWIDE's demo images.
  for split, names in [('train_LR', ['0002.jpg', '0005.png', '0017.jpg']),
                       ('test_LR', ['0001.jpg', '0070.png'])]:
    for name in names:
      _save(out / f'NightShot/{split}/{name}', _dark(_image(f'nightshot/{name}', 64, 48)) * 3)


BUILDERS = {'lol': lol, 'lol_v2': lol_v2, 'lol_blur': lol_blur, 'gopro': gopro,
            'realblur_j': realblur, 'nightshot': nightshot}


def main() -> None:
  for name, make in BUILDERS.items():
    out = ROOT / name / 'dummy_data'
    shutil.rmtree(out, ignore_errors=True)
    make(out)
    print(f'{out}: {sum(1 for p in out.rglob("*") if p.is_file())} files')


if __name__ == '__main__':
  main()
