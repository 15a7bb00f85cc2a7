# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The deblender on bad input: a clear error that names the parameter, or a
flagged row; never a silent number.
"""

import numpy as np
import pytest
from astropy.modeling.models import Gaussian2D
from astropy.nddata import NDData
from photutils.segmentation import SegmentationImage, detect_sources

import astrodl_plugins as adl
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.inputs import ImageData
from astrodl_plugins.deblending import deblend_sources_dl
from astrodl_plugins.deblending.centres import fill_unusable
from astrodl_plugins.deblending.network import extractor_inputs
from astrodl_plugins.deblending.pipeline import noise_sigma

SHAPE = (80, 80)
#: The two sources of the pair (x, y).
CENTRES = ((33.0, 40.0), (48.0, 40.0))


@pytest.fixture(scope='module')
def deblender():
    return adl.get_estimator('deblender')


@pytest.fixture(scope='module')
def pair():
    """Two equal Gaussians 15 pixels apart, in unit noise; one segment."""
    y, x = np.mgrid[:SHAPE[0], :SHAPE[1]]
    data = sum(Gaussian2D(100, cx, cy, 4, 4)(x, y) for cx, cy in CENTRES)
    data = data + np.random.default_rng(1).normal(size=SHAPE)
    segm = detect_sources(data, 10, 5)
    assert segm.n_labels == 1
    return data, segm


def _segm_array(segm, change):
    array = segm.data.astype(np.float64)
    return change(array)


def _shifted_negative(array):
    array = array.astype(np.int64)
    array[0, 0] = -1
    return array


def _non_integer(array):
    array[array > 0] = 1.5
    return array


# (case id, what to change: a dict of deblend_sources_dl arguments built
# from the data and segmentation, the exception, the parameter named).
BAD_INPUTS = [
    ('labels-float', lambda d, s: {'labels': [1.5]}, ValueError, 'labels'),
    ('labels-nan', lambda d, s: {'labels': [np.nan]}, ValueError, 'labels'),
    ('labels-string', lambda d, s: {'labels': ['1']}, ValueError, 'labels'),
    ('labels-bool', lambda d, s: {'labels': True}, ValueError, 'labels'),
    ('labels-zero', lambda d, s: {'labels': [0]}, ValueError, 'labels'),
    ('labels-negative', lambda d, s: {'labels': [-1]}, ValueError, 'labels'),
    ('labels-absent', lambda d, s: {'labels': [1, 99]}, ValueError, 'labels'),
    ('segmentation-shape', lambda d, s: {'segmentation_image':
                                         s.data[:40]},
     ValueError, 'segmentation_image'),
    ('segmentation-3d', lambda d, s: {'segmentation_image':
                                      s.data[None]},
     ValueError, 'segmentation_image'),
    ('segmentation-non-integer', lambda d, s: {
        'segmentation_image': _segm_array(s, _non_integer)},
     ValueError, 'segmentation_image'),
    ('segmentation-bool', lambda d, s: {'segmentation_image': s.data > 0},
     TypeError, 'segmentation_image'),
    ('segmentation-negative', lambda d, s: {
        'segmentation_image': _shifted_negative(s.data)},
     ValueError, 'segmentation_image'),
    ('mask-shape', lambda d, s: {'data': NDData(d, mask=np.zeros((40, 80),
                                                                 bool))},
     ValueError, 'mask'),
    ('n_pixels-zero', lambda d, s: {'n_pixels': 0}, ValueError, 'n_pixels'),
    ('n_pixels-negative', lambda d, s: {'n_pixels': -5}, ValueError,
     'n_pixels'),
    ('n_pixels-float', lambda d, s: {'n_pixels': 2.5}, ValueError,
     'n_pixels'),
    ('n_pixels-bool', lambda d, s: {'n_pixels': True}, ValueError,
     'n_pixels'),
    ('n_pixels-string', lambda d, s: {'n_pixels': '5'}, ValueError,
     'n_pixels'),

    ('data-all-nan', lambda d, s: {'data': np.full(d.shape, np.nan)},
     ValueError, 'data'),
    ('data-3d', lambda d, s: {'data': d[None]}, ValueError, 'data'),
    ('data-bool', lambda d, s: {'data': d > 0}, TypeError, 'data'),
]


class TestBadInputMatrix:
    @pytest.mark.parametrize(('change', 'error', 'name'),
                             [case[1:] for case in BAD_INPUTS],
                             ids=[case[0] for case in BAD_INPUTS])
    def test_error_names_the_parameter(self, deblender, pair, change, error,
                                       name):
        data, segm = pair
        arguments = {'data': data, 'segmentation_image': segm,
                     'n_pixels': 5, 'psf_fwhm': 9.4}
        arguments.update(change(data, segm))
        with pytest.raises(error, match=name):
            deblend_sources_dl(preset=deblender, **arguments)

    @pytest.mark.parametrize('change', [case[1] for case in BAD_INPUTS
                                        if case[3] != 'n_pixels'],
                             ids=[case[0] for case in BAD_INPUTS
                                  if case[3] != 'n_pixels'])
    def test_predict_rejects_the_same(self, deblender, pair, change):
        """The estimator's ``predict`` refuses what the function does."""
        data, segm = pair
        arguments = {'data': data, 'segmentation_image': segm}
        arguments.update(change(data, segm))
        data = arguments.pop('data')
        with pytest.raises((ValueError, TypeError)):
            deblender.predict(data, n_samples=0, psf_fwhm=9.4, **arguments)


