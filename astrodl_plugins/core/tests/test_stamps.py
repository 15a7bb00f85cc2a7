# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The source-stamp family (SourceStampEstimator) with tiny test estimators."""

import copy

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, join
from photutils.segmentation import SourceCatalog

from astrodl_plugins.core.device import available_gpus
from astrodl_plugins.core.flags import SourceFlags, flag_descriptions
from astrodl_plugins.core.inputs import read_image
from astrodl_plugins.core.sources import cut_stamps, locate_sources
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    LABELS,
    SCALE,
    STAMP,
    TinyStamp,
    blob_stamps,
    image_data,
    make_ccd,
    make_segmentation,
    make_wcs,
)
from astrodl_plugins.exceptions import DeviceNotAvailableError, NotFittedError

OUTPUTS = ('flux', 'size')
KWARGS = dict(n_samples=6, seed=3)
MASKED, EDGE = SourceFlags.MASKED, SourceFlags.EDGE
OUT_OF_RANGE, UNUSABLE = SourceFlags.OUT_OF_RANGE, SourceFlags.UNUSABLE


@pytest.fixture(scope='module')
def estimator(tiny_stamp):
    return tiny_stamp


@pytest.fixture(scope='module')
def table(estimator):
    return estimator.predict(make_ccd(), positions=CENTERS,
                             quantiles=(0.16, 0.84), **KWARGS)


def assert_same_outputs(first, second, names=OUTPUTS, **kwargs):
    for name in names:
        for column in (name, f'{name}_err'):
            np.testing.assert_allclose(
                np.asarray(first[column]), np.asarray(second[column]),
                err_msg=column, **kwargs)


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
        np.testing.assert_array_equal(table['y_centroid'].value,
                                      CENTERS[:, 1])
        assert table['x_centroid'].unit == u.pix
        sky = make_wcs().pixel_to_world(CENTERS[:, 0], CENTERS[:, 1])
        assert (table['sky_centroid'].separation(sky) < 1e-6 * u.arcsec).all()
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name
            assert (table[f'{name}_err'] > 0).all(), name
            assert (table[f'{name}_q16'] < table[f'{name}_q84']).all(), name
        assert table['flag'].dtype == np.int32
        # Sources inside the image, PSF and sizes inside the wide card.
        np.testing.assert_array_equal(table['flag'], 0)

    def test_no_quantile_columns_by_default(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        assert not [name for name in table.colnames if '_q' in name]
        assert table.meta['quantiles'] == []

    def test_units_with_wcs(self, table):
        assert table['size'].unit == u.arcsec
        assert table['size_err'].unit == u.arcsec
        assert table['size_q16'].unit == u.arcsec
        assert table['flux'].unit == u.electron / u.s
        assert table['flux_err'].unit == u.electron / u.s
        assert table.meta['size_unit'] == 'arcsec'

    def test_units_without_wcs(self, estimator):
        ccd = make_ccd(wcs=False)
        pix = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        assert 'sky_centroid' not in pix.colnames
        assert pix['size'].unit == u.pix
        assert pix.meta['size_unit'] == 'pix'
        scaled = estimator.predict(ccd, positions=CENTERS,
                                   pixel_scale=SCALE * u.arcsec / u.pix,
                                   **KWARGS)
        assert scaled['size'].unit == u.arcsec
        np.testing.assert_allclose(scaled['size'].value,
                                   SCALE * pix['size'].value, rtol=1e-6)
        np.testing.assert_allclose(scaled['size_err'].value,
                                   SCALE * pix['size_err'].value, rtol=1e-6)
        np.testing.assert_array_equal(scaled['flux'], pix['flux'])

    def test_wcs_same_scale_as_pixel_scale(self, estimator):
        with_wcs = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        scaled = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                   pixel_scale=SCALE * u.arcsec, **KWARGS)
        np.testing.assert_allclose(with_wcs['size'], scaled['size'],
                                   rtol=1e-6)

    def test_flux_unit_dimensionless_for_ndarray(self, estimator):
        table = estimator.predict(image_data(), positions=CENTERS,
                                  psf_fwhm=3.0, **KWARGS)
        assert table['flux'].unit == u.dimensionless_unscaled
        assert table['size'].unit == u.pix

    def test_flux_unit_of_quantity(self, estimator):
        table = estimator.predict(image_data() * u.Jy, positions=CENTERS,
                                  psf_fwhm=3.0, **KWARGS)
        assert table['flux'].unit == u.Jy


