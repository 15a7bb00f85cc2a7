# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in deblender through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The deblender estimator."""
    from .estimator import Deblender

    return [Deblender]
