# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Registers the built-in classifiers through the plugin hook."""

from ..registry import hookimpl


@hookimpl
def astrodl_register_estimators():
    """The star-galaxy and galaxy-morphology estimators."""
    from .estimator import GalaxyMorphology, StarGalaxyClassifier

    return [StarGalaxyClassifier, GalaxyMorphology]
