# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Sphinx configuration of the astrodl_plugins documentation.

The shared settings of astropy-affiliated packages come from
``sphinx_astropy.conf.v2``; only what differs is set here. Build with::

    tox -e build_docs

The cross-references to other projects' documentation (intersphinx) need
their inventories, downloaded at build time. Each inventory is probed first
with a short timeout; those that cannot be fetched are left out, so that the
build also passes offline (set ``ASTRODL_DOCS_OFFLINE=1`` to skip the probe
and build without any). References to the projects left out are then not
checked; references to ``astrodl_plugins`` itself always are.
"""

import datetime
import importlib
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

try:
    from sphinx_astropy.conf.v2 import *  # noqa: F403
except ImportError:
    print('ERROR: the documentation requires the sphinx-astropy package to '
          'be installed: pip install "astrodl-plugins[docs]"')
    sys.exit(1)

# autodoc imports the package, which may import Keras: pin the backend and
# quieten TensorFlow's start-up logging, unless the caller chose otherwise.
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# -- Project information ------------------------------------------------------

project = 'astrodl_plugins'
author = 'astrodl_plugins developers'
copyright = f'2026-{datetime.datetime.now(datetime.UTC).year}, {author}'

try:
    from astrodl_plugins import __version__ as release
except (ImportError, AttributeError):
    try:
        release = metadata.version('astrodl-plugins')
    except metadata.PackageNotFoundError:
        # Not installed: document the source tree under a placeholder.
        release = '0.0.0'

# The short X.Y version.
version = '.'.join(release.split('.')[:2])

# -- General configuration ----------------------------------------------------

# Minimum Sphinx version (sphinx-astropy sets one too; ours is stricter).
needs_sphinx = '7.0'

# Cross-references to the libraries our API takes and returns.
intersphinx_mapping.update({  # noqa: F405
    'photutils': ('https://photutils.readthedocs.io/en/stable/', None),
    'regions': ('https://astropy-regions.readthedocs.io/en/stable/', None),
})


def _inventory_reachable(target, location, timeout=5):
    """Whether one intersphinx inventory location can be read."""
    if location is None:
        location = target.rstrip('/') + '/objects.inv'
    if '://' not in location:
        return os.path.exists(os.path.join(os.path.dirname(__file__),
                                           location))
    try:
        with urllib.request.urlopen(location, timeout=timeout) as response:
            response.read(64)
    except (OSError, ValueError):
        return False
    return True


def _drop_unreachable_inventories(mapping):
    """Remove from ``mapping`` the entries none of whose inventories can be
    read, and return their names.
    """
    if os.environ.get('ASTRODL_DOCS_OFFLINE', '').strip() not in ('', '0'):
        dropped = sorted(mapping)
        mapping.clear()
        return dropped
    probes = []
    for name, (target, locations) in mapping.items():
        if not isinstance(locations, tuple):
            locations = (locations,)
        probes += [(name, target, location) for location in locations]
    # Probe all at once: offline, the whole probe takes one timeout at most.
    with ThreadPoolExecutor(max_workers=max(len(probes), 1)) as pool:
        results = pool.map(lambda probe: (probe[0], _inventory_reachable(
            *probe[1:])), probes)
        reachable = {name for name, ok in results if ok}
    dropped = sorted(set(mapping) - reachable)
    for name in dropped:
        del mapping[name]
    return dropped


_offline_inventories = _drop_unreachable_inventories(intersphinx_mapping)  # noqa: F405
if _offline_inventories:
    print('intersphinx: cannot fetch the inventories of '
          f'{", ".join(_offline_inventories)}; building without links to '
          'them, and without checking references outside astrodl_plugins')

# Inheritance diagrams need Graphviz's ``dot`` program, which pip cannot
# install; leave them out so that the docs build from pip packages alone.
automodapi_inheritance_diagram = False

# Every reference must resolve (warnings are errors in ``tox -e build_docs``).
nitpicky = True
nitpick_ignore = [
    # classification/recipe.py names the module whose functions the API
    # reference documents under astrodl_plugins.simulate.
    ('py:obj', 'astrodl_plugins.simulate.classes'),
]
nitpick_ignore_regex = []
if _offline_inventories:
    # Without (some of) the inventories, references to other projects cannot
    # resolve: check only the package's own.
    nitpick_ignore_regex.append((r'py:.*', r'(?!astrodl_plugins\.).*'))


def _resolve_reexported(app, env, node, contnode):
    """Resolve ``astrodl_plugins.core.psf.name`` to ``astrodl_plugins.core.name``.

    A subpackage re-exports the public names of its modules and the API
    reference documents them there, under the subpackage; a reference that
    spells out the defining module links to that page.
    """
    target = node.get('reftarget', '')
    parts = target.split('.')
    if node.get('refdomain') != 'py' or parts[0] != 'astrodl_plugins':
        return None
    domain = env.get_domain('py')
    for drop in range(len(parts) - 2, 0, -1):
        alias = '.'.join(parts[:drop] + parts[drop + 1:])
        if alias not in domain.objects:
            continue
        # The same object under both names, not a namesake.
        try:
            objects = [importlib.import_module('.'.join(parts[:drop + 1])),
                       importlib.import_module('.'.join(parts[:drop]))]
            for name in parts[drop + 1:]:
                objects = [getattr(obj, name) for obj in objects]
        except (ImportError, AttributeError):
            return None
        if objects[0] is objects[1]:
            return domain.resolve_xref(env, node['refdoc'], app.builder,
                                       node['reftype'], alias, node, contnode)
    return None


def setup(app):
    app.connect('missing-reference', _resolve_reexported)


# -- Options for HTML output --------------------------------------------------

html_title = f'{project} v{release}'
htmlhelp_basename = f'{project}doc'

# -- Options for LaTeX output -------------------------------------------------

latex_documents = [('index', f'{project}.tex', f'{project} Documentation',
                    author, 'manual')]

# -- Options for manual page output -------------------------------------------

man_pages = [('index', project.lower(), f'{project} Documentation',
              [author], 1)]

# -- Model cards ----------------------------------------------------------------
# Each shipped preset's card (metrics, training data, the command that
# reproduces it) lives in its config.json; render one page per preset.


def _write_model_cards():
    import shutil
    from pathlib import Path

    from astrodl_plugins.core.cards import render_model_card, shipped_cards

    here = Path(__file__).parent / 'model_cards'
    for name, config, directory in shipped_cards():
        image = None
        for figure in directory.glob('*.png'):
            shutil.copy(figure, here / f'{name}-{figure.name}')
        if (directory / 'history.png').exists():
            image = f'{name}-history.png'
        (here / f'{name}.rst').write_text(render_model_card(config, image))


_write_model_cards()
