# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Structural parameters of galaxies (Tuccillo et al. 2018)."""

from .estimator import *  # noqa: F401, F403
from .regions import *  # noqa: F401, F403
