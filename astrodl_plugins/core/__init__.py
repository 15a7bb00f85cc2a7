# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Estimator core: base class, MC-dropout engine, device dispatch, model store."""

from .estimator import *  # noqa: F401, F403