class TestMeta:
    def test_meta(self, table):
        import keras

        meta = table.meta
        assert meta['estimator'] == 'tiny-stamp'
        assert meta['estimator_version'] == '0.1'
        assert meta['model_sha256'] is None
        assert meta['n_samples'] == KWARGS['n_samples']
        assert meta['seed'] == KWARGS['seed']
        assert meta['device'] == 'cpu:0' or meta['device'].startswith('gpu')
        assert meta['backend'] == keras.backend.backend()
        assert meta['keras_version'] == keras.__version__
        assert meta['backend_version']
        assert meta['date_predicted']
        assert meta['quantiles'] == [0.16, 0.84]

    def test_meta_flags(self, table):
        flags = table.meta['flags']
        assert flags == flag_descriptions(TinyStamp.flag_names)
        assert set(flags) == {int(SourceFlags.MASKED), int(SourceFlags.EDGE),
                              int(SourceFlags.OUT_OF_RANGE),
                              int(SourceFlags.UNUSABLE)}
        assert flags[int(SourceFlags.EDGE)] == SourceFlags.EDGE.__doc__

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
        assert not np.array_equal(other['size'], table['size'])

    def test_seed_none_recorded(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=4, seed=None)
        seed = table.meta['seed']
        assert isinstance(seed, int) and seed >= 0
        again = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=4, seed=seed)
        np.testing.assert_array_equal(again['size'], table['size'])

    def test_zero_samples(self, estimator):
        first = estimator.predict(make_ccd(), positions=CENTERS,
                                  n_samples=0, seed=1,
                                  uncertainty_parts=True)
        second = estimator.predict(make_ccd(), positions=CENTERS,
                                   n_samples=0, seed=2)
        assert first.meta['n_samples'] == 0
        np.testing.assert_array_equal(first['size'], second['size'])
        np.testing.assert_array_equal(first['size_err_epistemic'], 0.0)
        np.testing.assert_allclose(first['size_err'],
                                   first['size_err_aleatoric'])


class TestSegmentation:
    def test_labels(self, estimator):
        table = estimator.predict(make_ccd(),
                                  segmentation_image=make_segmentation(),
                                  **KWARGS)
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

    def test_segmentation_and_positions(self, estimator):
        with pytest.raises(ValueError, match='exactly one of'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              segmentation_image=make_segmentation())


class TestPositions:
    def test_skycoord(self, estimator, table):
        sky = make_wcs().pixel_to_world(CENTERS[:, 0], CENTERS[:, 1])
        again = estimator.predict(make_ccd(), positions=sky,
                                  quantiles=(0.16, 0.84), **KWARGS)
        np.testing.assert_allclose(again['x_centroid'].value, CENTERS[:, 0],
                                   atol=1e-6)
        assert_same_outputs(again, table, rtol=1e-6)

    def test_table(self, estimator, table):
        positions = QTable({'x_centroid': CENTERS[:, 0] * u.pix,
                            'y_centroid': CENTERS[:, 1] * u.pix})
        again = estimator.predict(make_ccd(), positions=positions,
                                  quantiles=(0.16, 0.84), **KWARGS)
        assert_same_outputs(again, table, rtol=0)

    def test_skycoord_without_wcs(self, estimator):
        sky = make_wcs().pixel_to_world(CENTERS[:, 0], CENTERS[:, 1])
        with pytest.raises(ValueError, match='positions is a SkyCoord'):
            estimator.predict(make_ccd(wcs=False), positions=sky, **KWARGS)

    def test_position_off_image(self, estimator):
        with pytest.raises(ValueError, match=r'positions \[0\].*outside'):
            estimator.predict(make_ccd(), positions=[(-10.0, 5.0)], **KWARGS)

    def test_edge_flag(self, estimator):
        table = estimator.predict(make_ccd(), positions=[(3.0, 40.0),
                                                         (50.0, 40.0)],
                                  **KWARGS)
        assert table['flag'][0] & EDGE
        assert not table['flag'][1] & EDGE
        assert np.isfinite(table['flux']).all()


