# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``import astrodl_plugins`` is light (the core's names load on first use),
so that ``astrodl`` refuses a bad call before loading anything heavy.
"""

import importlib
import subprocess
import sys

import astrodl_plugins.core as core


def test_core_exports_are_the_modules_all():
    # The lazy table of the core's names must follow the modules' __all__.
    for module, names in core._EXPORTS.items():
        public = importlib.import_module(f'astrodl_plugins.core.{module}')
        assert tuple(public.__all__) == names, module
    assert set(core.__all__) <= set(dir(core))
    for name in core.__all__:
        assert getattr(core, name) is not None


def test_unknown_core_name():
    try:
        core.no_such_name  # noqa: B018
    except AttributeError as error:
        assert 'no_such_name' in str(error)
    else:
        raise AssertionError('no AttributeError')


def test_package_import_is_light():
    code = ('import sys, astrodl_plugins, astrodl_plugins.cli; '
            "print([m for m in ('astropy.table', 'keras', 'tensorflow', "
            "'photutils', 'scipy') if m in sys.modules])")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip() == '[]', done.stdout
