# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Bad inputs through the public API: every family refuses them with the
documented exception, naming the parameter, or flags the rows they touch.

The estimators are the shipped ``star-galaxy`` (three bands),
``galaxy-structure`` and ``deblender``; the 1-D family has no shipped
estimator, so its cases run on the tiny test one. The image is 64x64
pixels with two Gaussian sources.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import (
    CCDData,
    InverseVariance,
    NDData,
    StdDevUncertainty,
    VarianceUncertainty,
)
from astropy.table import QTable, Table
from astropy.utils.masked import Masked
from astropy.wcs import WCS

from astrodl_plugins import get_estimator
from astrodl_plugins.core.flags import SourceFlags

SHAPE = (64, 64)
#: Pixel x, y of the two sources.
POSITIONS = np.array([[20.0, 22.0], [44.0, 40.0]])
#: Settings shared by every call: few draws, fixed seed, PSF given.
KWARGS = {'n_samples': 2, 'seed': 1, 'psf_fwhm': 3.5}
MASKED = SourceFlags.MASKED


def make_image(seed=0):
    """Unit noise and two round Gaussian sources (FWHM 3.5 pixels)."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    data = np.random.default_rng(seed).normal(0.0, 1.0, SHAPE)
    for x, y in POSITIONS:
        data += 200.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2)
                               / (2 * 1.5 ** 2))
    return data


def source_mask():
    """One masked pixel, on the first source."""
    mask = np.zeros(SHAPE, bool)
    mask[22, 20] = True
    return mask


def make_wcs(naxis=2, cd=None):
    wcs = WCS(naxis=naxis)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN', 'WAVE'][:naxis]
    wcs.wcs.crval = [150.0, 2.0, 5e-7][:naxis]
    wcs.wcs.crpix = [32.0, 32.0, 1.0][:naxis]
    if cd is None:
        wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600, 1e-9][:naxis]
    else:
        wcs.wcs.cd = cd
    return wcs


def segmentation(data):
    from photutils.segmentation import detect_sources

    return detect_sources(data, 5.0, 5)


@pytest.fixture(scope='module')
def estimators(tiny_series):
    return {'star-galaxy': get_estimator('star-galaxy'),
            'galaxy-structure': get_estimator('galaxy-structure'),
            'deblender': get_estimator('deblender'),
            '1-d': tiny_series}


def run(estimators, name, data, **kwargs):
    """``predict`` of estimator ``name`` with the matrix's settings."""
    estimator = estimators[name]
    if name == '1-d':
        return estimator.predict(data, n_samples=2, seed=1, **kwargs)
    options = {**KWARGS, **kwargs}
    if name == 'deblender':
        if 'segmentation_image' not in options:
            array = np.asarray(getattr(data, 'data', data), np.float64)
            options['segmentation_image'] = segmentation(
                np.nan_to_num(array.reshape(-1, *SHAPE)[0]))
        return estimator.predict(data, **options)
    options.setdefault('positions', POSITIONS)
    return estimator.predict(data, **options)


def table_of_deg(image):
    table = Table({'x_centroid': POSITIONS[:, 0] * u.deg,
                   'y_centroid': POSITIONS[:, 1] * u.deg})
    return {'data': image, 'positions': table}


def with_uncertainty(uncertainty, unit='electron/s'):
    return {'data': NDData(make_image(), unit=unit, uncertainty=uncertainty)}


def negative_uncertainty(kind=StdDevUncertainty):
    error = np.ones(SHAPE)
    error[22, 20] = -1.0
    return with_uncertainty(kind(error))


def cube(**kwargs):
    data = np.stack([make_image(seed) for seed in range(3)])
    return {'data': NDData(data, unit='electron/s', **kwargs),
            'bands': ('g', 'r', 'i')}


def series(**kwargs):
    values = np.linspace(1.0, 2.0, 12)
    return {'data': NDData(values, unit='electron/s', **kwargs)}


