# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Estimator core: the base class and the three input families, the typed
predict context, flag bits, astropy inputs, device dispatch and the model
store. Importing it does not import Keras; the MC-dropout engine
(`astrodl_plugins.core.mc`) does. The core imports nothing from the
registry, the training code or the simulators.
"""

from .base import *  # noqa: F401, F403
from .context import *  # noqa: F401, F403
from .device import *  # noqa: F401, F403
from .flags import *  # noqa: F401, F403
from .image import *  # noqa: F401, F403
from .inputs import *  # noqa: F401, F403
from .psf import *  # noqa: F401, F403
from .series import *  # noqa: F401, F403
from .sources import *  # noqa: F401, F403
from .stamps import *  # noqa: F401, F403
