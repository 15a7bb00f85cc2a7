# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Galaxy-scale strong lenses: a lens finder and a lens-parameter estimator."""

from .estimator import *  # noqa: F401, F403
