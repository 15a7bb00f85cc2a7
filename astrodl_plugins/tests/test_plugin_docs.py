# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Install and run the plugin example of ``docs/plugins.rst``."""

import importlib
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from astrodl_plugins import get_estimator, list_estimators, registry
from astrodl_plugins.tests.plugin_helpers import pip_install

# Each example file is a code-block preceded by the comment ``.. file: PATH``.
FILE_MARKER = re.compile(r'\.\. file: (?P<path>\S+)\s*')
CODE_BLOCK = re.compile(r'\.\. code-block::')
OPTION = re.compile(r'\s+:[\w-]+:')


def docs_page(config):
    """``docs/plugins.rst`` of the source tree, or None if not available."""
    # Next to the package in a checkout; in the pytest root directory when
    # the tests run against an installed package (tox).
    for root in (Path(__file__).parents[2], config.rootpath):
        page = root / 'docs' / 'plugins.rst'
        if page.is_file():
            return page
    return None


def extract_files(text):
    """Return ``{path: content}`` of the code blocks marked with a path."""
    lines = text.splitlines()
    files = {}
    index = 0
    while index < len(lines):
        marker = FILE_MARKER.fullmatch(lines[index])
        index += 1
        if marker is None:
            continue
        while index < len(lines) and not lines[index].strip():
            index += 1
        if index == len(lines) or not CODE_BLOCK.match(lines[index]):
            msg = (f'.. file: {marker["path"]} must be followed by a '
                   f'code-block directive (line {index + 1}).')
            raise ValueError(msg)
        index += 1
        while index < len(lines) and OPTION.match(lines[index]):
            index += 1
        block = []
        while index < len(lines) and (not lines[index].strip()
                                      or lines[index][0].isspace()):
            block.append(lines[index])
            index += 1
        files[marker['path']] = textwrap.dedent('\n'.join(block)).strip(
            '\n') + '\n'
    return files


@pytest.fixture(scope='module')
def example_files(request):
    page = docs_page(request.config)
    if page is None:
        pytest.skip('docs/plugins.rst is not available (no source tree)')
    return extract_files(page.read_text(encoding='utf-8'))


@pytest.fixture(scope='module')
def example_site(example_files, tmp_path_factory):
    root = tmp_path_factory.mktemp('docs-example')
    project = root / 'astrodl-hello'
    for name, content in example_files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding='utf-8')
    site = root / 'site'
    pip_install([project], site)
    return site


@pytest.fixture
def with_example(example_site, monkeypatch):
    monkeypatch.setattr(registry, 'BUILTIN_PLUGINS',
                        ('astrodl_plugins.tests.dummy_plugin',))
    monkeypatch.delenv(registry.DISABLE_EXTERNAL_ENV, raising=False)
    monkeypatch.syspath_prepend(str(example_site))
    importlib.invalidate_caches()
    registry._reset_registry()
    yield
    registry._reset_registry()
    sys.modules.pop('astrodl_hello', None)


class TestPluginExample:

    def test_extract_files(self):
        text = textwrap.dedent("""\
            .. file: a/b.py

            .. code-block:: python
               :caption: a/b.py

               x = 1

                   y = 2
            Not code.
            """)
        assert extract_files(text) == {'a/b.py': 'x = 1\n\n    y = 2\n'}
        with pytest.raises(ValueError, match='must be followed by a code'):
            extract_files('.. file: c.py\n\nText.\n')

    def test_page_has_both_files(self, example_files):
        assert set(example_files) == {'pyproject.toml',
                                      'astrodl_hello/__init__.py'}
        assert '[project.entry-points.astrodl_plugins]' in (
            example_files['pyproject.toml'])

    def test_example_is_registered(self, with_example):
        table = list_estimators()
        assert 'hello-peak' in table['name']
        row = table[list(table['name']).index('hello-peak')]
        assert row['plugin'] == 'hello'
        assert row['task'] == 'measurement'

    def test_example_predicts_peak(self, with_example):
        result = get_estimator('hello-peak').predict(
            np.arange(9.).reshape(3, 3))
        assert result['peak'][0] == 8
