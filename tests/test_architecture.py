"""The package's layering, read from its source with ``ast``: imports point
down only (no cycles, function-level imports included), library modules
never import a command line nor import gramjax lazily, and modules stay
small (docs/architecture.md)."""

import ast
import re

from tests.conftest import REPO

PACKAGE = REPO / 'gramjax'
COMMANDS = {'main', 'evaluate', 'predict', 'report', 'prepare', 'download'}
# The layer of every folder (and of the command modules at the top): a
# module may import only lower layers, or its own layer without a cycle
# between folders; the folder tree is the layer table.
LAYERS = {
    0: {'core'},
    1: {'models', 'metrics'},
    2: {'data', 'state'},
    3: {'inference', 'evaluation'},
    4: {'training'},
    5: {'reporting'},
    6: {'cli'} | COMMANDS,
}


def modules():
  out = {}
  for path in sorted(PACKAGE.rglob('*.py')):
    name = '.'.join(path.relative_to(PACKAGE).with_suffix('').parts)
    out[name.removesuffix('.__init__') or '__init__'] = path
  return out


def imports(name, path, names):
  """(target module, at module level?) for every gramjax import."""
  tree = ast.parse(path.read_text())
  top = {id(n) for n in tree.body}
  found = []
  for node in ast.walk(tree):
    targets = []
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # ``from gramjax.data import images``: the submodule (what it needs);
      # ``from gramjax.core.errors import UserError``: the module.
      targets = [f'{node.module}.{a.name}' for a in node.names]
    for t in targets:
      if not t.startswith('gramjax.'):
        continue
      t = t[len('gramjax.'):]
      while t and t not in names:
        t = t.rpartition('.')[0]
      if t and t != name and t != '__init__':
        found.append((t, id(node) in top))
  return found


def graph():
  mods = modules()
  return {n: imports(n, p, mods) for n, p in mods.items()}


def folder(name):
  """The layer unit of a module: its folder, or itself at the top."""
  return name.split('.')[0]


def layer(name):
  return next(l for l, names in LAYERS.items() if folder(name) in names)


def test_every_module_has_a_layer():
  assert {folder(m) for m in modules()} - {'__init__'} == set().union(
      *LAYERS.values())


def test_only_commands_sit_at_the_top():
  top = {m for m, path in modules().items()
         if '.' not in m and path.name != '__init__.py'}
  assert top == {'cli'} | COMMANDS, sorted(top - {'cli'} - COMMANDS)


def test_imports_point_down_and_never_lazily_in_the_library():
  for name, targets in graph().items():
    if name == '__init__':
      continue
    for target, at_top in targets:
      assert layer(target) <= layer(name), f'{name} imports {target}'
      assert target not in COMMANDS, f'{name} imports the command {target}'
      if name not in COMMANDS:
        assert at_top, f'{name} imports {target} inside a function'


def folder_graph():
  edges = {}
  for n, ts in graph().items():
    edges.setdefault(folder(n), set()).update(
        folder(t) for t, _ in ts if folder(t) != folder(n))
  return edges


def test_no_import_cycle():
  check_acyclic({n: {t for t, _ in ts} for n, ts in graph().items()})


def test_no_import_cycle_between_folders():
  check_acyclic(folder_graph())


def check_acyclic(edges):
  state = {}

  def visit(n, stack):
    state[n] = 'open'
    for m in edges.get(n, ()):
      assert state.get(m) != 'open', ' -> '.join(stack + [n, m])
      if m not in state:
        visit(m, stack + [n])
    state[n] = 'done'

  for n in edges:
    if n not in state:
      visit(n, [])


def test_modules_stay_small():
  for name, path in modules().items():
    lines = len(path.read_text().splitlines())
    limit = 250 if name in COMMANDS else 400
    assert lines <= limit, f'{name}: {lines} lines (limit {limit})'


def test_library_functions_stay_short():
  """No function of the library over 60 lines (docstring included)."""
  long = []
  for name, path in modules().items():
    if name in COMMANDS or name == 'cli':
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > 60:
          long.append(f'{name}.{node.name}: {length} lines')
  assert not long, long


def test_no_library_string_names_a_command_line_flag():
  """Library functions are called from Python too: their messages name
  config keys and values; only the commands speak of --flags."""
  found = []
  for name, path in modules().items():
    if '.' not in name:          # The commands, cli and __init__.
      continue
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                    ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)}
    for node in ast.walk(tree):
      if (isinstance(node, ast.Constant) and isinstance(node.value, str)
          and id(node) not in docstrings):
        for flag in re.findall(r'(?<![\\w-])--[a-z][a-z_.]+', node.value):
          found.append(f'{name}:{node.lineno}: {flag}')
  assert not found, found
