# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalSim simulators that make the training sets and sample data."""

from .sources import *  # noqa: F401, F403
from .stamps import *  # noqa: F401, F403