class TestBadPixels:
    def test_nan_pocket_over_one_source(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                  **KWARGS)
        assert table['flag'][1] & MASKED
        assert table['flag'][1] & UNUSABLE
        for name in OUTPUTS:
            assert np.isnan(table[name][1]), name
            assert np.isnan(table[f'{name}_err'][1]), name
        for row in (0, 2):
            assert table['flag'][row] & (MASKED | EDGE | UNUSABLE) == 0
            for name in OUTPUTS:
                assert np.isfinite(table[name][row]), name

    def test_every_source_unusable(self, estimator):
        data = image_data()
        for x, y in CENTERS.astype(int):
            data[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                  quantiles=(0.16, 0.84), **KWARGS)
        assert len(table) == len(CENTERS)
        assert np.all(table['flag'] & UNUSABLE)
        for name in OUTPUTS:
            for column in (name, f'{name}_err', f'{name}_q16'):
                assert np.all(np.isnan(table[column])), column
        assert table['flux'].unit == u.electron / u.s

    def test_small_mask_is_flagged_but_measured(self, estimator):
        ccd = make_ccd()
        x, y = CENTERS[0].astype(int)
        ccd.mask[y + 6, x + 6] = True
        table = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        assert table['flag'][0] & MASKED
        assert not table['flag'][0] & UNUSABLE
        assert np.isfinite(table['size'][0])
        assert table['flag'][1] & MASKED == 0

    def test_segment_fully_masked(self, estimator):
        ccd = make_ccd()
        x, y = CENTERS[2].astype(int)
        ccd.mask[y - 6:y + 7, x - 6:x + 7] = True
        table = estimator.predict(ccd, segmentation_image=make_segmentation(),
                                  **KWARGS)
        np.testing.assert_array_equal(table['label'], LABELS)
        assert table['flag'][2] & UNUSABLE
        assert np.isfinite(table['size'][:2]).all()


