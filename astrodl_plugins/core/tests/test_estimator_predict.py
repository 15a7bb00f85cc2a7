# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of Estimator.predict with a tiny, untrained GalaxyStructure."""

import copy

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable, join
from astropy.wcs import WCS
from photutils.segmentation import SegmentationImage, SourceCatalog

from astrodl_plugins.core.device import available_gpus
from astrodl_plugins.core.tests.helpers import tiny_estimator
from astrodl_plugins.exceptions import DeviceNotAvailableError

SHAPE = (80, 100)
#: Pixel x, y of the sources; stamps of 32 pixels stay inside the image.
CENTERS = np.array([(30.0, 30.0), (70.0, 50.0), (24.0, 60.0)])
LABELS = [2, 5, 9]
OUTPUTS = ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux')
KWARGS = dict(n_samples=6, seed=3)




def make_wcs(scale_arcsec=0.2):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [50.0, 40.0]
    return wcs


def image_data():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    data = rng.normal(0.0, 1.0, SHAPE)
    for x, y in CENTERS:
        data += 100.0 * np.exp(-((xx - x) ** 2 + 0.6 * (yy - y) ** 2) / 8.0)
    return data


def make_ccd(wcs=True, meta=True, data=None):
    data = image_data() if data is None else data
    return CCDData(data, unit='electron/s',
                   wcs=make_wcs() if wcs else None,
                   uncertainty=StdDevUncertainty(np.ones(SHAPE)),
                   mask=np.zeros(SHAPE, bool),
                   meta={'PSF_FWHM': 3.0} if meta else {})


def make_segmentation():
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    segm = np.zeros(SHAPE, int)
    for (x, y), label in zip(CENTERS, LABELS):
        segm[np.hypot(xx - x, yy - y) <= 5] = label
    return SegmentationImage(segm)


@pytest.fixture(scope='module')
def estimator():
    return tiny_estimator()


@pytest.fixture(scope='module')
def table(estimator):
    return estimator.predict(make_ccd(), positions=CENTERS,
                             quantiles=(0.16, 0.84), **KWARGS)


class TestColumns:
    def test_columns(self, table):
        expected = ['label', 'x_centroid', 'y_centroid', 'sky_centroid']
        for name in OUTPUTS:
            expected += [name, f'{name}_err', f'{name}_q16', f'{name}_q84']
        expected.append('flag')
        assert table.colnames == expected
        assert isinstance(table, QTable)
        assert len(table) == len(CENTERS)

    def test_values(self, table):
        np.testing.assert_array_equal(table['label'], [1, 2, 3])
        np.testing.assert_array_equal(table['x_centroid'].value,
                                      CENTERS[:, 0])
        assert table['x_centroid'].unit == u.pix
        sky = make_wcs().pixel_to_world(CENTERS[:, 0], CENTERS[:, 1])
        assert (table['sky_centroid'].separation(sky) < 1e-6 * u.arcsec).all()
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name
            assert (table[f'{name}_err'] >= 0).all(), name
        assert table['flag'].dtype == np.int32
        # Untrained network: only the range flag may be set.
        assert (table['flag'] & ~4 == 0).all()

    def test_no_quantile_columns_by_default(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        assert not [name for name in table.colnames if '_q' in name]
        assert table.meta['quantiles'] == []

    def test_units_with_wcs(self, table):
        assert table['r_eff'].unit == u.arcsec
        assert table['r_eff_err'].unit == u.arcsec
        assert table['r_eff_q16'].unit == u.arcsec
        assert table['flux'].unit == u.electron / u.s
        assert table['flux_err'].unit == u.electron / u.s
        assert table['position_angle'].unit == u.deg
        assert table['sersic_n'].unit == u.dimensionless_unscaled
        assert table['axis_ratio'].unit == u.dimensionless_unscaled
        pa = table['position_angle'].value
        assert ((pa >= 0) & (pa < 180)).all()

    def test_units_without_wcs(self, estimator):
        ccd = make_ccd(wcs=False)
        pix = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        assert 'sky_centroid' not in pix.colnames
        assert pix['r_eff'].unit == u.pix
        assert pix.meta['r_eff_unit'].startswith('pix')
        assert pix.meta['angle_convention'] == 'counter-clockwise from +x'
        scaled = estimator.predict(ccd, positions=CENTERS,
                                   pixel_scale=0.2 * u.arcsec / u.pix,
                                   **KWARGS)
        assert scaled['r_eff'].unit == u.arcsec
        np.testing.assert_allclose(scaled['r_eff'].value,
                                   0.2 * pix['r_eff'].value, rtol=1e-6)
        np.testing.assert_allclose(scaled['r_eff_err'].value,
                                   0.2 * pix['r_eff_err'].value, rtol=1e-6)
        np.testing.assert_allclose(scaled['sersic_n'], pix['sersic_n'])

    def test_wcs_same_scale_as_pixel_scale(self, estimator):
        with_wcs = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        scaled = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                   pixel_scale=0.2 * u.arcsec, **KWARGS)
        np.testing.assert_allclose(with_wcs['r_eff'], scaled['r_eff'],
                                   rtol=1e-6)

    def test_flux_unit_dimensionless_for_ndarray(self, estimator):
        table = estimator.predict(image_data(), positions=CENTERS,
                                  psf_fwhm=3.0, **KWARGS)
        assert table['flux'].unit == u.dimensionless_unscaled

    def test_flux_unit_of_quantity(self, estimator):
        table = estimator.predict(image_data() * u.Jy, positions=CENTERS,
                                  psf_fwhm=3.0, **KWARGS)
        assert table['flux'].unit == u.Jy


