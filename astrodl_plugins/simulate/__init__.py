# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The simulators (GalSim, lenstronomy, batman) that make the training sets
and sample data.
"""

from .blends import *  # noqa: F401, F403
from .classes import *  # noqa: F401, F403
from .lenses import *  # noqa: F401, F403
from .spectra import *  # noqa: F401, F403
from .structure import *  # noqa: F401, F403
from .transits import *  # noqa: F401, F403
