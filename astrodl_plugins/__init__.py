# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Deep-learning estimators for astronomy, extensible through plugins."""

try:
    from ._version import version as __version__
except ImportError:
    __version__ = '0.0.dev0'

from .registry import get_estimator, hookimpl, list_estimators

__all__ = ['__version__', 'hookimpl', 'list_estimators', 'get_estimator']