# (id, estimator, inputs, exception, message pattern). Each pattern names
# the parameter at fault.
REFUSED = [
    # Units: an allow-list of flux-like units.
    ('unit-area', 'star-galaxy', lambda: {'data': make_image() * u.m ** 2},
     ValueError, r"data\['r'\] has unit 'm2' \(physical type 'area'\)"),
    ('unit-kelvin-per-s', 'galaxy-structure',
     lambda: {'data': make_image() * u.K / u.s}, ValueError,
     r"data has unit 'K / s'"),
    ('unit-pressure', 'deblender', lambda: {'data': make_image() * u.Pa},
     ValueError, r"data has unit 'Pa'"),
    ('unit-magnitude', 'galaxy-structure',
     lambda: {'data': NDData(make_image(), unit=u.ABmag)}, ValueError,
     r'data has unit .*logarithmic'),
    ('unit-temperature', 'star-galaxy',
     lambda: {'data': make_image() * u.K}, ValueError,
     r"data\['r'\] has unit 'K'.*brightness_temperature"),
    # Uncertainties.
    ('uncertainty-plain-array', 'galaxy-structure',
     lambda: with_uncertainty(np.ones(SHAPE)), TypeError,
     r'data\.uncertainty is of unknown kind.*StdDevUncertainty'),
    ('uncertainty-plain-array', 'deblender',
     lambda: with_uncertainty(np.ones(SHAPE)), TypeError,
     r'data\.uncertainty .*StdDevUncertainty'),
    ('uncertainty-shape', 'deblender',
     lambda: with_uncertainty(StdDevUncertainty(np.ones((32, 32)))),
     ValueError, r'data\.uncertainty has shape \(32, 32\), the data '
                 r'\(64, 64\)'),
    ('uncertainty-shape', 'star-galaxy',
     lambda: with_uncertainty(StdDevUncertainty(np.ones((64, 63)))),
     ValueError, r'data\[\'r\'\]\.uncertainty has shape \(64, 63\)'),
    ('uncertainty-negative', 'galaxy-structure', negative_uncertainty,
     ValueError, r'data\.uncertainty is negative at 1 unmasked pixels'),
    ('uncertainty-negative-variance', 'deblender',
     lambda: negative_uncertainty(VarianceUncertainty), ValueError,
     r'data\.uncertainty is negative'),
    ('cube-uncertainty-shape', 'star-galaxy',
     lambda: cube(uncertainty=StdDevUncertainty(np.ones(SHAPE))),
     ValueError, r'data\.uncertainty has shape \(64, 64\), the data '
                 r'\(3, 64, 64\)'),
    # Positions.
    ('positions-string', 'star-galaxy',
     lambda: {'data': make_image(), 'positions': '48,46'}, TypeError,
     r'positions must be \(N, 2\) pixel x, y.*got str'),
    ('positions-angle-columns', 'galaxy-structure',
     lambda: table_of_deg(make_image()), ValueError,
     r"positions\['x_centroid'\] has unit 'deg'.*SkyCoord"),
    ('positions-angle-columns', 'deblender',
     lambda: table_of_deg(make_image()), ValueError,
     r"positions\['x_centroid'\] has unit 'deg'.*SkyCoord"),
    ('positions-angle-quantity', 'galaxy-structure',
     lambda: {'data': make_image(), 'positions': POSITIONS * u.deg},
     ValueError, r"positions has unit 'deg'.*SkyCoord"),
    ('positions-ragged', 'galaxy-structure',
     lambda: {'data': make_image(), 'positions': [[1.0, 2.0], [3.0]]},
     ValueError, r'positions must have shape \(N, 2\)'),
    ('positions-nan', 'star-galaxy',
     lambda: {'data': make_image(), 'positions': [[20.0, np.nan]]},
     ValueError, r'positions \[0\] \(0-based\) are not finite'),
    ('positions-skycoord-without-wcs', 'galaxy-structure',
     lambda: {'data': make_image(),
              'positions': SkyCoord(150.0, 2.0, unit='deg')},
     ValueError, r'positions is a SkyCoord but the data have no celestial'),
    # PSF FWHM.
    ('psf-wrong-length', 'galaxy-structure',
     lambda: {'data': make_image(), 'psf_fwhm': [3.0, 3.0, 3.0]},
     ValueError, r'psf_fwhm must be one value or one per source \(2\), '
                 r'got 3 values'),
    ('psf-wrong-length', 'deblender',
     lambda: {'data': make_image(), 'psf_fwhm': [3.0, 3.5]},
     ValueError, r'psf_fwhm must be one value, got 2 values'),
    ('psf-string', 'galaxy-structure',
     lambda: {'data': make_image(), 'psf_fwhm': 'abc'}, TypeError,
     r'psf_fwhm must be a number'),
    ('psf-boolean', 'star-galaxy',
     lambda: {'data': make_image(), 'psf_fwhm': True}, TypeError,
     r'psf_fwhm must be a number'),
    # WCS.
    ('wcs-3-axes', 'galaxy-structure',
     lambda: {'data': NDData(make_image(), wcs=make_wcs(3))}, ValueError,
     r'data\.wcs has 3 pixel axes but the image is 2-D'),
    ('wcs-3-axes', 'deblender',
     lambda: {'data': NDData(make_image(), wcs=make_wcs(3))}, ValueError,
     r'data\.wcs has 3 pixel axes'),
    ('wcs-singular', 'galaxy-structure',
     lambda: {'data': NDData(make_image(),
                             wcs=make_wcs(cd=[[0.0, 0.0], [0.0, 0.0]]))},
     ValueError, r'data\.wcs is invalid \(its CD or PC/CDELT matrix'),
    ('wcs-singular-rank-1', 'star-galaxy',
     lambda: {'data': NDData(make_image(),
                             wcs=make_wcs(cd=[[1e-5, 1e-5], [1e-5, 1e-5]]))},
     ValueError, r"data\['r'\]\.wcs has a singular pixel-to-sky matrix"),
    # Masks and arrays.
    ('cube-mask-shape', 'star-galaxy',
     lambda: cube(mask=np.zeros((3, 64), bool)), ValueError,
     r'data\.mask has shape \(3, 64\); the cube \(3, 64, 64\) needs'),
    ('mask-shape', 'galaxy-structure',
     lambda: {'data': NDData(make_image(), mask=np.zeros((8, 8), bool))},
     ValueError, r'data\.mask has shape \(8, 8\), not \(64, 64\)'),
    ('complex-data', 'galaxy-structure',
     lambda: {'data': make_image() + 0j}, TypeError,
     r'data must be real, got dtype complex128'),
    ('pixel-scale-string', 'galaxy-structure',
     lambda: {'data': make_image(), 'pixel_scale': 'abc',
              'psf_fwhm': 0.7 * u.arcsec}, TypeError,
     r'pixel_scale must be an angle per pixel'),
    # The 1-D family.
    ('series-plain-uncertainty', '1-d',
     lambda: series(uncertainty=np.ones(12)), TypeError,
     r'data\.uncertainty is of unknown kind.*StdDevUncertainty'),
    ('series-uncertainty-shape', '1-d',
     lambda: series(uncertainty=StdDevUncertainty(np.ones(5))), ValueError,
     r'data\.uncertainty has shape \(5,\), the data \(12,\)'),
    ('series-negative-uncertainty', '1-d',
     lambda: series(uncertainty=StdDevUncertainty(-np.ones(12))),
     ValueError, r'data\.uncertainty is negative'),
    ('series-complex', '1-d', lambda: {'data': np.ones(12) + 1j},
     ValueError, r'data must be a non-empty 1-D numeric series of real'),
]


