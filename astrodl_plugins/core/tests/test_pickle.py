# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Estimators pickle (multiprocessing, Dask): an unpickled estimator gives
the table of the original, bit for bit, and keeps its provenance.
"""

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

import astrodl_plugins as adl
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    STAMP_KWARGS,
    assert_same_tables,
    blob_stamps,
    make_ccd,
    make_segmentation,
)


def _predict(estimator, name):
    """A short seeded call of a shipped estimator on small inputs."""
    if name == 'galaxy-morphology':
        stamps, _ = blob_stamps(3, size=estimator.stamp_size, bands=3)
        return estimator.predict_stamps(stamps, bands=('g', 'r', 'i'),
                                        psf_fwhm=3.0, n_samples=4, seed=5)
    if name == 'deblender':
        return estimator.predict(make_ccd(),
                                 segmentation_image=make_segmentation(),
                                 n_samples=4, seed=5)
    return estimator.predict(make_ccd(), positions=CENTERS, n_samples=4,
                             seed=5, psf_fwhm=3.0)


@pytest.mark.parametrize('name', ['star-galaxy', 'galaxy-morphology',
                                  'galaxy-structure', 'deblender'])
def test_shipped_estimator_round_trip(name):
    estimator = adl.get_estimator(name)
    before = _predict(estimator, name)  # builds the engines and their lock
    clone = pickle.loads(pickle.dumps(estimator))
    assert type(clone) is type(estimator)
    assert clone.get_params() == estimator.get_params()
    assert clone.preset_info_ == estimator.preset_info_
    assert clone.model_sha256_ == estimator.model_sha256_
    assert '_engines' not in clone.__dict__
    after = _predict(clone, name)
    assert after.meta['preset'] == name
    assert after.meta['model_sha256'] == estimator.model_sha256_
    assert_same_tables(before, after)
    # The original still works after being pickled.
    assert_same_tables(_predict(estimator, name), after)


def test_unfitted_estimator():
    cls = type(adl.get_estimator('galaxy-structure'))
    estimator = cls(stamp_size=32)
    clone = pickle.loads(pickle.dumps(estimator))
    assert type(clone) is cls
    assert clone.get_params() == estimator.get_params()
    assert not clone._is_fitted()


def test_tiny_estimator_fitted_state(tiny_stamp):
    table = tiny_stamp.predict(make_ccd(), positions=CENTERS, **STAMP_KWARGS)
    clone = pickle.loads(pickle.dumps(tiny_stamp))
    assert clone.get_config() == tiny_stamp.get_config()
    again = clone.predict(make_ccd(), positions=CENTERS, **STAMP_KWARGS)
    assert_same_tables(table, again)


def _measure_in_worker(estimator):
    return _predict(estimator, 'galaxy-structure')


def test_process_pool():
    """A spawned worker process receives the estimator by pickle."""
    estimator = adl.get_estimator('galaxy-structure')
    expected = _predict(estimator, 'galaxy-structure')
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        table = pool.submit(_measure_in_worker, estimator).result(timeout=120)
    assert_same_tables(expected, table)