def _assert_non_finite_rows_flagged(table):
    """Every row with a NaN or inf value carries a flag bit."""
    for name in table.colnames:
        value = np.asarray(getattr(table[name], 'value', table[name]))
        if value.dtype.kind != 'f' or value.shape[:1] != (len(table),):
            continue
        bad = ~np.isfinite(value.reshape(len(table), -1)).all(axis=1)
        assert np.all(table['flag'][bad] != 0), name


def _segment_without_usable_pixels(data, segm, how):
    """The pair and a second 7 x 7 segment whose pixels are all ``how``."""
    array = segm.data.copy()
    array[5:12, 5:12] = 2
    data = data.copy()
    if how == 'mask':
        mask = np.zeros(data.shape, bool)
        mask[5:12, 5:12] = True
        return NDData(data, mask=mask), SegmentationImage(array)
    data[5:12, 5:12] = {'nan': np.nan, 'inf': np.inf}[how]
    return data, SegmentationImage(array)


class TestFlaggedRows:
    @pytest.mark.parametrize('how', ['nan', 'inf', 'mask'])
    def test_segment_without_usable_pixels(self, deblender, pair, how):
        """NaN fluxes and ``UNUSABLE``, not a finite made-up number."""
        data, segm = _segment_without_usable_pixels(*pair, how)
        table = deblender.predict(data, segmentation_image=segm,
                                  n_samples=3, seed=0, psf_fwhm=9.4)
        dead = table['parent_label'] == 2
        assert dead.sum() == 1
        assert np.isnan(table['flux'][dead][0])
        assert np.isnan(table['flux_err'][dead][0])
        assert table['flag'][dead][0] & SourceFlags.UNUSABLE
        # The pair is still split, and measured.
        alive = table[~dead]
        assert len(alive) == 2
        assert np.all(np.isfinite(alive['flux']))
        assert not np.any(alive['flag'] & SourceFlags.UNUSABLE)
        _assert_non_finite_rows_flagged(table)

    def test_segment_without_usable_pixels_is_kept_whole(self, deblender,
                                                          pair):
        data, segm = _segment_without_usable_pixels(*pair, 'nan')
        out = deblend_sources_dl(data, segm, 5, preset=deblender,
                                 psf_fwhm=9.4)
        assert out.n_labels == 3
        assert np.unique(out.data[5:12, 5:12]).size == 1

    @pytest.mark.parametrize('half', [2, 4, 6])
    def test_nan_block_over_a_centre_makes_no_child(self, deblender, pair,
                                                    half):
        """
        A hole over one of the two centres: no children on its edges (a
        hole filled with zeros gave three), none inside it, and the
        children near it are flagged ``MASKED``.
        """
        data, segm = pair
        data = data.copy()
        cx, cy = (int(v) for v in CENTRES[1])
        hole = (slice(cy - half, cy + half + 1),
                slice(cx - half, cx + half + 1))
        data[hole] = np.nan
        table = deblender.predict(data, segmentation_image=segm,
                                  n_samples=3, seed=0, psf_fwhm=9.4)
        assert 1 <= len(table) <= 2
        ix = np.floor(table['x_centroid'].value + 0.5).astype(int)
        iy = np.floor(table['y_centroid'].value + 0.5).astype(int)
        for x, y in zip(ix, iy):
            patch = data[y - 1:y + 2, x - 1:x + 2]
            assert np.isfinite(patch).sum() >= 5
        # The other source is still found where it is.
        near = np.hypot(table['x_centroid'].value - CENTRES[0][0],
                        table['y_centroid'].value - CENTRES[0][1]) < 2
        assert near.sum() == 1
        assert np.all(table['flag'] & SourceFlags.MASKED)
        assert np.all(np.isfinite(table['flux']))
        _assert_non_finite_rows_flagged(table)

    def test_single_nan_pixel_keeps_the_centre(self, deblender, pair):
        """A bad pixel on a centre (photutils' ``test_data_nan``) is filled."""
        data, segm = pair
        data = data.copy()
        data[40, 48] = np.nan
        out = deblend_sources_dl(data, segm, 5, preset=deblender,
                                 psf_fwhm=9.4)
        assert out.n_labels == 2

    def test_empty_labels_is_a_no_op(self, deblender, pair):
        """
        As photutils' ``deblend_sources(..., labels=[])``: nothing is
        deblended, the segmentation comes back as it was, no warning.
        """
        data, segm = pair
        out = deblend_sources_dl(data, segm, 5, labels=[], preset=deblender,
                                 psf_fwhm=9.4)
        assert np.array_equal(out.data, segm.data)
        table = deblender.predict(data, segmentation_image=segm, labels=[],
                                  n_samples=0, psf_fwhm=9.4)
        assert len(table) == 0
        assert 'flux_err' in table.colnames