@pytest.mark.parametrize(
    ('estimator_name', 'make', 'exception', 'match'),
    [case[1:] for case in REFUSED],
    ids=[f'{case[0]}-{case[1]}' for case in REFUSED])
def test_refused(estimators, estimator_name, make, exception, match):
    inputs = make()
    data = inputs.pop('data')
    with pytest.raises(exception, match=match):
        run(estimators, estimator_name, data, **inputs)


def masked_array():
    return np.ma.masked_array(make_image(), mask=source_mask())


def uncertainty_with(value):
    error = np.ones(SHAPE)
    error[22, 20] = value
    return NDData(make_image(), unit='electron/s',
                  uncertainty=StdDevUncertainty(error))


# (id, estimator, data, keywords): the first source has a masked pixel.
FLAGGED = [
    ('numpy-masked-array', 'star-galaxy', masked_array, {}),
    ('numpy-masked-array', 'galaxy-structure', masked_array, {}),
    ('numpy-masked-array', 'deblender', masked_array, {}),
    ('astropy-masked-quantity', 'galaxy-structure',
     lambda: Masked(make_image() * u.electron / u.s, mask=source_mask()),
     {}),
    ('nddata-masked-array', 'galaxy-structure',
     lambda: NDData(np.ma.masked_array(make_image(), mask=source_mask())),
     {}),
    ('bands-masked-arrays', 'star-galaxy',
     lambda: [masked_array(), make_image(1)], {'bands': ('r', 'g')}),
    ('cube-2d-mask', 'star-galaxy',
     lambda: cube(mask=source_mask())['data'], {'bands': ('g', 'r', 'i')}),
    ('cube-numpy-masked', 'star-galaxy',
     lambda: np.ma.masked_array(np.stack([make_image()] * 3),
                                mask=np.broadcast_to(source_mask(),
                                                     (3, *SHAPE))),
     {'bands': ('g', 'r', 'i')}),
    ('nan-uncertainty', 'galaxy-structure',
     lambda: uncertainty_with(np.nan), {}),
    ('zero-uncertainty', 'deblender', lambda: uncertainty_with(0.0), {}),
    ('zero-uncertainty', 'galaxy-structure',
     lambda: uncertainty_with(0.0), {}),
]