class TestRange:
    """OUT_OF_RANGE from ``range_margins`` and the card's ``valid_ranges``."""

    def test_psf_outside(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=8.0, **KWARGS)
        np.testing.assert_array_equal(table['flag'], OUT_OF_RANGE)
        assert np.isfinite(table['flux']).all()

    @pytest.mark.parametrize('psf, flagged', [(6.2, False), (6.4, True),
                                              (0.96, False), (0.94, True)])
    def test_psf_margin(self, estimator, psf, flagged):
        # valid psf_fwhm [1, 6] with 5 % margins: [0.95, 6.3].
        table = estimator.predict(make_ccd(), positions=CENTERS[:1],
                                  psf_fwhm=psf, **KWARGS)
        assert bool(table['flag'][0] & OUT_OF_RANGE) is flagged

    def test_output_outside(self, estimator, monkeypatch):
        monkeypatch.setattr(estimator, 'card_',
                            {'valid_ranges': {'size': [1e4, 1e5]}})
        table = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        np.testing.assert_array_equal(table['flag'], OUT_OF_RANGE)
        assert estimator.valid_ranges == {'size': (1e4, 1e5)}

    def test_checked_in_model_units(self, estimator, monkeypatch):
        # The range is in pixels: the arcsec values (5x smaller) of a
        # table with a WCS are not compared with it.
        pix = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                **KWARGS)
        low, high = pix['size'].value.min(), pix['size'].value.max()
        monkeypatch.setattr(estimator, 'card_', {'valid_ranges': {
            'size': [0.95 * low, 1.05 * high], 'psf_fwhm': [1.0, 6.0]}})
        sky = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        assert sky['size'].unit == u.arcsec
        assert (sky['size'].value < 0.5 * low).all()
        np.testing.assert_array_equal(sky['flag'], 0)

    def test_no_card_no_check(self, estimator, monkeypatch):
        monkeypatch.setattr(estimator, 'card_', {})
        assert estimator.valid_ranges == {}
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=50.0, **KWARGS)
        np.testing.assert_array_equal(table['flag'], 0)

    def test_unusable_rows_not_range_flagged(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                  psf_fwhm=8.0, **KWARGS)
        np.testing.assert_array_equal(
            table['flag'], [OUT_OF_RANGE, MASKED | UNUSABLE, OUT_OF_RANGE])


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

    @pytest.mark.parametrize('value', [-1, 1.5, True])
    def test_seed(self, estimator, value):
        with pytest.raises(ValueError, match='seed must be None or an '
                                             'integer'):
            estimator.predict(make_ccd(), positions=CENTERS, seed=value)

    @pytest.mark.parametrize('value', [(0.0, 0.5), (1.2,), 1.0])
    def test_quantiles(self, estimator, value):
        with pytest.raises(ValueError, match=r'quantiles must lie in'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              quantiles=value)

    def test_single_quantile(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  quantiles=0.5, **KWARGS)
        assert 'flux_q50' in table.colnames
        assert table.meta['quantiles'] == [0.5]

    def test_missing_psf_fwhm(self, estimator):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              **KWARGS)

    @pytest.mark.parametrize('value', [0.0, -2.0, np.nan])
    def test_bad_psf_fwhm(self, estimator, value):
        with pytest.raises(ValueError, match='psf_fwhm must be positive'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              psf_fwhm=value, **KWARGS)

    def test_psf_fwhm_not_length(self, estimator):
        with pytest.raises(ValueError, match='in pixels or an angle'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              psf_fwhm=3.0 * u.m, **KWARGS)

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
        assert_same_outputs(angle, table, rtol=1e-5)
        np.testing.assert_array_equal(angle['flag'], table['flag'])

    def test_psf_fwhm_angle_with_pixel_scale(self, estimator, table):
        angle = estimator.predict(make_ccd(wcs=False, meta=False),
                                  positions=CENTERS, psf_fwhm=0.6 * u.arcsec,
                                  pixel_scale=SCALE * u.arcsec,
                                  quantiles=(0.16, 0.84), **KWARGS)
        assert_same_outputs(angle, table, rtol=1e-5)

    def test_psf_fwhm_keyword_matches_meta(self, estimator, table):
        keyword = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                    psf_fwhm=3.0 * u.pix,
                                    quantiles=(0.16, 0.84), **KWARGS)
        for name in OUTPUTS:
            np.testing.assert_array_equal(keyword[name], table[name])

    def test_psf_fwhm_keyword_wins_over_meta(self, estimator, table):
        other = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=4.5, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert not np.array_equal(other['size'], table['size'])

    def test_psf_fwhm_per_source(self, estimator, table):
        each = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                 psf_fwhm=[3.0, 3.0, 3.0],
                                 quantiles=(0.16, 0.84), **KWARGS)
        assert_same_outputs(each, table, rtol=0)

    def test_psf_ignored_without_psf(self, tiny_stamp_nopsf):
        # psf = None: neither a keyword nor the meta is needed.
        first = tiny_stamp_nopsf.predict(make_ccd(meta=False),
                                         positions=CENTERS, **KWARGS)
        second = tiny_stamp_nopsf.predict(make_ccd(), positions=CENTERS,
                                          psf_fwhm=4.0, **KWARGS)
        assert_same_outputs(first, second, rtol=0)

    def test_unknown_keyword(self, estimator):
        with pytest.raises(TypeError, match=r"TinyStamp\.predict got "
                                            r"unexpected keyword.*'psf_fwhmm'"):
            estimator.predict(make_ccd(), positions=CENTERS, psf_fwhmm=3.0,
                              **KWARGS)

    def test_unknown_keyword_predict_stamps(self, estimator):
        with pytest.raises(TypeError, match='colour'):
            estimator.predict_stamps(blob_stamps(2)[0], psf_fwhm=3.0,
                                     colour='red')

    def test_bands_refused_for_one_image(self, estimator):
        with pytest.raises(ValueError, match='measures one image'):
            estimator.predict(make_ccd(), positions=CENTERS, bands=('r',),
                              **KWARGS)

    def test_tta_refused_without_support(self, tiny_stamp_nopsf):
        with pytest.raises(ValueError, match='does not support tta=True'):
            tiny_stamp_nopsf.predict(make_ccd(), positions=CENTERS, tta=True,
                                     **KWARGS)

    def test_boolean_data(self, estimator):
        with pytest.raises(TypeError, match='data must be numeric'):
            estimator.predict(np.ones((80, 100), bool), positions=CENTERS,
                              psf_fwhm=3.0, **KWARGS)

    def test_integer_data(self, estimator):
        data = np.round(image_data() * 10).astype(np.int32)
        table = estimator.predict(data, positions=CENTERS, psf_fwhm=3.0,
                                  **KWARGS)
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name

    def test_not_fitted(self):
        with pytest.raises(NotFittedError, match='TinyStamp has no trained '
                                                 'model network'):
            TinyStamp().predict(make_ccd(), positions=CENTERS)

    @pytest.mark.skipif(available_gpus() > 0, reason='a GPU is visible')
    def test_gpu_unavailable(self, estimator):
        with pytest.raises(DeviceNotAvailableError, match="device='gpu'"):
            estimator.predict(make_ccd(), positions=CENTERS, device='gpu',
                              **KWARGS)

    def test_bad_device(self, estimator):
        with pytest.raises(ValueError, match="device must be 'auto'"):
            estimator.predict(make_ccd(), positions=CENTERS, device='tpu',
                              **KWARGS)

    def test_cpu_device(self, estimator, table):
        cpu = estimator.predict(make_ccd(), positions=CENTERS, device='cpu',
                                quantiles=(0.16, 0.84), **KWARGS)
        assert cpu.meta['device'] == 'cpu:0'
        if table.meta['device'] == 'cpu:0':
            np.testing.assert_array_equal(cpu['size'], table['size'])

    def test_batch_size_smaller_than_n(self, estimator):
        first = estimator.predict(make_ccd(), positions=CENTERS,
                                  batch_size=2, **KWARGS)
        second = estimator.predict(make_ccd(), positions=CENTERS,
                                   batch_size=2, **KWARGS)
        assert len(first) == len(CENTERS)
        np.testing.assert_array_equal(first['size'], second['size'])

    def test_progress_bar(self, estimator, table, capsys):
        again = estimator.predict(make_ccd(), positions=CENTERS,
                                  progress_bar=True, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert_same_outputs(again, table, rtol=0)
        assert 'tiny-stamp' in capsys.readouterr().err


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

    def test_stamps(self, estimator):
        stamps, _ = blob_stamps(3)
        stamps[0, 0, 0] = np.nan
        before = stamps.copy()
        estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)
        np.testing.assert_array_equal(stamps, before)


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
            np.testing.assert_allclose(value.mean(axis=1), table[name],
                                       rtol=1e-6)

    def test_samples_nan_for_unusable(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        _, samples = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                       return_samples=True, **KWARGS)
        assert np.isnan(samples['size'][1]).all()
        assert np.isfinite(samples['size'][[0, 2]]).all()

    def test_zero_samples_one_draw(self, estimator):
        _, samples = estimator.predict(make_ccd(), positions=CENTERS,
                                       return_samples=True, n_samples=0,
                                       seed=0)
        assert samples['flux'].shape == (len(CENTERS), 1)


