# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Source classification: star/galaxy separation and galaxy morphology."""

from .estimator import *  # noqa: F401, F403
