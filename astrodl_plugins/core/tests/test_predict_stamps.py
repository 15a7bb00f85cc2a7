# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The source-stamp family: predict_stamps, test-time augmentation and an
estimated PSF.
"""

import numpy as np
import pytest
from astropy import units as u

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.inputs import read_image
from astrodl_plugins.core.psf import estimate_image_psf
from astrodl_plugins.core.sources import cut_stamps, locate_sources
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    STAMP,
    STAMP_KWARGS,
    STAMP_OUTPUTS,
    TinyStampEstimatePSF,
    assert_same_outputs,
    blob_stamps,
    make_ccd,
    make_tiny_stamp,
)
from astrodl_plugins.exceptions import AstrodlUserWarning

OUTPUTS, KWARGS = STAMP_OUTPUTS, STAMP_KWARGS
MASKED = SourceFlags.MASKED
UNUSABLE = SourceFlags.UNUSABLE


class TestPredictStamps:
    def test_table(self, estimator):
        stamps, _ = blob_stamps(4)
        table = estimator.predict_stamps(stamps, psf_fwhm=3.0,
                                         quantiles=(0.16, 0.84), **KWARGS)
        assert table.colnames[:3] == ['label', 'flux', 'flux_err']
        assert 'sky_centroid' not in table.colnames
        np.testing.assert_array_equal(table['label'], [1, 2, 3, 4])
        assert table['size'].unit == u.pix
        assert table['flux'].unit is None
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

    def test_no_stamps(self, estimator):
        table = estimator.predict_stamps(np.zeros((0, STAMP, STAMP)),
                                         psf_fwhm=3.0, **KWARGS)
        assert len(table) == 0
        assert 'flux_err' in table.colnames

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


@pytest.fixture(scope='module')
def estimating():
    return make_tiny_stamp(TinyStampEstimatePSF)


class TestEstimatedPSF:
    """``psf = 'estimate'``: the PSF FWHM from the data when not given."""

    def test_estimated_from_the_image(self, estimating):
        ccd = make_ccd(meta=False)
        found = estimate_image_psf(read_image(ccd))
        with pytest.warns(AstrodlUserWarning, match='psf_fwhm not given: '
                          'estimated from 3 point sources found in the '
                          'image'):
            table = estimating.predict(ccd, positions=CENTERS, **KWARGS)
        assert table.meta['psf_fwhm_source'].startswith(
            'estimated from 3 point')
        # Three stars are too few: every row says so.
        assert found.uncertain
        assert np.all(table['flag'] & SourceFlags.PSF_UNCERTAIN)
        given = estimating.predict(ccd, positions=CENTERS,
                                   psf_fwhm=found.fwhm, **KWARGS)
        assert given.meta['psf_fwhm_source'] == 'given (psf_fwhm=)'
        assert_same_outputs(table, given, rtol=0)

    def test_estimate_does_not_depend_on_the_targets(self, estimating):
        ccd = make_ccd(meta=False)
        with pytest.warns(AstrodlUserWarning):
            one = estimating.predict(ccd, positions=CENTERS[:1], **KWARGS)
        with pytest.warns(AstrodlUserWarning):
            all_three = estimating.predict(ccd, positions=CENTERS, **KWARGS)
        assert (one.meta['psf_fwhm_source']
                == all_three.meta['psf_fwhm_source'])

    def test_meta_or_keyword_not_estimated(self, estimating):
        # No warning (warnings are errors in the test suite).
        table = estimating.predict(make_ccd(), positions=CENTERS, **KWARGS)
        assert (table.meta['psf_fwhm_source']
                == "given (data.meta['PSF_FWHM'])")
        estimating.predict(make_ccd(meta=False), positions=CENTERS,
                           psf_fwhm=3.0, **KWARGS)

    def test_stamps_need_it(self, estimating):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimating.predict_stamps(blob_stamps(2)[0], **KWARGS)

    def test_psf_none_has_no_source(self, tiny_stamp_nopsf):
        table = tiny_stamp_nopsf.predict(make_ccd(), positions=CENTERS,
                                         **KWARGS)
        assert 'psf_fwhm_source' not in table.meta
