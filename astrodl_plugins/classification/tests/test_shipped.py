# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The shipped classifiers against thresholds on small held-out sets.

Seed 3 is the held-out test seed of both training recipes; the full
10 000-stamp figures are in the model cards.
"""

import numpy as np
import pytest

import astrodl_plugins as adl
from astrodl_plugins.classification.evaluate import (
    expected_calibration_error,
    roc_auc,
)
from astrodl_plugins.simulate import (
    simulate_morphology_stamps,
    simulate_star_galaxy_stamps,
)


@pytest.fixture(scope='module')
def star_galaxy_set():
    return simulate_star_galaxy_stamps(600, seed=3, ranges={'snr': (20, 1000)})


def test_star_galaxy_auc(star_galaxy_set):
    images, truth = star_galaxy_set
    est = adl.get_estimator('star-galaxy')
    for bands, channels, threshold in ((('g', 'r', 'i'), [0, 1, 2], 0.995),
                                       (('r',), [1], 0.99)):
        table = est.predict_stamps(images[..., channels], bands=bands,
                                   psf_fwhm=truth['psf_fwhm'], n_samples=20,
                                   seed=0)
        auc = roc_auc(truth['label'] == 1, table['p_galaxy'].value)
        assert auc >= threshold, (bands, auc)


def test_galaxy_morphology_accuracy_and_calibration():
    images, truth = simulate_morphology_stamps(500, seed=3)
    est = adl.get_estimator('galaxy-morphology')
    table = est.predict_stamps(images, bands=('g', 'r', 'i'),
                               psf_fwhm=truth['psf_fwhm'], n_samples=20,
                               seed=0)
    accuracy = np.mean(table['class'] == truth['class'])
    assert accuracy >= 0.93
    probabilities = np.stack([table[f'p_{c}'].value for c in est.classes], 1)
    assert expected_calibration_error(probabilities, truth['label']) <= 0.05
