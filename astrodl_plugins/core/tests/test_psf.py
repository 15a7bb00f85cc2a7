# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The PSF FWHM given or in the meta: resolve_psf_fwhm."""

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData

from astrodl_plugins.core.inputs import read_image
from astrodl_plugins.core.psf import resolve_psf_fwhm
from astrodl_plugins.core.tests.tiny import make_wcs


def image(meta=None, wcs=False, pixel_scale=None):
    ccd = CCDData(np.ones((20, 20)), unit='adu', meta=meta or {},
                  wcs=make_wcs(0.2) if wcs else None)
    return read_image(ccd, pixel_scale=pixel_scale)


class TestResolve:
    def test_number(self):
        fwhm = resolve_psf_fwhm(3.0, image(), 4)
        np.testing.assert_array_equal(fwhm, [3.0] * 4)
        assert fwhm.dtype == np.float64

    def test_pixels_quantity(self):
        np.testing.assert_array_equal(resolve_psf_fwhm(2.5 * u.pix, None, 2),
                                      [2.5, 2.5])

    def test_per_source(self):
        np.testing.assert_array_equal(
            resolve_psf_fwhm([2.0, 3.0, 4.0], None, 3), [2.0, 3.0, 4.0])

    def test_wrong_length(self):
        with pytest.raises(ValueError, match=r'psf_fwhm must be one value or '
                                             r'one per source \(3\), got 2'):
            resolve_psf_fwhm([2.0, 3.0], None, 3)

    def test_one_value_wanted(self):
        with pytest.raises(ValueError, match='psf_fwhm must be one value, '
                                             'got 2 values'):
            resolve_psf_fwhm([2.0, 3.0], None, 1)

    def test_two_dimensional(self):
        with pytest.raises(ValueError, match=r'shape \(2, 1\)'):
            resolve_psf_fwhm([[2.0], [3.0]], None, 2)

    @pytest.mark.parametrize('value', ['abc', True, {'a': 1}, [True]])
    def test_not_a_number(self, value):
        with pytest.raises(TypeError, match='psf_fwhm must be a number'):
            resolve_psf_fwhm(value, None, 2)

    def test_string_in_meta(self):
        """FITS headers hold strings: a number or a quantity is read."""
        np.testing.assert_allclose(
            resolve_psf_fwhm(None, image({'PSF_FWHM': '2.5'}), 1), [2.5])
        np.testing.assert_allclose(
            resolve_psf_fwhm(None, image({'PSF_FWHM': '0.6 arcsec'},
                                         wcs=True), 1), [3.0])

    @pytest.mark.parametrize('key', ['PSF_FWHM', 'psf_fwhm', 'FWHM'])
    def test_meta(self, key):
        np.testing.assert_array_equal(
            resolve_psf_fwhm(None, image({key: 2.0}), 2), [2.0, 2.0])

    def test_meta_order(self):
        fwhm = resolve_psf_fwhm(None, image({'FWHM': 9.0, 'PSF_FWHM': 2.0}),
                                1)
        np.testing.assert_array_equal(fwhm, [2.0])

    def test_keyword_wins(self):
        fwhm = resolve_psf_fwhm(4.0, image({'PSF_FWHM': 2.0}), 1)
        np.testing.assert_array_equal(fwhm, [4.0])

    def test_angle_with_wcs(self):
        fwhm = resolve_psf_fwhm(0.6 * u.arcsec, image(wcs=True), 1)
        np.testing.assert_allclose(fwhm, [3.0])

    def test_angle_with_pixel_scale(self):
        fwhm = resolve_psf_fwhm(1 * u.arcsec,
                                image(pixel_scale=0.5 * u.arcsec), 1)
        np.testing.assert_allclose(fwhm, [2.0])

    def test_angle_in_meta(self):
        with pytest.raises(ValueError, match=r"data.meta\['PSF_FWHM'\] is an "
                                             'angle'):
            resolve_psf_fwhm(None, image({'PSF_FWHM': 0.6 * u.arcsec}), 1)

    def test_angle_without_scale(self):
        with pytest.raises(ValueError, match='psf_fwhm is an angle'):
            resolve_psf_fwhm(0.6 * u.arcsec, None, 1)

    def test_missing(self):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            resolve_psf_fwhm(None, image(), 1)
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            resolve_psf_fwhm(None, None, 1)

    @pytest.mark.parametrize('value', [0.0, -1.0, np.inf, [1.0, np.nan]])
    def test_not_positive(self, value):
        with pytest.raises(ValueError, match='must be positive and finite'):
            resolve_psf_fwhm(value, None, 2)

    def test_other_unit(self):
        with pytest.raises(ValueError, match='in pixels or an angle'):
            resolve_psf_fwhm(3.0 * u.s, None, 1)

    def test_result_is_a_copy(self):
        value = np.array([2.0, 3.0])
        fwhm = resolve_psf_fwhm(value, None, 2)
        fwhm[:] = 0.0
        np.testing.assert_array_equal(value, [2.0, 3.0])
