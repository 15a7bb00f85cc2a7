# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Structural parameters of galaxies (Tuccillo et al. 2018)."""

from .galaxy_structure import *  # noqa: F401, F403
