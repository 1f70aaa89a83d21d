"""A local web demo: ``python -m lljax.demo --models DIR [DIR ...] [--port 7860]``.

A page where one drops photos (JPEG/PNG, 16-bit PNG, any size), picks one of the given converted
releases or training workdirs, sets the model's settings and sees each result beside its input
with a before/after slider, the time taken and the image size; results download as full-size
PNGs. It runs locally and offline, on whatever device JAX uses. Pieces: ``catalog`` (the models
and their settings), ``jobs`` (photos through a model on one worker thread, with progress),
``server`` (the HTTP API and the page) and ``__main__`` (the command line).

Settings: INFWIDE asks for the photo's blur kernel image (PNG or .npy); flows have a sampling
temperature (0 decodes the mean, as the official code); an exposure control appears for every
model as soon as ``Restorer.enhance_image`` takes an ``exposure`` argument (the page follows its
signature, see ``catalog.controls``).

From Python (e.g. a notebook, where the accelerator belongs to the kernel)::

  server = lljax.demo.serve(["converted/llflow_lol"], port=0)   # background threads
  print(server.url); ...; server.close()
"""

from lljax.demo.server import DemoServer, serve

__all__ = ["DemoServer", "serve"]