class TestUncertaintyParts:
    def test_columns(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  uncertainty_parts=True, **KWARGS)
        for name in OUTPUTS:
            epistemic = table[f'{name}_err_epistemic']
            aleatoric = table[f'{name}_err_aleatoric']
            assert epistemic.unit == aleatoric.unit == table[name].unit
            assert (epistemic > 0).all() and (aleatoric > 0).all()
            np.testing.assert_allclose(np.hypot(epistemic, aleatoric),
                                       table[f'{name}_err'], rtol=1e-6)

    def test_error_scale(self, estimator, table, monkeypatch):
        monkeypatch.setattr(estimator, 'error_scale_', {'flux': 2.0})
        scaled = estimator.predict(make_ccd(), positions=CENTERS,
                                   quantiles=(0.16, 0.84),
                                   uncertainty_parts=True, **KWARGS)
        np.testing.assert_allclose(scaled['flux_err'], 2 * table['flux_err'],
                                   rtol=1e-6)
        np.testing.assert_allclose(scaled['size_err'], table['size_err'],
                                   rtol=1e-6)
        # The parts are before the calibration; the quantiles widen too.
        np.testing.assert_allclose(
            np.hypot(scaled['flux_err_epistemic'],
                     scaled['flux_err_aleatoric']), table['flux_err'],
            rtol=1e-6)
        np.testing.assert_allclose(scaled['flux_q84'] - scaled['flux'],
                                   2 * (table['flux_q84'] - table['flux']),
                                   rtol=1e-8)