@pytest.mark.parametrize(('estimator_name', 'make', 'kwargs'),
                         [case[1:] for case in FLAGGED],
                         ids=[f'{case[0]}-{case[1]}' for case in FLAGGED])
def test_flagged_masked(estimators, estimator_name, make, kwargs):
    table = run(estimators, estimator_name, make(), **kwargs)
    flags = np.asarray(table['flag'])
    if estimator_name == 'deblender':
        # The row of the masked source (its model window holds the pixel).
        near = np.hypot(np.asarray(table['x_centroid']) - 20,
                        np.asarray(table['y_centroid']) - 22) < 4
        assert near.any()
        assert np.all(flags[near] & MASKED)
    else:
        assert flags[0] & MASKED
        if estimators[estimator_name].stamp_size <= 32:
            # The second source's stamp does not reach the masked pixel.
            assert not flags[1] & MASKED


def test_masked_array_same_as_nddata_mask(estimators):
    """A NumPy mask and the same mask through NDData give one table."""
    estimator = estimators['galaxy-structure']
    first = estimator.predict(masked_array(), positions=POSITIONS, **KWARGS)
    second = estimator.predict(NDData(make_image(), mask=source_mask()),
                               positions=POSITIONS, **KWARGS)
    for name in first.colnames:
        np.testing.assert_array_equal(np.asarray(first[name]),
                                      np.asarray(second[name]))


def test_zero_uncertainty_not_precise(estimators):
    """A zero uncertainty masks its pixel: the deblender's fluxes and
    errors are those of the image with that pixel masked."""
    zero = run(estimators, 'deblender', uncertainty_with(0.0))
    mask = NDData(make_image(), unit='electron/s', mask=source_mask(),
                  uncertainty=StdDevUncertainty(np.ones(SHAPE)))
    masked = run(estimators, 'deblender', mask)
    assert len(zero) == len(masked) == 2
    for name in zero.colnames:
        np.testing.assert_array_equal(np.asarray(zero[name]),
                                      np.asarray(masked[name]))


@pytest.mark.parametrize('kind', [VarianceUncertainty, InverseVariance])
def test_uncertainty_kinds_converted(estimators, kind):
    """Variance and inverse variance give the table of the standard
    deviation they represent."""
    estimator = estimators['galaxy-structure']
    sigma = np.full(SHAPE, 2.0)
    value = sigma ** 2 if kind is VarianceUncertainty else sigma ** -2
    tables = [estimator.predict(
        NDData(make_image(), unit='adu', uncertainty=uncertainty),
        positions=POSITIONS, **KWARGS)
        for uncertainty in (StdDevUncertainty(sigma), kind(value))]
    for name in tables[0].colnames:
        np.testing.assert_allclose(np.asarray(tables[1][name]),
                                   np.asarray(tables[0][name]), rtol=1e-6)


def test_uncertainty_unit_converted(estimators):
    """An uncertainty in mJy on data in Jy is converted to Jy."""
    estimator = estimators['galaxy-structure']
    tables = [estimator.predict(
        NDData(make_image(), unit='Jy', uncertainty=uncertainty),
        positions=POSITIONS, **KWARGS)
        for uncertainty in (StdDevUncertainty(np.ones(SHAPE)),
                            StdDevUncertainty(np.full(SHAPE, 1e3),
                                              unit='mJy'),
                            StdDevUncertainty(np.full(SHAPE, 1e3)))]
    for name in tables[0].colnames:
        np.testing.assert_allclose(np.asarray(tables[1][name]),
                                   np.asarray(tables[0][name]), rtol=1e-6)
    # The uncertainty matters: 1000 Jy is not 1000 mJy.
    assert any(not np.allclose(np.asarray(tables[2][name]),
                               np.asarray(tables[0][name]), equal_nan=True)
               for name in tables[0].colnames if name != 'flag')