class TestMeta:
    def test_meta(self, table):
        meta = table.meta
        assert meta['estimator'] == 'galaxy-structure'
        assert 'model_sha256' in meta
        assert meta['n_samples'] == KWARGS['n_samples']
        assert meta['seed'] == KWARGS['seed']
        assert meta['device'] == 'cpu:0' or meta['device'].startswith('gpu')
        import keras

        assert meta['backend'] == keras.backend.backend()
        assert meta['keras_version'] == keras.__version__
        assert meta['angle_convention'] == 'east of north'
        assert meta['quantiles'] == [0.16, 0.84]
        assert set(meta['flags']) == {1, 2, 4, 8}

    def test_same_seed_same_table(self, estimator, table):
        again = estimator.predict(make_ccd(), positions=CENTERS,
                                  quantiles=(0.16, 0.84), **KWARGS)
        for name in table.colnames:
            if name == 'sky_centroid':
                continue
            np.testing.assert_array_equal(np.asarray(again[name]),
                                          np.asarray(table[name]),
                                          err_msg=name)

    def test_different_seed_differs(self, estimator, table):
        other = estimator.predict(make_ccd(), positions=CENTERS,
                                  quantiles=(0.16, 0.84), n_samples=6,
                                  seed=4)
        assert not np.array_equal(other['r_eff'], table['r_eff'])

    def test_seed_none_recorded(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=4, seed=None)
        seed = table.meta['seed']
        assert isinstance(seed, int) and seed >= 0
        again = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=4, seed=seed)
        np.testing.assert_array_equal(again['r_eff'], table['r_eff'])

    def test_zero_samples(self, estimator):
        first = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=0, seed=1)
        second = estimator.predict(make_ccd(), positions=CENTERS,
                                   n_samples=0, seed=2)
        assert first.meta['n_samples'] == 0
        np.testing.assert_array_equal(first['r_eff'], second['r_eff'])


class TestSegmentation:
    def test_labels(self, estimator):
        ccd = make_ccd()
        segm = make_segmentation()
        table = estimator.predict(ccd, segmentation_image=segm, **KWARGS)
        np.testing.assert_array_equal(table['label'], LABELS)
        np.testing.assert_allclose(table['x_centroid'].value, CENTERS[:, 0],
                                   atol=0.3)
        np.testing.assert_allclose(table['y_centroid'].value, CENTERS[:, 1],
                                   atol=0.3)

    def test_join_source_catalog(self, estimator):
        ccd = make_ccd()
        segm = make_segmentation()
        table = estimator.predict(ccd, segmentation_image=segm, **KWARGS)
        catalog = SourceCatalog(ccd.data, segm).to_table(
            columns=['label', 'x_centroid', 'area'])
        # No meta conflict: our meta keys differ from photutils' ('date').
        joined = join(table, catalog, keys='label',
                      table_names=['adl', 'phot'])
        assert len(joined) == len(LABELS)
        np.testing.assert_array_equal(joined['label'], LABELS)
        np.testing.assert_allclose(joined['x_centroid_adl'].value,
                                   np.asarray(joined['x_centroid_phot']),
                                   atol=1e-6)
        assert (joined['area'] > 0).all()


