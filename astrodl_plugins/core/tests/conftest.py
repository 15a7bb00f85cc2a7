# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fixtures of the core tests: ``estimator`` is the tiny source-stamp
estimator (modules of the other families override it) and ``table`` its
table of the simulated image (quantiles 0.16 and 0.84).
"""

import pytest

from astrodl_plugins.core.tests.tiny import CENTERS, STAMP_KWARGS, make_ccd


@pytest.fixture(scope='module')
def estimator(tiny_stamp):
    return tiny_stamp


@pytest.fixture(scope='module')
def table(estimator):
    return estimator.predict(make_ccd(), positions=CENTERS,
                             quantiles=(0.16, 0.84), **STAMP_KWARGS)
