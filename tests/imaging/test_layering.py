"""The data packages import one way: tfds_builders -> lljax.imaging, lljax.data -> both."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _imported_modules(path):
  """Every module an `import` or `from ... import` anywhere in the file names (absolute)."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f'{path}: relative import'
      yield node.module
      yield from (f'{node.module}.{alias.name}' for alias in node.names)


@pytest.mark.parametrize('folder, forbidden', [
    ('lljax/imaging', ('lljax.data', 'tfds_builders')),
    ('tfds_builders', ('lljax.data',)),
])
def test_lower_packages_do_not_import_upper_ones(folder, forbidden):
  files = sorted((REPO / folder).rglob('*.py'))
  assert files
  bad = [f'{path.relative_to(REPO)} imports {module}' for path in files
         for module in _imported_modules(path)
         if any(module == f or module.startswith(f + '.') for f in forbidden)]
  assert not bad, bad
