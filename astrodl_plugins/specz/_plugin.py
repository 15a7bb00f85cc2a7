# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in spectroscopic-redshift estimator through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The spectroscopic-redshift estimator."""
    from .estimator import SpecRedshift

    return [SpecRedshift]
