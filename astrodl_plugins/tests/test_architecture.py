# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The package's shape, checked on its source: import graph without cycles,
layers that only import downwards, one flag definition, no reach-ins.
"""

import ast
from pathlib import Path

import pytest

import astrodl_plugins

ROOT = Path(astrodl_plugins.__file__).resolve().parent
PACKAGE = 'astrodl_plugins'
ESTIMATOR_PACKAGES = ('structure', 'classification', 'deblending', 'lenses',
                      'transits')


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def _sources():
    """Every package module except the tests: name -> (path, tree)."""
    modules = {}
    for path in sorted(ROOT.rglob('*.py')):
        relative = path.relative_to(ROOT)
        if 'tests' in relative.parts or relative.name == 'conftest.py':
            continue
        if relative.name == '_version.py':
            continue
        tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
        modules[_module_name(path)] = (path, tree)
    return modules


MODULES = _sources()


def _resolve(module, node):
    """Absolute names a ``from ... import`` / ``import`` node refers to."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split('.')
    is_package = MODULES[module][0].name == '__init__.py'
    if node.level:
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        prefix = '.'.join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ''
    names = []
    for alias in node.names:
        candidate = f'{prefix}.{alias.name}'
        names.append(candidate if candidate in MODULES else prefix)
    return names


def _imports(module):
    """Package modules imported anywhere in ``module`` (also lazily)."""
    found = set()
    for node in ast.walk(MODULES[module][1]):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _resolve(module, node):
                if name.startswith(PACKAGE) and name in MODULES:
                    found.add(name)
    found.discard(module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def _submodules_of(package_name):
    return [m for m in MODULES if m == package_name
            or m.startswith(package_name + '.')]


def _is_package_init(module):
    return MODULES[module][0].name == '__init__.py'


def test_no_import_cycle():
    # A package's __init__ re-exports its modules: importing the package
    # from one of them is not a cycle of ideas, so __init__ modules are
    # left out of the graph.
    graph = {module: {t for t in targets if not _is_package_init(t)}
             for module, targets in GRAPH.items()
             if not _is_package_init(module)}
    assert _cycles(graph) == []


@pytest.mark.parametrize('forbidden', [
    'astrodl_plugins.registry', 'astrodl_plugins.training',
    'astrodl_plugins.simulate', 'astrodl_plugins.cli',
    *(f'astrodl_plugins.{name}' for name in ESTIMATOR_PACKAGES)])
def test_core_imports_only_downwards(forbidden):
    offenders = {module: sorted(t for t in GRAPH[module]
                                if t == forbidden
                                or t.startswith(forbidden + '.'))
                 for module in _submodules_of('astrodl_plugins.core')}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize('package', ESTIMATOR_PACKAGES)
def test_inference_does_not_import_simulators(package):
    for name in ('estimator', 'network'):
        module = f'astrodl_plugins.{package}.{name}'
        assert module in MODULES, f'{module} is missing'
        simulators = [t for t in GRAPH[module]
                      if t.startswith('astrodl_plugins.simulate')]
        assert simulators == [], module


@pytest.mark.parametrize('package', ESTIMATOR_PACKAGES)
def test_estimator_packages_share_one_layout(package):
    for name in ('__init__', 'estimator', 'network', 'recipe', 'evaluate',
                 '_plugin'):
        assert (ROOT / package / f'{name}.py').is_file(), (package, name)
    assert (ROOT / package / 'tests').is_dir()


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_library_code_leaves_matplotlib_backend_alone():
    offenders = []
    for module, (_, tree) in MODULES.items():
        for node in _calls(tree):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == 'use'
                    and isinstance(func.value, ast.Name)
                    and func.value.id == 'matplotlib'):
                offenders.append(module)
    assert offenders == []


def test_no_bare_flag_bits():
    """Flag bits are set by name (SourceFlags), never as numbers."""
    offenders = []
    for module, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.AugAssign)
                    and isinstance(node.op, ast.BitOr)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, int)):
                offenders.append((module, node.lineno))
    assert offenders == []


def test_no_private_imports_across_modules():
    """No ``from other_module import _private`` inside the package."""
    offenders = []
    for module, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.name.startswith('_')
                            and not alias.name.startswith('__')
                            and alias.name != '_version'):
                        offenders.append((module, alias.name))
    assert offenders == []


@pytest.mark.parametrize('private', ['_engine', '_engine_cache', '_models',
                                     '_deblend_label_map'])
def test_no_reach_ins(private):
    """Private members of other objects are not touched."""
    allowed = {'_deblend_label_map': {'astrodl_plugins.core.segmentation'},
               '_models': {'astrodl_plugins.core.image'}}
    offenders = []
    for module, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == private
                    and not (isinstance(node.value, ast.Name)
                             and node.value.id == 'self')
                    and module not in allowed.get(private, ())):
                offenders.append((module, node.lineno))
    assert offenders == []


def test_every_estimator_fills_in_a_family():
    """Built-in estimators write hooks: ``predict`` comes from core."""
    from astrodl_plugins.core import (
        ImageToImageEstimator,
        SeriesEstimator,
        SourceStampEstimator,
    )
    from astrodl_plugins.registry import _estimator_records

    families = (SourceStampEstimator, ImageToImageEstimator, SeriesEstimator)
    records = _estimator_records()
    for name, record in records.items():
        if not record.plugin.startswith(PACKAGE):
            continue
        cls = record.cls
        family = next(f for f in families if issubclass(cls, f))
        assert cls.predict is family.predict, name
        assert cls.family == family.family