class TestPredictStamps:
    def test_table(self, estimator):
        stamps, _ = blob_stamps(4)
        table = estimator.predict_stamps(stamps, psf_fwhm=3.0,
                                         quantiles=(0.16, 0.84), **KWARGS)
        assert table.colnames[:3] == ['label', 'flux', 'flux_err']
        assert 'sky_centroid' not in table.colnames
        np.testing.assert_array_equal(table['label'], [1, 2, 3, 4])
        assert table['size'].unit == u.pix
        assert table['flux'].unit == u.dimensionless_unscaled
        assert table.meta['size_unit'] == 'pix'
        np.testing.assert_array_equal(table['flag'], 0)

    def test_same_as_predict(self, estimator):
        ccd = make_ccd(wcs=False)
        image = read_image(ccd)
        sources = locate_sources(image, positions=CENTERS)
        stamps, _, _ = cut_stamps(image, sources, STAMP)
        from_image = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        from_stamps = estimator.predict_stamps(stamps, psf_fwhm=3.0,
                                               **KWARGS)
        for name in OUTPUTS:
            np.testing.assert_allclose(from_stamps[name].value,
                                       from_image[name].value, rtol=1e-6)

    def test_psf_per_stamp(self, estimator):
        stamps, _ = blob_stamps(3)
        one = estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)
        each = estimator.predict_stamps(stamps, psf_fwhm=[3.0, 3.0, 3.0],
                                        **KWARGS)
        assert_same_outputs(one, each, rtol=0)
        other = estimator.predict_stamps(stamps, psf_fwhm=[3.0, 5.0, 3.0],
                                         **KWARGS)
        assert other['size'][1] != one['size'][1]

    def test_psf_required(self, estimator):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimator.predict_stamps(blob_stamps(2)[0], **KWARGS)

    def test_psf_angle_refused(self, estimator):
        with pytest.raises(ValueError, match='pixel scale is unknown'):
            estimator.predict_stamps(blob_stamps(2)[0],
                                     psf_fwhm=0.6 * u.arcsec, **KWARGS)

    def test_nan_pixels(self, estimator):
        stamps, _ = blob_stamps(3)
        stamps[0, 0, 0] = np.nan
        stamps[1] = np.nan
        table = estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)
        np.testing.assert_array_equal(
            table['flag'], [MASKED, MASKED | UNUSABLE, 0])
        assert np.isfinite(table['flux'][[0, 2]]).all()
        assert np.isnan(table['flux'][1])

    def test_single_stamp(self, estimator):
        table = estimator.predict_stamps(blob_stamps(1)[0][0], psf_fwhm=3.0,
                                         **KWARGS)
        assert len(table) == 1

    @pytest.mark.parametrize('shape', [(2, STAMP, STAMP + 1),
                                       (2, 8, 8), (2, STAMP, STAMP, 1)])
    def test_bad_shape(self, estimator, shape):
        with pytest.raises(ValueError, match=r'stamps must have shape \(N, '
                                             rf'{STAMP}, {STAMP}\)'):
            estimator.predict_stamps(np.ones(shape), psf_fwhm=3.0)


class TestTTA:
    def test_draws_of_eight_views(self, estimator):
        table, samples = estimator.predict(make_ccd(), positions=CENTERS,
                                           tta=True, return_samples=True,
                                           **KWARGS)
        assert samples['flux'].shape == (len(CENTERS),
                                         8 * KWARGS['n_samples'])
        np.testing.assert_allclose(samples['size'].mean(axis=1),
                                   table['size'], rtol=1e-6)
        again = estimator.predict(make_ccd(), positions=CENTERS, tta=True,
                                  **KWARGS)
        assert_same_outputs(table, again, rtol=0)

    def test_differs_from_one_view(self, estimator, table):
        tta = estimator.predict(make_ccd(), positions=CENTERS, tta=True,
                                **KWARGS)
        assert not np.allclose(tta['size'], table['size'])

    def test_invariant_to_rotation(self, estimator):
        # The eight views of a turned stamp are those of the stamp: with
        # dropout off the pooled outputs agree.
        stamps, _ = blob_stamps(3, seed=5)
        turned = np.rot90(stamps, 1, axes=(1, 2))
        kwargs = dict(psf_fwhm=3.0, n_samples=0, seed=0, tta=True)
        first = estimator.predict_stamps(stamps, **kwargs)
        second = estimator.predict_stamps(turned, **kwargs)
        assert_same_outputs(first, second, rtol=1e-4)
        plain = estimator.predict_stamps(turned, psf_fwhm=3.0, n_samples=0,
                                         seed=0)
        assert not np.allclose(plain['size'], second['size'], rtol=1e-4)

    def test_unusable_rows(self, estimator):
        stamps, _ = blob_stamps(3)
        stamps[1] = np.nan
        table, samples = estimator.predict_stamps(
            stamps, psf_fwhm=3.0, tta=True, return_samples=True, **KWARGS)
        assert np.isnan(samples['flux'][1]).all()
        assert np.isfinite(samples['flux'][[0, 2]]).all()
        assert table['flag'][1] & UNUSABLE
