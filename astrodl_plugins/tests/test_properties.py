# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Property tests: whatever small image a user passes (NaN blocks, masks,
extreme values, constant or empty data), every row that comes back is
finite or carries a flag bit, and the only exception is a documented
`ValueError` naming what was wrong.
"""

import warnings

import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import astrodl_plugins as adl  # noqa: E402

EXTREMES = [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e300, 0.0, 1e-300]


@st.composite
def images(draw):
    """A small image with a Gaussian source and random damage."""
    size = draw(st.integers(24, 72))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y, x = np.mgrid[:size, :size]
    cx, cy = (draw(st.floats(0.0, size - 1.0)) for _ in range(2))
    sigma = draw(st.floats(0.5, 8.0))
    amplitude = draw(st.sampled_from([0.0, 1.0, 100.0, 1e6]))
    data = amplitude * np.exp(-((x - cx) ** 2 + (y - cy) ** 2)
                              / (2 * sigma ** 2))
    noise = draw(st.sampled_from([0.0, 1.0, 1e-3]))
    data = data + noise * rng.standard_normal(data.shape)
    mask = np.zeros(data.shape, bool)
    for _ in range(draw(st.integers(0, 3))):
        value = draw(st.sampled_from(EXTREMES))
        x0, y0 = (draw(st.integers(0, size - 1)) for _ in range(2))
        width = draw(st.integers(1, size))
        block = (slice(y0, y0 + width), slice(x0, x0 + width))
        if draw(st.booleans()):
            data[block] = value
        else:
            mask[block] = True
    uncertainty = None
    if draw(st.booleans()):
        uncertainty = StdDevUncertainty(np.full(data.shape, max(noise, 0.1)))
    image = NDData(data, mask=mask, uncertainty=uncertainty,
                   meta={'PSF_FWHM': draw(st.floats(1.5, 5.0))})
    return image, (cx, cy)


def _check_rows(table):
    flag = np.asarray(table['flag'])
    for name in table.colnames:
        value = np.asarray(getattr(table[name], 'value', table[name]))
        if value.dtype.kind != 'f':
            continue
        bad = ~np.isfinite(value.reshape(len(table), -1)).all(axis=1)
        assert np.all(flag[bad] != 0), (
            f'{name}: non-finite value in an unflagged row')


@pytest.fixture(scope='module', params=['galaxy-structure', 'star-galaxy'])
def estimator(request):
    return adl.get_estimator(request.param)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(case=images())
def test_every_row_finite_or_flagged(estimator, case):
    image, centre = case
    before = np.array(image.data, copy=True)
    try:
        with warnings.catch_warnings():
            # Astropy's and NumPy's warnings about odd data are fine; an
            # exception must be a ValueError that says what was wrong.
            warnings.simplefilter('ignore')
            table = estimator.predict(image, positions=[centre], n_samples=2,
                                      seed=0)
    except ValueError as error:
        message = str(error)
        assert any(word in message for word in (
            'data', 'psf', 'PSF', 'mask', 'uncertainty', 'positions',
            'position')), message
    else:
        assert len(table) == 1
        _check_rows(table)
    np.testing.assert_array_equal(image.data, before)
