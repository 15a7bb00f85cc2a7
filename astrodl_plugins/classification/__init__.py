# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Source classification: star/galaxy separation and galaxy morphology."""

from .base import *  # noqa: F401, F403
from .morphology import *  # noqa: F401, F403
from .star_galaxy import *  # noqa: F401, F403
