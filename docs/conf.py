# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Sphinx configuration of the astrodl_plugins documentation.

The shared settings of astropy-affiliated packages come from
``sphinx_astropy.conf.v2``; only what differs is set here. Build with::

    tox -e build_docs

Where the intersphinx inventories cannot be downloaded (no network), add
``-D disable_intersphinx=1`` after ``--``.
"""

import datetime
import os
import sys
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

# Inheritance diagrams need Graphviz's ``dot`` program, which pip cannot
# install; leave them out so that the docs build from pip packages alone.
automodapi_inheritance_diagram = False

# Unresolved references are not errors (yet): turn on once the API settles.
nitpicky = False

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
