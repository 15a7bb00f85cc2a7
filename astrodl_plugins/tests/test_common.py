# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
One contract, checked on every registered estimator that ships a preset
(the way scikit-learn's ``parametrize_with_checks`` does).
"""

import copy

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

import astrodl_plugins as adl
from astrodl_plugins.registry import _reset_registry


def _shipped_names():
    _reset_registry()
    table = adl.list_estimators()
    return [row['name'] for row in table if row['plugin'].startswith(
        'astrodl_plugins')]


def _photutils_table():
    """photutils' own catalog table of one tiny square source."""
    from photutils.segmentation import SegmentationImage, SourceCatalog

    data = np.zeros((5, 5))
    data[1:4, 1:4] = 1.0
    segment = SegmentationImage((data > 0).astype(np.int32))
    return SourceCatalog(data, segment).to_table(
        columns=['label', 'x_centroid', 'y_centroid'])


def _image(seed=0):
    from astrodl_plugins.simulate import simulate_galaxy_stamps

    stamps, _ = simulate_galaxy_stamps(2, seed=seed, n_processes=1,
                                       ranges={'snr': (100, 200),
                                               'psf_fwhm': (3.0, 3.0)},
                                       neighbour_fraction=0.0)
    data = np.zeros((96, 160), np.float32)
    data[16:80, 8:72] += stamps[0]
    data[16:80, 88:152] += stamps[1]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [30.0, -10.0]
    wcs.wcs.crpix = [80, 48]
    wcs.wcs.cdelt = [-0.25 / 3600, 0.25 / 3600]
    return CCDData(data, unit=u.electron, wcs=wcs,
                   uncertainty=StdDevUncertainty(np.full(data.shape, 10.0)),
                   meta={'PSF_FWHM': 3.0})


POSITIONS = np.array([[39.5, 47.5], [119.5, 47.5]])


def _small_spectrum():
    """One simulated galaxy spectrum (NISP-like) as NDData."""
    from astrodl_plugins.simulate.spectra import simulate_spectra

    spectra, _ = simulate_spectra(1, seed=5)
    return spectra[0]


#: The 1-D input of each 1-D estimator that does not measure light curves.
_SERIES_DATA = {'spec-redshift': _small_spectrum}


def _data(estimator, seed=0):
    """What the estimator measures: the image, a light curve or a spectrum."""
    if estimator.family == '1-d':
        from astrodl_plugins.tests.fields import small_light_curve

        return _SERIES_DATA.get(estimator.name, small_light_curve)()
    return _image(seed)


def _where(estimator, positions=POSITIONS):
    """
    Where the sources are: positions, or for the deblender (which splits
    segments) a segmentation image with a segment around each position;
    nothing for the 1-D family (it finds its rows in each input).
    """
    if estimator.family == '1-d':
        return {}
    if estimator.task != 'deblending':
        return {'positions': positions}
    from photutils.segmentation import SegmentationImage

    segm = np.zeros((96, 160), np.int32)
    for label, (x, y) in enumerate(positions, start=1):
        x, y = int(x), int(y)
        segm[y - 12:y + 13, x - 12:x + 13] = label
    return {'segmentation_image': SegmentationImage(segm)}


@pytest.fixture(scope='module', params=_shipped_names())
def estimator(request):
    return adl.get_estimator(request.param)


class TestEstimatorContract:
    def test_params_round_trip(self, estimator):
        cls = type(estimator)
        params = estimator.get_params()
        assert cls(**params).get_params() == params
        config = estimator.get_config()
        again = cls.from_config(copy.deepcopy(config)).get_config()
        assert again == config

    def test_declared_shape(self, estimator):
        from astrodl_plugins.core import (
            ImageToImageEstimator,
            SeriesEstimator,
            SourceStampEstimator,
        )
        from astrodl_plugins.core.flags import FLAG_NAMES

        families = [family for family in (SourceStampEstimator,
                                          ImageToImageEstimator,
                                          SeriesEstimator)
                    if isinstance(estimator, family)]
        assert len(families) == 1
        assert type(estimator).predict is families[0].predict
        assert set(estimator.flag_names) <= set(FLAG_NAMES)
        assert estimator.valid_ranges, 'the preset card has valid_ranges'
        assert set(estimator.range_margins) <= set(estimator.valid_ranges)
        assert repr(estimator).startswith(type(estimator).__name__ + '(')

    def test_save_and_reload_give_the_same_table(self, estimator, tmp_path):
        loaded = type(estimator).from_preset(estimator.save(tmp_path / 'p'))
        a = estimator.predict(_data(estimator), **_where(estimator), n_samples=4,
                              seed=3)
        b = loaded.predict(_data(estimator), **_where(estimator), n_samples=4,
                           seed=3)
        for name in estimator.output_names:
            assert np.array_equal(a[name], b[name], equal_nan=True)
        assert np.array_equal(a['flag'], b['flag'])

    def test_table_layout_and_units(self, estimator):
        table = estimator.predict(_data(estimator), **_where(estimator), n_samples=6,
                                  seed=0, quantiles=(0.16, 0.84))
        assert isinstance(table, QTable)
        assert table.colnames[-1] == 'flag'
        if estimator.family == '1-d':
            # Each row names its input.
            assert table.colnames[0] == 'index'
        else:
            assert table.colnames[:4] == ['label', 'x_centroid',
                                          'y_centroid', 'sky_centroid']
            # The centroids as photutils' SourceCatalog.to_table() gives
            # them (plain float64 pixels), so a join on label compares and
            # stacks.
            photutils = _photutils_table()
            for name in ('x_centroid', 'y_centroid'):
                assert type(table[name]) is type(photutils[name]), name
                assert table[name].dtype == photutils[name].dtype, name
                assert table[name].unit == photutils[name].unit, name
        # Dimensionless columns are plain; Quantities carry a real unit.
        for name in table.colnames:
            if isinstance(table[name], u.Quantity):
                assert table[name].unit != u.dimensionless_unscaled, name
        for name in estimator.output_names:
            for column in (f'{name}_err', f'{name}_q16', f'{name}_q84'):
                assert type(table[column]) is type(table[name]), column
                assert table[column].unit == table[name].unit, column
            assert np.all(np.asarray(table[f'{name}_err']) >= 0)
        for key in ('estimator', 'estimator_version', 'model_sha256',
                    'n_samples', 'seed', 'device', 'backend',
                    'backend_version', 'keras_version', 'flags'):
            assert key in table.meta, key

    def test_same_seed_same_table(self, estimator):
        a = estimator.predict(_data(estimator), **_where(estimator), n_samples=5,
                              seed=11)
        b = estimator.predict(_data(estimator), **_where(estimator), n_samples=5,
                              seed=11)
        c = estimator.predict(_data(estimator), **_where(estimator), n_samples=5,
                              seed=12)
        name = estimator.output_names[0]
        assert np.array_equal(a[name], b[name])
        assert not np.array_equal(a[f'{name}_err'], c[f'{name}_err'])

    def test_inputs_not_modified(self, estimator):
        if estimator.family == '1-d' and estimator.name in _SERIES_DATA:
            spectrum = _data(estimator)
            before = (spectrum.data.copy(), spectrum.mask.copy(),
                      spectrum.uncertainty.array.copy(), dict(spectrum.meta))
            estimator.predict(spectrum, n_samples=3, seed=0)
            assert np.array_equal(spectrum.data, before[0])
            assert np.array_equal(spectrum.mask, before[1])
            assert np.array_equal(spectrum.uncertainty.array, before[2])
            assert spectrum.meta.keys() == before[3].keys()
            return
        if estimator.family == '1-d':
            series = _data(estimator)
            before = (series['flux'].copy(), series.time.copy(),
                      dict(series.meta))
            estimator.predict(series, n_samples=3, seed=0)
            assert np.array_equal(series['flux'], before[0])
            assert np.array_equal(series.time.jd, before[1].jd)
            assert series.meta == before[2]
            return
        ccd = _image()
        before = (ccd.data.copy(), ccd.uncertainty.array.copy(),
                  dict(ccd.meta))
        positions = POSITIONS.copy()
        where = _where(estimator, positions)
        segm = where.get('segmentation_image')
        segm_before = None if segm is None else segm.data.copy()
        estimator.predict(ccd, **where, n_samples=3, seed=0)
        if segm is not None:
            assert np.array_equal(segm.data, segm_before)
        assert np.array_equal(ccd.data, before[0])
        assert np.array_equal(ccd.uncertainty.array, before[1])
        assert ccd.meta == before[2]
        assert ccd.mask is None
        assert np.array_equal(positions, POSITIONS)

    @pytest.mark.parametrize('kwargs, error, match', [
        ({'n_samples': -1}, ValueError, 'n_samples'),
        ({'batch_size': 0}, ValueError, 'batch_size'),
        ({'quantiles': (0.5, 1.5)}, ValueError, 'quantiles'),
        ({'device': 'tpu'}, ValueError, 'device'),
    ])
    def test_bad_keywords(self, estimator, kwargs, error, match):
        with pytest.raises(error, match=match):
            estimator.predict(_data(estimator), **_where(estimator), **kwargs)

    def test_bad_data(self, estimator):
        if estimator.family == '1-d':
            with pytest.raises(ValueError, match='1-D numeric'):
                estimator.predict(np.zeros(50, bool))
            with pytest.raises(ValueError, match='1-D numeric'):
                estimator.predict(np.zeros((2, 3, 50)))
            return
        if estimator.task == 'deblending':
            pytest.skip('deblender: bad input is tested in its own tests')
        with pytest.raises(TypeError, match='boolean'):
            estimator.predict(np.zeros((50, 50), bool), positions=[[25, 25]])
        with pytest.raises(ValueError, match='2-D'):
            # (3, 50, 50) is a band cube for the multi-band classifiers.
            estimator.predict(np.zeros((2, 3, 50, 50)), positions=[[25, 25]])
        with pytest.raises(ValueError, match='outside'):
            estimator.predict(_image(), positions=[[1000.0, 5.0]])
