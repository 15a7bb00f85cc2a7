# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Exoplanet transits: search light curves and vet each candidate signal."""

from .estimator import *  # noqa: F401, F403
