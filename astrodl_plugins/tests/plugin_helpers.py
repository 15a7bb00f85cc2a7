# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Build and install small plugin distributions for the registry tests."""

import os
import subprocess
import sys
import textwrap

__all__ = ['PYPROJECT_TEMPLATE', 'write_project', 'pip_install']

PYPROJECT_TEMPLATE = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "{version}"

[project.entry-points.astrodl_plugins]
{entry_point} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""


def write_project(root, distribution, module, source, entry_point,
                  version='0.1'):
    """
    Write a one-module project whose module is an ``astrodl_plugins`` plugin.

    Parameters
    ----------
    root : `~pathlib.Path`
        Parent directory; the project goes to ``root / distribution``.
    distribution, module, entry_point : str
        Distribution name, module name and entry-point name.
    source : str
        Source code of the module (dedented).
    version : str, optional
        Distribution version.

    Returns
    -------
    project : `~pathlib.Path`
        The project directory.
    """
    project = root / distribution
    project.mkdir(parents=True)
    (project / 'pyproject.toml').write_text(PYPROJECT_TEMPLATE.format(
        distribution=distribution, version=version, module=module,
        entry_point=entry_point))
    (project / f'{module}.py').write_text(textwrap.dedent(source))
    return project


def pip_install(projects, target):
    """
    Install project directories into ``target`` with pip, offline.

    Parameters
    ----------
    projects : list of `~pathlib.Path`
        Project directories (built with the installed setuptools).
    target : `~pathlib.Path`
        Directory to install into (``pip install --target``).

    Raises
    ------
    RuntimeError
        If pip fails; the message holds its output.
    """
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
    env.pop('PYTHONWARNINGS', None)
    command = [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
               '--no-build-isolation', '--no-index', '--no-compile',
               '--target', str(target), *(str(p) for p in projects)]
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=600)
    if result.returncode != 0:
        msg = (f'pip install of {[p.name for p in projects]} failed with exit '
               f'code {result.returncode} (setuptools and wheel must be '
               f'installed):\n{result.stdout}\n{result.stderr}')
        raise RuntimeError(msg)
