# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared helpers of the core tests."""

from astrodl_plugins.structure import GalaxyStructure
from astrodl_plugins.structure._network import build_network

#: Stamp size of the tiny test estimator.
STAMP = 32


def tiny_estimator(seed=0):
    """An untrained, tiny GalaxyStructure (no shipped weights needed)."""
    import keras

    keras.utils.set_random_seed(seed)
    estimator = GalaxyStructure(stamp_size=STAMP, widths=(4, 4, 4), dense=8)
    estimator.model_ = build_network(STAMP, (4, 4, 4), 8, 0.1)
    estimator.target_mean_ = [0.0] * 6
    estimator.target_std_ = [1.0] * 6
    estimator.error_scale_ = {}
    return estimator
