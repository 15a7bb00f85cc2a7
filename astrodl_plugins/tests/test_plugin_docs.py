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
        assert 'hello-flux' in table['name']
        row = table[list(table['name']).index('hello-flux')]
        assert row['plugin'] == 'hello'
        assert row['task'] == 'regression'

    def test_example_is_about_40_lines(self, example_files):
        code = [line for line in
                example_files['astrodl_hello/__init__.py'].splitlines()
                if line.strip()]
        assert len(code) <= 50
        assert 'def predict' not in example_files['astrodl_hello/__init__.py']

    def test_example_trains_and_measures(self, with_example):
        from astropy import units as u
        from astropy.nddata import NDData

        rng = np.random.default_rng(0)
        fluxes = rng.uniform(1.0, 10.0, 400)
        stamps = np.stack([_blob(16, 7.5, 7.5, flux) for flux in fluxes])
        stamps += rng.normal(0, 0.002, stamps.shape)
        estimator = get_estimator('hello-flux').fit(stamps, fluxes, seed=0)
        image = np.zeros((60, 90))
        image += _blob((60, 90), 20, 30, 2.0) + _blob((60, 90), 70, 40, 8.0)
        table = estimator.predict(NDData(image, unit=u.electron),
                                  positions=[[20, 30], [70, 40]],
                                  n_samples=10, seed=0)
        assert table.colnames == ['label', 'x_centroid', 'y_centroid',
                                  'flux', 'flux_err', 'rescale', 'flag']
        assert table['flux'].unit == u.electron
        assert np.all(table['flag'] == 0)
        np.testing.assert_allclose(table['flux'].value, [2.0, 8.0],
                                   rtol=0.25)


def _blob(shape, x, y, flux, sigma=1.5):
    shape = (shape, shape) if np.isscalar(shape) else shape
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    profile = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return flux * profile / profile.sum()
