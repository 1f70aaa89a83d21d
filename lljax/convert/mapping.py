"""Strict, table-driven conversion of a PyTorch state_dict into a Flax params tree.

A converter is an ordered list of ``Rule(pattern, target, transform)``: ``pattern`` is a regex
that must match a whole torch key, ``target`` a ``/``-separated Flax path template using the
pattern's groups (``\\1``), or ``DROP`` for modules the official forward never uses. The first
matching rule wins. ``convert`` checks the result against the model's abstract params and
raises ONE ``ConversionError`` listing every unused source key, unfilled target and shape
mismatch, so a wrong or foreign checkpoint is diagnosed in a single run.
"""

import dataclasses
import re
from typing import Callable, Mapping

import flax
import numpy as np

DROP = object()


class ConversionError(ValueError):
  """The checkpoint does not fit the model; the message lists every problem."""


def conv_kernel(w):
  """torch conv weight (O, I, kh, kw) -> Flax HWIO (kh, kw, I, O)."""
  return np.transpose(w, (2, 3, 1, 0))


def dense_kernel(w):
  """torch Linear weight (O, I) -> Flax (I, O)."""
  return np.transpose(w)


def per_channel(v):
  """(1, C, 1, 1) / (C, 1, 1) / (C,) -> (C,)."""
  return np.reshape(v, (-1,))


def identity(v):
  return v


def shape_of(state, key, model):
  """The shape of ``state[key]``; a ``ConversionError`` saying the checkpoint is not a ``model``
  checkpoint when the key is missing (converters read their architecture off these shapes).
  ``model`` comes with its article: "an LLFlow"."""
  if key not in state:
    raise ConversionError(f"not {model} checkpoint: it has no {key!r} (first keys: {list(state)[:5]})")
  return tuple(state[key].shape)


@dataclasses.dataclass(frozen=True)
class Rule:
  pattern: str
  target: object  # str template or DROP
  transform: Callable[[np.ndarray], np.ndarray] = identity


def _limited(items, limit=12):
  items = list(items)
  shown = "\n    ".join(items[:limit])
  more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
  return f"\n    {shown}{more}"


def convert(state_dict: Mapping[str, np.ndarray], rules, abstract_params, *, source="checkpoint"):
  """Maps ``state_dict`` onto ``abstract_params`` (a tree of arrays or ShapeDtypeStructs).

  Returns:
    (params, dropped): the filled params tree (float32 numpy arrays cast to the target dtype)
    and the sorted list of torch keys dropped by name.
  Raises:
    ConversionError listing unused source keys, unfilled targets and shape mismatches.
  """
  compiled = [(re.compile(r.pattern), r) for r in rules]
  targets = flax.traverse_util.flatten_dict(abstract_params, sep="/")
  filled, dropped, unused, mismatched, duplicate = {}, [], [], [], []
  for key, value in state_dict.items():
    rule, match = next(((r, m) for p, r in compiled if (m := p.fullmatch(key))), (None, None))
    if rule is None:
      unused.append(key)
      continue
    if rule.target is DROP:
      dropped.append(key)
      continue
    path = match.expand(rule.target)
    if path not in targets:
      unused.append(f"{key} (-> {path}, which the model does not have)")
      continue
    array = rule.transform(np.asarray(value, dtype=np.float32))
    if tuple(array.shape) != tuple(targets[path].shape):
      mismatched.append(f"{key} {tuple(np.shape(value))} -> {path} expects {tuple(targets[path].shape)}")
      continue
    if path in filled:
      duplicate.append(f"{key} -> {path} (already filled)")
      continue
    filled[path] = array.astype(targets[path].dtype)
  unfilled = sorted(set(targets) - set(filled))
  problems = []
  if unused:
    problems.append(f"{len(unused)} unused checkpoint keys:{_limited(unused)}")
  if unfilled:
    problems.append(f"{len(unfilled)} model parameters not found in the checkpoint:{_limited(unfilled)}")
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatches:{_limited(mismatched)}")
  if duplicate:
    problems.append(f"{len(duplicate)} keys mapping to the same parameter:{_limited(duplicate)}")
  if problems:
    raise ConversionError(f"{source} does not match the model:\n  " + "\n  ".join(problems))
  return flax.traverse_util.unflatten_dict(filled, sep="/"), sorted(dropped)
