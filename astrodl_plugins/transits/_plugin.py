# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in transit estimator through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The transit estimator."""
    from .estimator import TransitVetter

    return [TransitVetter]
