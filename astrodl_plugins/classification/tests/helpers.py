# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared helpers of the classifier tests."""

from astrodl_plugins.classification import StarGalaxyClassifier
from astrodl_plugins.classification import network as net

#: Stamp size of the tiny test classifiers.
STAMP = 24


def tiny(cls=StarGalaxyClassifier, seed=0):
    """An untrained, tiny classifier with the shipped PSF range in its card."""
    import keras

    keras.utils.set_random_seed(seed)
    estimator = cls(stamp_size=STAMP, widths=(4, 4), dense=8)
    estimator.model_ = net.build_classifier(STAMP, len(cls.classes),
                                            widths=(4, 4), dense=8)
    estimator.temperature_ = 1.0
    estimator.card_ = {'valid_ranges': {'psf_fwhm': [1.5, 6.0]}}
    return estimator
