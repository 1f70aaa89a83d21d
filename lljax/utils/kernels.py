"""Blur kernels (PSFs) for non-blind deblurring models: validation and kernel files.

A kernel is a 2-D non-negative float array of any odd or even size up to the model's support
(INFWIDE: 37 x 37), normalised here to unit sum. Its centre is pixel (kh // 2, kw // 2)
(``scipy.ndimage.convolve``'s convention). Files: an 8- or 16-bit grayscale PNG (RGB is
averaged) or a 2-D ``.npy``; for an image ``photo.jpg`` the CLI looks for ``photo_kernel.png``
or ``photo_kernel.npy`` next to it.
"""

import io
import pathlib

import numpy as np

KERNEL_SUFFIX = "_kernel"
KERNEL_EXTENSIONS = (".png", ".npy")


def check_kernel(kernel, max_size, name="kernel"):
  """Validates one kernel and returns it as float32 (kh, kw) with unit sum.

  Raises:
    ValueError naming ``name``: not 2-D, empty, non-finite, negative, all zero, or larger than
    ``max_size`` on a side.
  """
  k = np.asarray(kernel, np.float64)
  if k.ndim == 3 and k.shape[-1] in (1, 3, 4):
    k = k[..., :3].mean(-1) if k.shape[-1] != 1 else k[..., 0]
  if k.ndim != 2:
    raise ValueError(f"{name}: a blur kernel must be a 2-D array, got shape {k.shape}")
  if k.size == 0:
    raise ValueError(f"{name}: the blur kernel is empty (shape {k.shape})")
  if not np.all(np.isfinite(k)):
    raise ValueError(f"{name}: the blur kernel has NaN or Inf values")
  if k.min() < 0:
    raise ValueError(f"{name}: the blur kernel has negative values (min {k.min():.3g}); PSFs are non-negative")
  if k.sum() <= 0:
    raise ValueError(f"{name}: the blur kernel is empty (all zero)")
  if max(k.shape) > max_size:
    raise ValueError(f"{name}: the blur kernel is {k.shape[0]}x{k.shape[1]}, larger than the model's "
                     f"{max_size}x{max_size} support")
  return (k / k.sum()).astype(np.float32)


def check_kernels(kernels, batch, max_size):
  """(kh, kw) or (B, kh, kw) kernels for a batch of ``batch`` images -> float32 (B, kh, kw)."""
  k = np.asarray(kernels)
  if k.ndim == 2:
    k = np.broadcast_to(k, (batch,) + k.shape)
  if k.ndim != 3 or k.shape[0] != batch:
    raise ValueError(f"kernels must be (kh, kw) or ({batch}, kh, kw) for {batch} images, got shape {k.shape}")
  return np.stack([check_kernel(one, max_size, f"kernel {i}") for i, one in enumerate(k)])


def read_kernel(path, max_size):
  """Reads and validates a kernel file (PNG or .npy) -> float32 (kh, kw), unit sum."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: blur kernel file not found")
  return decode_kernel(path.read_bytes(), str(path), max_size)


def decode_kernel(data, name, max_size):
  """``read_kernel`` for the bytes of a kernel file named ``name`` (.npy by suffix or content)."""
  if not data:
    raise ValueError(f"{name}: the blur kernel file is empty")
  if str(name).lower().endswith(".npy") or data.startswith(b"\x93NUMPY"):
    try:
      array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      raise ValueError(f"{name}: not a readable .npy kernel ({e})") from e
  else:
    from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel
    try:
      with Image.open(io.BytesIO(data)) as im:
        array = np.asarray(im.convert("I") if im.mode.startswith("I;16") else im.convert("L")
                           if im.mode not in ("L", "I", "F", "RGB") else im)
    except UnidentifiedImageError as e:  # Pillow's message names the buffer, not the file
      raise ValueError(f"{name}: not a readable kernel image (not a format Pillow recognizes)") from e
    except OSError as e:
      raise ValueError(f"{name}: not a readable kernel image ({e})") from e
  return check_kernel(array, max_size, str(name))


def kernel_path_for(image_path):
  """The kernel file next to ``image_path`` (``<stem>_kernel.png`` or ``.npy``).

  Raises:
    FileNotFoundError naming the files looked for.
  """
  image_path = pathlib.Path(image_path)
  candidates = [image_path.with_name(image_path.stem + KERNEL_SUFFIX + ext) for ext in KERNEL_EXTENSIONS]
  for c in candidates:
    if c.exists():
      return c
  raise FileNotFoundError(f"no blur kernel: expected {' or '.join(c.name for c in candidates)} "
                          f"in {image_path.parent} (or pass --kernel)")


def is_kernel_file(path):
  """Whether ``path`` is named like a kernel file (so folder scans do not treat it as a photo)."""
  path = pathlib.Path(path)
  return path.stem.endswith(KERNEL_SUFFIX) and path.suffix.lower() in KERNEL_EXTENSIONS