class TestBadPixels:
    def test_nan_pocket_over_one_source(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                  **KWARGS)
        assert table['flag'][1] & (1 | 8)
        assert table['flag'][1] & 8
        assert np.isnan(table['r_eff'][1])
        for row in (0, 2):
            assert table['flag'][row] & (1 | 2 | 8) == 0
            for name in OUTPUTS:
                assert np.isfinite(table[name][row]), name

    def test_every_source_unusable(self, estimator):
        data = image_data()
        for x, y in CENTERS.astype(int):
            data[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                  **KWARGS)
        assert len(table) == len(CENTERS)
        assert np.all(table['flag'] & 8)
        for name in OUTPUTS:
            assert np.all(np.isnan(table[name])), name
            assert np.all(np.isnan(table[f'{name}_err'])), name

    def test_small_mask_is_flagged_but_measured(self, estimator):
        ccd = make_ccd()
        x, y = CENTERS[0].astype(int)
        ccd.mask[y + 8, x + 8] = True
        table = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        assert table['flag'][0] & 1
        assert not table['flag'][0] & 8
        assert np.isfinite(table['r_eff'][0])
        assert table['flag'][1] & 1 == 0

    def test_segment_fully_masked(self, estimator):
        ccd = make_ccd()
        segm = make_segmentation()
        x, y = CENTERS[2].astype(int)
        ccd.mask[y - 6:y + 7, x - 6:x + 7] = True
        table = estimator.predict(ccd, segmentation_image=segm, **KWARGS)
        np.testing.assert_array_equal(table['label'], LABELS)
        assert table['flag'][2] & 8
        assert np.isfinite(table['r_eff'][:2]).all()


class TestArguments:
    @pytest.mark.parametrize('value', [-1, 1.5, True, '5'])
    def test_n_samples(self, estimator, value):
        with pytest.raises(ValueError, match='n_samples must be an integer'):
            estimator.predict(make_ccd(), positions=CENTERS, n_samples=value)

    @pytest.mark.parametrize('value', [0, -3, 2.0])
    def test_batch_size(self, estimator, value):
        with pytest.raises(ValueError, match='batch_size must be an integer'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              batch_size=value)

    @pytest.mark.parametrize('value', [-1, 1.5])
    def test_seed(self, estimator, value):
        with pytest.raises(ValueError, match='seed must be None or an '
                                             'integer'):
            estimator.predict(make_ccd(), positions=CENTERS, seed=value)

    @pytest.mark.parametrize('value', [(0.0, 0.5), (1.2,)])
    def test_quantiles(self, estimator, value):
        with pytest.raises(ValueError, match=r'quantiles must lie in'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              quantiles=value)

    def test_missing_psf_fwhm(self, estimator):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              **KWARGS)

    @pytest.mark.parametrize('value', [0.0, -2.0, np.nan])
    def test_bad_psf_fwhm(self, estimator, value):
        with pytest.raises(ValueError, match='psf_fwhm must be positive'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              psf_fwhm=value, **KWARGS)

    def test_psf_fwhm_angle_needs_pixel_scale(self, estimator):
        with pytest.raises(ValueError,
                           match='psf_fwhm is an angle.*pixel scale'):
            estimator.predict(make_ccd(wcs=False, meta=False),
                              positions=CENTERS, psf_fwhm=0.6 * u.arcsec,
                              **KWARGS)

    def test_psf_fwhm_angle_with_wcs(self, estimator, table):
        angle = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                  psf_fwhm=0.6 * u.arcsec,
                                  quantiles=(0.16, 0.84), **KWARGS)
        # 0.6 arcsec at 0.2 arcsec/pix is the 3 pixels of the meta.
        np.testing.assert_allclose(angle['r_eff'], table['r_eff'], rtol=1e-5)
        np.testing.assert_array_equal(angle['flag'], table['flag'])

    def test_psf_fwhm_keyword_matches_meta(self, estimator, table):
        keyword = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                    psf_fwhm=3.0 * u.pix,
                                    quantiles=(0.16, 0.84), **KWARGS)
        np.testing.assert_array_equal(keyword['r_eff'], table['r_eff'])

    def test_psf_fwhm_changes_result(self, estimator, table):
        other = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=4.5, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert not np.array_equal(other['r_eff'], table['r_eff'])

    def test_unknown_keyword(self, estimator):
        with pytest.raises(TypeError, match='psf_fwhmm'):
            estimator.predict(make_ccd(), positions=CENTERS, psf_fwhmm=3.0,
                              **KWARGS)

    def test_boolean_data(self, estimator):
        with pytest.raises(TypeError, match='data must be numeric'):
            estimator.predict(np.ones(SHAPE, bool), positions=CENTERS,
                              psf_fwhm=3.0, **KWARGS)

    def test_integer_data(self, estimator):
        data = np.round(image_data() * 10).astype(np.int32)
        table = estimator.predict(data, positions=CENTERS, psf_fwhm=3.0,
                                  **KWARGS)
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name

    @pytest.mark.skipif(available_gpus() > 0, reason='a GPU is visible')
    def test_gpu_unavailable(self, estimator):
        with pytest.raises(DeviceNotAvailableError, match="device='gpu'"):
            estimator.predict(make_ccd(), positions=CENTERS, device='gpu',
                              **KWARGS)

    def test_cpu_device(self, estimator, table):
        cpu = estimator.predict(make_ccd(), positions=CENTERS, device='cpu',
                                quantiles=(0.16, 0.84), **KWARGS)
        assert cpu.meta['device'] == 'cpu:0'
        if table.meta['device'] == 'cpu:0':
            np.testing.assert_array_equal(cpu['r_eff'], table['r_eff'])

    def test_batch_size_smaller_than_n(self, estimator):
        first = estimator.predict(make_ccd(), positions=CENTERS,
                                  batch_size=2, **KWARGS)
        second = estimator.predict(make_ccd(), positions=CENTERS,
                                   batch_size=2, **KWARGS)
        assert len(first) == len(CENTERS)
        np.testing.assert_array_equal(first['r_eff'], second['r_eff'])


