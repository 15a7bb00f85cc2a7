# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The source-stamp family (SourceStampEstimator) with a tiny estimator:
columns, units, meta, seeds, sources, bad pixels and the range flag.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, join
from photutils.segmentation import SourceCatalog

from astrodl_plugins.core.flags import SourceFlags, flag_descriptions
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    LABELS,
    SCALE,
    STAMP_KWARGS,
    STAMP_OUTPUTS,
    TinyStamp,
    assert_same_outputs,
    image_data,
    make_ccd,
    make_segmentation,
    make_wcs,
)

OUTPUTS, KWARGS = STAMP_OUTPUTS, STAMP_KWARGS
MASKED = SourceFlags.MASKED
EDGE = SourceFlags.EDGE
OUT_OF_RANGE = SourceFlags.OUT_OF_RANGE
UNUSABLE = SourceFlags.UNUSABLE


class TestColumns:
    def test_columns(self, table):
        expected = ['label', 'x_centroid', 'y_centroid', 'sky_centroid']
        for name in OUTPUTS:
            expected += [name, f'{name}_err', f'{name}_q16', f'{name}_q84']
        expected += ['rescale', 'flag']
        assert table.colnames == expected
        assert isinstance(table, QTable)
        assert len(table) == len(CENTERS)

    def test_values(self, table):
        np.testing.assert_array_equal(table['label'], [1, 2, 3])
        np.testing.assert_array_equal(table['x_centroid'].value,
                                      CENTERS[:, 0])
        np.testing.assert_array_equal(table['y_centroid'].value,
                                      CENTERS[:, 1])
        assert table['x_centroid'].unit is None  # plain, as photutils'
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
        assert 'quantiles' not in table.meta

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
        assert table['flux'].unit is None
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
                              int(SourceFlags.UNUSABLE),
                              int(SourceFlags.UNFAMILIAR),
                              int(SourceFlags.PSF_UNCERTAIN)}
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

    def test_join_source_catalog(self, estimator, sim_image,
                                 sim_segmentation):
        ccd, segm = sim_image, sim_segmentation
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
                                  psf_fwhm=8.0, rescale=False, **KWARGS)
        np.testing.assert_array_equal(table['flag'], OUT_OF_RANGE)
        assert np.isfinite(table['flux']).all()
        np.testing.assert_array_equal(table['rescale'], 1)

    def test_broad_psf_measured_block_summed(self, estimator):
        # PSF 8 pix, trained up to 6: measured on the image binned 2x2,
        # where the PSF is 4 pix; fluxes are kept by the block sum.
        native = estimator.predict(make_ccd(), positions=CENTERS,
                                   psf_fwhm=8.0, rescale=False, **KWARGS)
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=8.0, **KWARGS)
        np.testing.assert_array_equal(table['rescale'], 2)
        np.testing.assert_array_equal(table['flag'], 0)
        np.testing.assert_allclose(table['x_centroid'], native['x_centroid'])
        assert np.isfinite(table['flux']).all()

    def test_pixel_outputs_back_to_native_pixels(self, estimator,
                                                 monkeypatch):
        binned = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                   psf_fwhm=8.0, **KWARGS)
        monkeypatch.setattr(estimator, 'pixel_outputs', {'size': 1})
        native = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                   psf_fwhm=8.0, **KWARGS)
        np.testing.assert_allclose(native['size'], 2 * binned['size'])
        np.testing.assert_allclose(native['size_err'], 2 * binned['size_err'])
        np.testing.assert_allclose(native['flux'], binned['flux'])

    def test_too_narrow_psf_is_not_upsampled(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=0.5, **KWARGS)
        np.testing.assert_array_equal(table['rescale'], 1)
        np.testing.assert_array_equal(table['flag'], OUT_OF_RANGE)

    @pytest.mark.parametrize('psf, flagged', [(6.2, False), (6.4, True),
                                              (0.96, False), (0.94, True)])
    def test_psf_margin(self, estimator, psf, flagged):
        # valid psf_fwhm [1, 6] with 5 % margins: [0.95, 6.3].
        table = estimator.predict(make_ccd(), positions=CENTERS[:1],
                                  psf_fwhm=psf, rescale=False, **KWARGS)
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
                                  psf_fwhm=8.0, rescale=False, **KWARGS)
        np.testing.assert_array_equal(
            table['flag'], [OUT_OF_RANGE, MASKED | UNUSABLE, OUT_OF_RANGE])
