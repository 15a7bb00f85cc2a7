# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Tiny test estimators of the three input families, and a small image.

They exercise the core without the built-in estimator packages: the
networks have a few hundred weights, so an untrained one is built in a
fraction of a second (enough for shapes, flags, seeds, units and errors)
and a one- or two-epoch ``fit`` on synthetic data takes a second or two.

* `TinyStamp` (`SourceStampEstimator` + `TrainableMixin`): ``flux`` and
  ``size`` of a stamp, PSF required, ``OUT_OF_RANGE`` through
  ``range_margins``, ``supports_tta``. `TinyStampNoPSF` ignores the PSF,
  `TinyStampEstimatePSF` estimates it when not given; `TinyMultiBand`
  reads the bands g, r, i (reference band r).
* `TinySeries` (`SeriesEstimator` + `TrainableMixin`): the mean ``level``
  of a 1-D series. `TinySeriesPair` adds a second network (``other``,
  a ``spread`` column): two networks saved and fitted.
* `TinySegments` (`ImageToImageEstimator`): one object per segment, at
  its centroid; ``flux`` from the MC engine; the segment's pixels as the
  model image.
"""

from .checks import *  # noqa: F401, F403
from .data import *  # noqa: F401, F403
from .image import *  # noqa: F401, F403
from .networks import *  # noqa: F401, F403
from .series import *  # noqa: F401, F403
from .stamps import *  # noqa: F401, F403