class TestInputsUntouched:
    def test_ccddata_and_positions(self, estimator):
        data = image_data()
        data[5:8, 5:8] = np.nan
        ccd = make_ccd(data=data)
        ccd.mask[70, 90] = True
        positions = CENTERS.copy()
        before = copy.deepcopy(ccd)
        estimator.predict(ccd, positions=positions, **KWARGS)
        np.testing.assert_array_equal(ccd.data, before.data)
        np.testing.assert_array_equal(ccd.mask, before.mask)
        np.testing.assert_array_equal(ccd.uncertainty.array,
                                      before.uncertainty.array)
        assert dict(ccd.meta) == dict(before.meta)
        assert ccd.wcs.wcs.compare(before.wcs.wcs)
        np.testing.assert_array_equal(positions, CENTERS)

    def test_segmentation(self, estimator):
        segm = make_segmentation()
        before = segm.data.copy()
        estimator.predict(make_ccd(), segmentation_image=segm, **KWARGS)
        np.testing.assert_array_equal(segm.data, before)


class TestReturnSamples:
    def test_samples(self, estimator):
        table, samples = estimator.predict(make_ccd(), positions=CENTERS,
                                           return_samples=True, **KWARGS)
        assert set(samples) == set(OUTPUTS)
        for name, value in samples.items():
            assert isinstance(value, u.Quantity), name
            assert value.shape == (len(CENTERS), KWARGS['n_samples']), name
            assert value.unit == table[name].unit, name
        # Non-circular outputs: the column is the mean of the draws.
        np.testing.assert_allclose(samples['r_eff'].mean(axis=1),
                                   table['r_eff'], rtol=1e-6)
        np.testing.assert_allclose(samples['flux'].mean(axis=1),
                                   table['flux'], rtol=1e-6)

    def test_samples_nan_for_unusable(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        _, samples = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                       return_samples=True, **KWARGS)
        assert np.isnan(samples['r_eff'][1]).all()
        assert np.isfinite(samples['r_eff'][[0, 2]]).all()