@pytest.mark.parametrize('unit', [
    u.adu, u.ct / u.s, u.electron / u.s, u.ph, u.DN, u.nmgy, u.Jy,
    u.erg / u.s / u.cm ** 2 / u.AA, u.W / u.m ** 2, u.MJy / u.sr,
    u.Jy / u.arcsec ** 2, u.Jy / u.beam, u.electron / u.s / u.pix,
    u.dimensionless_unscaled], ids=str)
def test_flux_units_accepted(estimators, unit):
    table = estimators['galaxy-structure'].predict(
        make_image() * unit, positions=POSITIONS, n_samples=0, seed=1,
        psf_fwhm=3.5)
    assert len(table) == 2


def test_series_masked_array(estimators):
    # MASKED above masked_fraction (a fifth) of the values, not for one.
    many = np.ma.masked_array(np.linspace(1.0, 2.0, 12),
                              mask=np.arange(12) % 3 == 0)
    one = np.ma.masked_array(np.linspace(1.0, 2.0, 12),
                             mask=np.arange(12) == 3)
    table = run(estimators, '1-d', [many, one, np.linspace(1.0, 2.0, 12)])
    np.testing.assert_array_equal(table['flag'], [MASKED, 0, 0])


def test_predict_stamps_masked_array(estimators):
    estimator = estimators['galaxy-structure']
    size = estimator.stamp_size
    stamps = np.ma.masked_array(np.stack([make_image()[:size, :size]] * 2))
    stamps[0, 30, 30] = np.ma.masked
    table = estimator.predict_stamps(stamps, **KWARGS)
    np.testing.assert_array_equal(table['flag'] & MASKED, [MASKED, 0])
    assert np.ma.getmaskarray(stamps).sum() == 1


def test_wcs_refused_before_the_network(estimators, monkeypatch):
    estimator = estimators['galaxy-structure']

    def no_network(*args, **kwargs):
        raise AssertionError('the network ran')

    monkeypatch.setattr(type(estimator), 'mc_engine', no_network)
    with pytest.raises(ValueError, match='data.wcs has 3 pixel axes'):
        estimator.predict(NDData(make_image(), wcs=make_wcs(3)),
                          positions=POSITIONS, **KWARGS)


def read_only(array):
    array = np.array(array)
    array.flags.writeable = False
    return array


class TestInputsNotMutated:
    """Data, mask, uncertainty and positions are never modified, even
    read-only ones."""

    def test_image_families(self, estimators):
        data = make_image()
        data[5, 5] = np.nan
        data = read_only(data)
        mask, error = read_only(source_mask()), np.ones(SHAPE)
        error[10, 10] = 0.0
        error = read_only(error)
        positions = read_only(POSITIONS)
        nd = CCDData(data, unit='electron/s', mask=mask,
                     uncertainty=VarianceUncertainty(error), copy=False)
        copies = [np.array(a) for a in (data, mask, error, positions)]
        run(estimators, 'galaxy-structure', nd, positions=positions)
        run(estimators, 'star-galaxy', [nd, nd], bands=('g', 'r'),
            positions=positions)
        run(estimators, 'deblender', nd, positions=positions,
            segmentation_image=segmentation(make_image()))
        run(estimators, 'galaxy-structure',
            np.ma.masked_array(data, mask=mask), positions=QTable(
                {'x_centroid': positions[:, 0] * u.pix,
                 'y_centroid': positions[:, 1] * u.pix}))
        for array, copy in zip((data, mask, error, positions), copies):
            np.testing.assert_array_equal(array, copy)
            assert not array.flags.writeable
        assert nd.data is data and nd.mask is mask

    def test_series(self, estimators):
        values = read_only(np.linspace(1.0, 2.0, 12))
        error = read_only(np.full(12, 0.1))
        mask = read_only(np.arange(12) == 2)
        run(estimators, '1-d', NDData(values, mask=mask,
                                      uncertainty=StdDevUncertainty(error)))
        np.testing.assert_array_equal(values, np.linspace(1.0, 2.0, 12))
        np.testing.assert_array_equal(error, 0.1)
        np.testing.assert_array_equal(mask, np.arange(12) == 2)
