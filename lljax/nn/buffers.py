"""Torch buffers (running statistics, fixed filters) kept in the ``params`` tree.

lljax model directories, converters, the API and the trainers all handle one ``params`` tree.
A module that owns non-trainable state, such as BatchNorm's running statistics or SSFlow's
Gram-Schmidt filters, declares it with ``buffer``: the value is stored as a parameter but read
through ``stop_gradient``, so the loss never moves it. Training mode is signalled the Flax way,
by making the ``"buffers"`` collection mutable in ``apply`` (like ``"actnorm_init"`` for
ActNorm): the module then behaves as torch's ``train()`` and writes the buffer's *next* value
into that collection (``set_buffer``; by default the unchanged value). After each optimizer
step the trainer writes those values back into the params with ``assign_buffers``, so the
optimizer (momentum, weight decay) never changes a buffer. Without the collection mutable
(``lljax.load(...)``, evaluation) modules behave as torch's ``eval()``.
"""

import flax
import jax
import jax.numpy as jnp

BUFFERS = "buffers"


def is_training(module):
  """True when ``module`` runs in torch's train mode (the buffers collection is mutable)."""
  return not module.is_initializing() and module.is_mutable_collection(BUFFERS)


def buffer(module, name, init_fn, shape):
  """Declares buffer ``name`` of ``module`` (inside its compact ``__call__``); returns its value.

  In training mode the current value is recorded as the buffer's next value; call
  ``set_buffer`` afterwards to change it.
  """
  value = module.param(name, init_fn, shape)
  if is_training(module):
    module.put_variable(BUFFERS, name, value)
  return jax.lax.stop_gradient(value)


def set_buffer(module, name, value):
  """Sets the value buffer ``name`` takes after this training step."""
  module.put_variable(BUFFERS, name, jax.lax.stop_gradient(value))


def assign_buffers(params, values, assign_if=None):
  """Returns ``params`` with every buffer replaced by its value from a ``"buffers"`` collection.

  ``assign_if``: optional boolean scalar; the buffers are assigned where it is True and
  keep their current values where it is False (e.g. a skipped non-finite update).
  """
  values = flax.traverse_util.flatten_dict(flax.core.unfreeze(values or {}))
  if not values:
    return params
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  for path, value in values.items():
    if path not in flat:
      raise KeyError(f"buffer {'/'.join(path)} has no matching parameter")
    value = value.astype(flat[path].dtype)
    flat[path] = value if assign_if is None else jnp.where(assign_if, value, flat[path])
  return flax.traverse_util.unflatten_dict(flat)
