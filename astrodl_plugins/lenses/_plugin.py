# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in lens estimators through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The lens-finder and lens-parameters estimators."""
    from .estimator import LensFinder, LensParameters

    return [LensFinder, LensParameters]
