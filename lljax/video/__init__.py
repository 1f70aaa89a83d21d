"""Enhance video clips and image sequences without flicker.

  python -m lljax.enhance clip.mp4 --model DIR --output out/            # -> out/clip.mp4
  python -m lljax.enhance frames/ --video --fps 30 --model DIR --output out/   # -> out/frames.mp4
  lljax.video.enhance_video(lljax.load(DIR), "clip.mov", "out/clip.mov")

Sources: .mp4/.mov/.avi/.mkv files (the first video stream; frames as decoded, rotation applied),
or image sequences: a folder of frames or a glob, in natural order (``f2.png`` before ``f10.png``),
all of one size. Frames are streamed: memory holds about ``window`` frames plus one batch,
whatever the clip's length. Frames at the API are HWC: uint8 as read and written, float32 in
[0, 1] for the model.

Output: one video with the source's frame rate (image sequences: ``fps``), size and frame count;
audio streams of a video source are copied unchanged. ``quality="high"`` (default): H.264, CRF 14,
BT.709 4:2:0 (4:4:4 for odd sizes), visually lossless and plays everywhere; ``"lossless"``:
bit-exact RGB H.264 (libx264rgb, CRF 0; large files, fewer players). The container is the
source's (image sequences: .mp4). Written to a hidden temporary file and renamed when complete;
an input is never overwritten. A corrupt or truncated source stops with a ``VideoReadError``
naming the frame; every frame read before it is enhanced and kept, in ``<name>.partial<ext>``.

Temporal consistency (``window`` > 1, default ``DEFAULT_WINDOW`` = 9 frames): the whole-image
quantities a model's output depends on (``Restorer.global_context``: the flows' prior colour map
at reduced resolution, per-layer global statistics such as attention matrices, channel gates and
noise estimates) are computed for every frame and replaced by their mean over a centred window of ``window`` frames (``window // 2`` before and after, so a steady change of light
is followed without lag), restricted to the current shot: a scene cut, detected from the input
(``CutDetector``: a jump of the downscaled frame's mean-normalised colour layout or of its mean
brightness), starts a new window. Large frames are tiled and every tile uses the frame's smoothed
context. ``exposure`` (as ``Restorer.enhance_image``) uses one gain per frame smoothed the same
way. ``window=1`` enhances frame by frame (each frame's own context), batching ``batch`` frames
per model call where frames are not tiled.

Per model (what ``global_context`` holds): LLFlow and SSFlow share their prior colour map (and
any whole-image statistic); UPT-Flow shares its channel gates and transposed-attention matrices;
DEvUDP's instance-norm moments are shared by a frame's tiles but stay each frame's own
(``lljax.nn.image_stats.PER_FRAME``: they renormalise every frame to one output level, and
averaging them would bring the input's changes of light back; the batch-norm variants "dt" and
"fclgan" have no whole-image statistic), so ``window`` changes nothing for DEvUDP; INFWIDE
takes one blur kernel for the whole clip (``kernel``; a kernel sequence is not supported) and
shares its noise-to-signal estimates. LLFlow's histogram-equalised input is still each frame's.

Frame rate: the header's (average) rate, exact for NTSC rates (30000/1001, ...); a variable-rate
clip is written at that constant rate with every decoded frame once.

The command reports the output's flicker (``lljax.metrics.temporal``: mean frame-to-frame change
of global brightness and colour, scene cuts left out).

Needs ``imageio-ffmpeg`` (it ships an ffmpeg binary): ``pip install lljax[video]``.
"""

# The names of the former single module, importable from the package as before.
from lljax.video.cli import add_arguments, plan_videos, run, summary, wants_video
from lljax.video.pipeline import DEFAULT_BATCH, DEFAULT_WINDOW, VideoResult, enhance_video
from lljax.video.io import (DEFAULT_FPS, QUALITIES, VIDEO_EXTENSIONS, VideoDependencyError, VideoInfo, VideoReadError,
                            VideoWriteError, VideoWriter, ffmpeg_exe, is_video_file, open_source, probe, read_sequence,
                            read_video, sequence_files)
from lljax.video.temporal import CutDetector, _tree_mean, apply_gain, exposure_gain, smooth
