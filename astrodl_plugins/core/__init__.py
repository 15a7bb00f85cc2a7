# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Estimator core: base class, inputs, MC-dropout engine, device dispatch,
model store. Importing it does not import Keras; the MC-dropout engine
(`astrodl_plugins.core.mc`) does.
"""

from .device import *  # noqa: F401, F403
from .estimator import *  # noqa: F401, F403
from .inputs import *  # noqa: F401, F403
