# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The 1-D family: `read_series` and a tiny `SeriesEstimator`, which shows
that the shared pipeline does not assume 2-D stamps.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import NDData, StdDevUncertainty, VarianceUncertainty
from astropy.table import QTable, Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.series import Series, read_series
from astrodl_plugins.core.tests.tiny import TinySeries, level_series
from astrodl_plugins.exceptions import NotFittedError

KWARGS = dict(n_samples=6, seed=3)


class FakeSpectrum(NDData):
    """What read_series sees of a specutils Spectrum: a spectral_axis."""

    def __init__(self, flux, spectral_axis, **kwargs):
        super().__init__(flux, **kwargs)
        self.spectral_axis = spectral_axis


def spectrum(n=8):
    flux = np.linspace(1.0, 2.0, n) * u.Jy
    mask = np.zeros(n, bool)
    mask[2] = True
    return FakeSpectrum(flux, np.linspace(5000.0, 6000.0, n) * u.AA,
                        mask=mask,
                        uncertainty=StdDevUncertainty(np.full(n, 0.1)))


class TestReadSeries:
    def test_array(self):
        (series,) = read_series(np.arange(5))
        assert isinstance(series, Series)
        assert series.values.dtype == np.float64
        np.testing.assert_array_equal(series.values, np.arange(5))
        assert not series.mask.any()
        assert series.error is None and series.unit is None
        assert series.coordinate is None and series.coordinate_unit is None
        assert series.meta == {}

    def test_batch(self):
        batch = np.arange(12.0).reshape(3, 4)
        series = read_series(batch)
        assert len(series) == 3
        np.testing.assert_array_equal(series[2].values, [8, 9, 10, 11])

    def test_list_of_lengths(self):
        series = read_series([np.ones(3), np.ones(7) * u.m, [1, 2]])
        assert [len(s.values) for s in series] == [3, 7, 2]
        assert series[1].unit == u.m

    def test_list_of_numbers_is_one_series(self):
        (series,) = read_series([1.0, 2.0, 3.0])
        np.testing.assert_array_equal(series.values, [1.0, 2.0, 3.0])

    def test_quantity(self):
        (series,) = read_series(np.arange(4.0) * u.mJy)
        assert series.unit == u.mJy
        np.testing.assert_array_equal(series.values, np.arange(4.0))

    def test_quantity_batch(self):
        series = read_series(np.ones((2, 5)) * u.Jy)
        assert [s.unit for s in series] == [u.Jy, u.Jy]

    def test_nddata_mask_uncertainty(self):
        values = np.arange(1.0, 7.0)
        mask = np.array([0, 1, 0, 0, 0, 0], bool)
        variance = np.full(6, 4.0)
        variance[4] = 0.0
        nd = NDData(values, unit='electron', mask=mask,
                    uncertainty=VarianceUncertainty(variance),
                    meta={'OBJECT': 'x'})
        (series,) = read_series(nd)
        assert series.unit == u.electron
        np.testing.assert_allclose(series.error[[0, 1, 2, 3, 5]], 2.0)
        # Masked, and a zero uncertainty, mark bad values.
        np.testing.assert_array_equal(series.mask,
                                      [False, True, False, False, True,
                                       False])
        assert series.meta == {'OBJECT': 'x'}

    def test_non_finite_masked(self):
        (series,) = read_series(np.array([1.0, np.nan, np.inf, 2.0]))
        np.testing.assert_array_equal(series.mask, [False, True, True, False])

    def test_spectrum_like(self):
        (series,) = read_series(spectrum())
        assert series.coordinate_unit == u.AA
        np.testing.assert_allclose(series.coordinate[[0, -1]], [5000, 6000])
        assert series.unit == u.Jy
        np.testing.assert_array_equal(series.error, 0.1)
        assert series.mask.sum() == 1 and series.mask[2]

    def test_specutils(self):
        specutils = pytest.importorskip('specutils')
        Spectrum = getattr(specutils, 'Spectrum', None) or getattr(
            specutils, 'Spectrum1D')

        spec = Spectrum(flux=np.ones(5) * u.Jy,
                        spectral_axis=np.arange(5.0) * u.um)
        (series,) = read_series(spec)
        assert series.coordinate_unit == u.um

    def test_timeseries_numeric_time(self):
        ts = TimeSeries(time=Time(59000.0 + np.arange(5), format='mjd'),
                        data={'flux': np.arange(5.0) * u.Jy,
                              'flux_err': np.full(5, 0.5) * u.Jy})
        (series,) = read_series(ts)
        assert series.unit == u.Jy
        np.testing.assert_array_equal(series.values, np.arange(5.0))
        np.testing.assert_array_equal(series.error, 0.5)
        np.testing.assert_array_equal(series.coordinate,
                                      59000.0 + np.arange(5))

    def test_timeseries_iso_time(self):
        ts = TimeSeries(time_start=Time('2020-01-01T00:00:00'),
                        time_delta=1 * u.min, n_samples=4,
                        data={'flux': np.arange(4.0) * u.Jy})
        (series,) = read_series(ts)
        assert np.isfinite(series.coordinate).all()
        assert series.coordinate_unit == u.day

    def test_timeseries_other_flux_column(self):
        ts = TimeSeries(time=Time(np.arange(4.0), format='mjd'),
                        data={'sap_flux': np.ones(4), 'sap_flux_err':
                              np.full(4, 0.1),
                              'pdcsap_flux': np.arange(4.0)})
        (series,) = read_series(ts)
        # pdcsap_flux is preferred to sap_flux; no pdcsap_flux_err column.
        np.testing.assert_array_equal(series.values, np.arange(4.0))
        assert series.error is None

    @pytest.mark.parametrize('column', ['quality', 'sap_quality'])
    def test_timeseries_quality_bits(self, column):
        # astropy's kepler.fits reader calls Kepler's column sap_quality.
        ts = TimeSeries(time=Time(np.arange(4.0), format='mjd'),
                        data={'pdcsap_flux': np.ones(4),
                              column: np.array([0, 32, 2048, 1], np.int32)})
        (series,) = read_series(ts)
        # Desaturation (32) and attitude tweak (1) mask; stray light
        # (2048) is informational.
        np.testing.assert_array_equal(series.mask,
                                      [False, True, False, True])

    def test_masked_table_column(self):
        table = Table({'flux': np.ma.masked_array([1.0, 2.0, 3.0],
                                                  mask=[0, 1, 0])})
        (series,) = read_series(table)
        np.testing.assert_array_equal(series.mask, [False, True, False])
        assert series.coordinate is None

    def test_table_without_flux(self):
        with pytest.raises(ValueError, match="data has no flux column.*'x'"):
            read_series(QTable({'x': [1.0, 2.0]}))

    def test_list_names_in_errors(self):
        with pytest.raises(ValueError, match=r'data\[1\] must be a non-empty '
                                             '1-D numeric series'):
            read_series([np.ones(3), np.ones((2, 2, 2))])

    @pytest.mark.parametrize('data', [np.ones((2, 2, 2)), np.array([]),
                                      np.array(['a', 'b']),
                                      np.array([True, False]), 3.0])
    def test_bad_input(self, data):
        with pytest.raises(ValueError, match='must be a non-empty 1-D '
                                             'numeric series'):
            read_series(data)

    def test_empty_list(self):
        with pytest.raises(ValueError, match='data is an empty list'):
            read_series([])

    def test_name(self):
        with pytest.raises(ValueError, match='spectra must be'):
            read_series(np.array([]), name='spectra')

    def test_inputs_untouched(self):
        values = np.array([1.0, np.nan, 3.0])
        nd = NDData(values.copy(), mask=np.array([0, 0, 1], bool))
        (series,) = read_series(nd)
        series.values[:] = 0.0
        series.mask[:] = False
        np.testing.assert_array_equal(nd.data, values)
        np.testing.assert_array_equal(nd.mask, [False, False, True])


