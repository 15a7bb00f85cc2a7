# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in structure estimators through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The galaxy-structure estimator."""
    from .estimator import GalaxyStructure

    return [GalaxyStructure]