class TestFillUnusable:
    def test_fills_holes_smoothly(self):
        y, x = np.mgrid[:32, :32]
        plane = 0.5 * x + 0.25 * y
        window = plane.copy()
        window[10:15, 10:15] = np.nan
        filled = fill_unusable(window)
        assert np.all(np.isfinite(filled))
        assert np.array_equal(filled[~np.isnan(window)],
                              plane[~np.isnan(window)])
        assert np.allclose(filled[10:15, 10:15], plane[10:15, 10:15],
                           atol=1.0)

    def test_outside_is_left_alone(self):
        window = np.ones((8, 8))
        window[:, :2] = np.nan
        window[4, 4] = np.nan
        inside = np.ones((8, 8), bool)
        inside[:, :2] = False
        filled = fill_unusable(window, inside)
        assert np.all(np.isnan(filled[:, :2]))
        assert filled[4, 4] == 1.0

    def test_nothing_usable(self):
        assert np.all(fill_unusable(np.full((4, 4), np.nan)) == 0)


class TestNoDivisionByZero:
    """
    The reader masks or refuses uncertainties of zero or less; the
    deblender checks again rather than divide by them.
    """

    @pytest.mark.parametrize('value', [0.0, -1.0])
    def test_noise_sigma_refuses_non_positive_uncertainty(self, value):
        error = np.ones((16, 16))
        error[3, 5] = value
        image = ImageData(np.zeros((16, 16)), np.zeros((16, 16), bool),
                          error, None, None, None, {})
        with pytest.raises(ValueError, match=r'data\.uncertainty .*x=5, y=3'):
            noise_sigma(image, np.zeros((16, 16), int))

    def test_masked_pixels_may_have_any_uncertainty(self):
        error = np.ones((16, 16))
        error[3, 5] = 0.0
        mask = np.zeros((16, 16), bool)
        mask[3, 5] = True
        image = ImageData(np.zeros((16, 16)), mask, error, None, None, None,
                          {})
        sigma = noise_sigma(image, np.zeros((16, 16), int))
        assert np.isnan(sigma[3, 5])
        assert np.all(sigma[~mask] == 1.0)

    @pytest.mark.parametrize('sigma', [0.0, -1.0, np.nan])
    def test_extractor_refuses_non_positive_sigma(self, sigma):
        stamps = np.zeros((2, 8, 8))
        with pytest.raises(ValueError, match='sigma'):
            extractor_inputs(stamps, [1.0, sigma], [4, 4], [4, 4])
