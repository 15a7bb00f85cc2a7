# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Spectroscopic redshifts of galaxies from their 1-D spectra."""

from .estimator import *  # noqa: F401, F403
