"""Config helpers: ``get_config(arg)`` argument parsing and loading config files by path.

Config files are plain modules with ``get_config(arg=None) -> ml_collections.ConfigDict``.
On the command line a file is named ``configs/llflow.py`` or ``configs/llflow.py:lol,quick``;
the part after ``:`` is the ``arg`` string: comma-separated tokens, each a bare preset or flag
name or ``key=value``.
"""

import importlib.util
import pathlib


class ConfigError(ValueError):
  """A config file or config argument is wrong; the message says what is allowed."""


def parse_arg(arg, *, presets, default_preset, flags=()):
  """Parses ``"lol,quick"`` into ``(preset, {flag: bool})``.

  Args:
    arg: the string after ``:`` or None.
    presets: allowed preset names (at most one may be given).
    default_preset: preset used when none is given.
    flags: allowed boolean flags.
  """
  preset, set_flags = None, {f: False for f in flags}
  for token in filter(None, (t.strip() for t in (arg or "").split(","))):
    name, _, value = token.partition("=")
    if name in presets and not value:
      if preset is not None:
        raise ConfigError(f"two presets given ({preset!r} and {name!r}); pick one of {', '.join(presets)}")
      preset = name
    elif name in set_flags:
      set_flags[name] = parse_bool(value, f"flag {name!r}") if value else True
    else:
      raise ConfigError(f"unknown config argument {token!r}; presets: {', '.join(presets)}"
                        + (f"; flags: {', '.join(flags)}" if flags else ""))
  return preset or default_preset, set_flags


def parse_bool(text, what, error=ConfigError):
  """``1``/``true``/``yes`` -> True, ``0``/``false``/``no`` -> False (any case).

  Anything else raises ``error(f"{what} takes true/false, got {text!r}")``.
  """
  if text.lower() in ("1", "true", "yes"):
    return True
  if text.lower() in ("0", "false", "no"):
    return False
  raise error(f"{what} takes true/false, got {text!r}")


def load_config(spec):
  """Loads ``path/to/config.py[:arg]`` and returns its ``get_config(arg)``."""
  path, _, arg = str(spec).partition(":")
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f"config file {path} does not exist")
  module_spec = importlib.util.spec_from_file_location(f"lljax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path} has no get_config(arg) function")
  return module.get_config(arg or None)