@pytest.fixture(scope='module')
def estimator(tiny_series):
    return tiny_series


@pytest.fixture(scope='module')
def data():
    return level_series(5, seed=1)[0]


class TestPredict:
    def test_table(self, estimator, data):
        table = estimator.predict(data, quantiles=(0.16, 0.84), **KWARGS)
        assert table.colnames == ['index', 'level', 'level_err', 'level_q16',
                                  'level_q84', 'flag']
        np.testing.assert_array_equal(table['index'], np.arange(5))
        assert np.isfinite(table['level']).all()
        assert (table['level_err'] > 0).all()
        assert table['flag'].dtype == np.int32
        np.testing.assert_array_equal(table['flag'], 0)
        assert table['level'].unit is None

    def test_meta(self, estimator, data):
        table = estimator.predict(data, **KWARGS)
        assert table.meta['estimator'] == 'tiny-series'
        assert table.meta['n_samples'] == KWARGS['n_samples']
        assert set(table.meta['flags']) == {1, 2, 4, 8}

    def test_family(self):
        assert TinySeries.family == '1-d'

    def test_same_seed(self, estimator, data):
        first = estimator.predict(data, **KWARGS)
        second = estimator.predict(list(data), **KWARGS)
        np.testing.assert_array_equal(first['level'], second['level'])
        third = estimator.predict(data, n_samples=6, seed=4)
        assert not np.array_equal(first['level'], third['level'])

    def test_zero_samples(self, estimator, data):
        first = estimator.predict(data, n_samples=0, seed=0,
                                  uncertainty_parts=True)
        second = estimator.predict(data, n_samples=0, seed=9)
        np.testing.assert_array_equal(first['level'], second['level'])
        np.testing.assert_array_equal(first['level_err_epistemic'], 0.0)

    def test_scale_invariant(self, estimator, data):
        # The inputs are scaled by their largest value: so is the level.
        first = estimator.predict(data, **KWARGS)
        second = estimator.predict(10 * data, **KWARGS)
        np.testing.assert_allclose(second['level'], 10 * first['level'],
                                   rtol=1e-5)

    def test_mixed_inputs(self, estimator):
        nd = NDData(np.linspace(1.0, 2.0, 10), unit='Jy')
        ts = TimeSeries(time=Time(np.arange(6.0), format='mjd'),
                        data={'flux': np.ones(6)})
        table = estimator.predict([np.ones(4), nd, ts, spectrum()], **KWARGS)
        assert len(table) == 4
        assert np.isfinite(table['level']).all()
        # One masked value in eight: below masked_fraction, no flag.
        np.testing.assert_array_equal(table['flag'], [0, 0, 0, 0])

    def test_masked_and_unusable(self, estimator):
        masked = np.linspace(1.0, 2.0, 12)
        masked[3:7] = np.nan  # a third masked: more than masked_fraction
        table = estimator.predict([np.ones(12), masked, [1.0, np.nan],
                                   [np.nan] * 5], **KWARGS)
        flags = table['flag']
        assert flags[0] == 0
        assert flags[1] == SourceFlags.MASKED
        # Fewer than min_points (3) good values: NaN row.
        assert flags[2] == SourceFlags.MASKED | SourceFlags.UNUSABLE
        assert flags[3] == SourceFlags.MASKED | SourceFlags.UNUSABLE
        assert np.isfinite(table['level'][:2]).all()
        assert np.isnan(table['level'][2:]).all()

    def test_range_from_aux(self, estimator):
        # n_points (context.aux) is checked against the card: >= 4.
        table = estimator.predict([np.ones(3), np.ones(4), np.ones(40)],
                                  **KWARGS)
        np.testing.assert_array_equal(
            table['flag'], [SourceFlags.OUT_OF_RANGE, 0, 0])

    def test_all_unusable(self, estimator):
        table, samples = estimator.predict([[1.0], [2.0, np.nan]],
                                           return_samples=True, **KWARGS)
        assert len(table) == 2
        assert np.all(table['flag'] & SourceFlags.UNUSABLE)
        assert np.isnan(table['level']).all()
        assert samples['level'].shape == (2, KWARGS['n_samples'])

    def test_return_samples(self, estimator, data):
        table, samples = estimator.predict(data, return_samples=True,
                                           **KWARGS)
        assert list(samples) == ['level']
        assert samples['level'].shape == (5, KWARGS['n_samples'])
        # Dimensionless: plain, as the table's column.
        assert not isinstance(samples['level'], u.Quantity)
        np.testing.assert_allclose(samples['level'].mean(axis=1),
                                   table['level'], rtol=1e-6)

    def test_uncertainty_parts(self, estimator, data):
        table = estimator.predict(data, uncertainty_parts=True, **KWARGS)
        np.testing.assert_allclose(
            np.hypot(table['level_err_epistemic'],
                     table['level_err_aleatoric']), table['level_err'],
            rtol=1e-6)

    def test_batches(self, estimator, data):
        first = estimator.predict(data, batch_size=2, **KWARGS)
        second = estimator.predict(data, batch_size=2, **KWARGS)
        np.testing.assert_array_equal(first['level'], second['level'])

    def test_unknown_keyword(self, estimator, data):
        with pytest.raises(TypeError, match="unexpected keyword.*'window'"):
            estimator.predict(data, window=3, **KWARGS)

    def test_bad_arguments(self, estimator, data):
        with pytest.raises(ValueError, match='n_samples must be'):
            estimator.predict(data, n_samples=-1)
        with pytest.raises(ValueError, match='must be a non-empty 1-D'):
            estimator.predict(np.ones((2, 2, 2)), **KWARGS)

    def test_not_fitted(self, data):
        with pytest.raises(NotFittedError, match='no trained model'):
            TinySeries().predict(data)
