# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Tests of the astropy-native inputs: read_image (core.inputs),
locate_sources and cut_stamps (core.sources). read_bands: test_bands.py.
"""

import copy

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
from astropy.wcs.utils import proj_plane_pixel_scales
from photutils.segmentation import SegmentationImage

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.inputs import (
    ImageData,
    check_flux_unit,
    read_bands,
    read_image,
)
from astrodl_plugins.core.sources import (
    Sources,
    block_image,
    cut_stamps,
    locate_sources,
    sampling_factors,
)

SHAPE = (40, 50)


def make_wcs(scale_arcsec=0.2, scale_y_arcsec=None):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    scale_y = scale_arcsec if scale_y_arcsec is None else scale_y_arcsec
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_y / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [25.0, 20.0]
    return wcs


def blobs(centers=((12.0, 10.0), (35.0, 28.0)), shape=SHAPE, amplitude=50.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    data = np.random.default_rng(0).normal(0.0, 1.0, shape)
    for x, y in centers:
        data += amplitude * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 6.0)
    return data


def segmentation(centers, labels, shape=SHAPE, radius=3):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    segm = np.zeros(shape, int)
    for (x, y), label in zip(centers, labels):
        segm[np.hypot(xx - x, yy - y) <= radius] = label
    return SegmentationImage(segm)


class TestReadImage:
    def test_ccddata_unit_mask_uncertainty(self):
        data = blobs()
        mask = np.zeros(SHAPE, bool)
        mask[3, 4] = True
        ccd = CCDData(data, unit='electron/s', mask=mask,
                      uncertainty=StdDevUncertainty(np.full(SHAPE, 0.5)),
                      meta={'PSF_FWHM': 3.0})
        image = read_image(ccd)
        assert isinstance(image, ImageData)
        assert image.unit == u.electron / u.s
        assert image.shape == SHAPE
        np.testing.assert_array_equal(image.data, data)
        np.testing.assert_array_equal(image.mask, mask)
        np.testing.assert_array_equal(image.error, np.full(SHAPE, 0.5))
        assert image.meta == {'PSF_FWHM': 3.0}
        assert image.wcs is None
        assert image.pixel_scale is None

    def test_variance_uncertainty_becomes_std(self):
        ccd = CCDData(np.ones(SHAPE), unit='adu',
                      uncertainty=VarianceUncertainty(np.full(SHAPE, 4.0)))
        image = read_image(ccd)
        np.testing.assert_allclose(image.error, 2.0)

    def test_wcs_pixel_scale(self):
        ccd = CCDData(np.ones(SHAPE), unit='adu', wcs=make_wcs(0.2))
        image = read_image(ccd)
        assert image.pixel_scale.unit == u.arcsec / u.pix
        assert image.pixel_scale.value == pytest.approx(0.2, rel=1e-9)

    def test_wcs_pixel_scale_nonsquare(self):
        wcs = make_wcs(0.1, 0.4)
        image = read_image(CCDData(np.ones(SHAPE), unit='adu', wcs=wcs))
        expected = np.sqrt(np.prod(proj_plane_pixel_scales(wcs))) * 3600
        assert expected == pytest.approx(0.2)
        assert image.pixel_scale.to_value(u.arcsec / u.pix) == \
            pytest.approx(expected, rel=1e-9)

    def test_wcs_wins_over_pixel_scale(self):
        ccd = CCDData(np.ones(SHAPE), unit='adu', wcs=make_wcs(0.2))
        image = read_image(ccd, pixel_scale=0.5 * u.arcsec / u.pix)
        assert image.pixel_scale.to_value(u.arcsec / u.pix) == \
            pytest.approx(0.2)

    def test_nddata(self):
        mask = np.zeros(SHAPE, bool)
        mask[0, 0] = True
        nd = NDData(np.ones(SHAPE), unit=u.Jy, mask=mask,
                    uncertainty=StdDevUncertainty(np.ones(SHAPE)))
        image = read_image(nd)
        assert image.unit == u.Jy
        np.testing.assert_array_equal(image.mask, mask)
        np.testing.assert_array_equal(image.error, 1.0)

    def test_quantity(self):
        image = read_image(np.ones(SHAPE) * u.MJy / u.sr)
        assert image.unit == u.MJy / u.sr
        assert image.error is None
        assert not image.mask.any()

    def test_ndarray(self):
        image = read_image(np.ones(SHAPE))
        assert image.unit is None
        assert image.wcs is None
        assert image.data.dtype == np.float64

    @pytest.mark.parametrize('dtype', [np.int16, np.int64, np.uint8,
                                       np.float32])
    def test_integer_and_float32_data(self, dtype):
        array = np.arange(np.prod(SHAPE)).reshape(SHAPE) % 200
        image = read_image(array.astype(dtype))
        assert image.data.dtype == np.float64
        np.testing.assert_array_equal(image.data, array)

    def test_integer_ccddata(self):
        ccd = CCDData(np.ones(SHAPE, np.int32), unit='adu')
        image = read_image(ccd)
        assert image.data.dtype == np.float64

    def test_bool_is_type_error(self):
        with pytest.raises(TypeError, match='data must be numeric.*boolean'):
            read_image(np.ones(SHAPE, bool))

    def test_string_is_type_error(self):
        with pytest.raises(TypeError, match='data must be numeric'):
            read_image(np.full(SHAPE, 'a'))

    def test_name_in_message(self):
        with pytest.raises(TypeError, match='image must be numeric'):
            read_image(np.ones(SHAPE, bool), name='image')

    @pytest.mark.parametrize('shape', [(2, 4, 4), (10,), ()])
    def test_not_2d(self, shape):
        with pytest.raises(ValueError,
                           match=rf'data must be a 2-D image, got shape '
                                 rf'{re_shape(shape)}'):
            read_image(np.ones(shape))

    @pytest.mark.parametrize('shape', [(0, 5), (5, 0)])
    def test_empty(self, shape):
        with pytest.raises(ValueError, match='data is empty'):
            read_image(np.ones(shape))

    def test_all_nan(self):
        with pytest.raises(ValueError, match='data has no finite, unmasked'):
            read_image(np.full(SHAPE, np.nan))

    def test_all_masked(self):
        ccd = CCDData(np.ones(SHAPE), unit='adu', mask=np.ones(SHAPE, bool))
        with pytest.raises(ValueError, match='data has no finite, unmasked'):
            read_image(ccd)

    def test_nan_pocket_sets_mask(self):
        data = blobs()
        data[5:8, 9:12] = np.nan
        data[20, 20] = np.inf
        image = read_image(data)
        expected = np.zeros(SHAPE, bool)
        expected[5:8, 9:12] = True
        expected[20, 20] = True
        np.testing.assert_array_equal(image.mask, expected)

    def test_nonfinite_uncertainty_sets_mask(self):
        error = np.ones(SHAPE)
        error[2, 3] = np.nan
        ccd = CCDData(np.ones(SHAPE), unit='adu',
                      uncertainty=StdDevUncertainty(error))
        image = read_image(ccd)
        assert image.mask[2, 3]
        assert image.mask.sum() == 1

    def test_mask_shape_mismatch(self):
        nd = NDData(np.ones(SHAPE), mask=np.zeros((3, 3), bool))
        with pytest.raises(ValueError, match=r'data\.mask has shape'):
            read_image(nd)

    @pytest.mark.parametrize('unit', [u.mag, u.ABmag, u.STmag, u.dex,
                                      u.mag / u.arcsec ** 2])
    def test_magnitude_unit_rejected(self, unit):
        with pytest.raises(ValueError, match='data has unit.*logarithmic'):
            read_image(np.ones(SHAPE) * unit)

    def test_magnitude_unit_ccddata_rejected(self):
        with pytest.raises(ValueError, match='data has unit.*logarithmic'):
            read_image(CCDData(np.ones(SHAPE), unit=u.mag))

    @pytest.mark.parametrize('unit', [u.deg, u.arcsec, u.m, u.s])
    def test_non_flux_unit_rejected(self, unit):
        with pytest.raises(ValueError, match='data has unit.*physical type'):
            read_image(np.ones(SHAPE) * unit)

    @pytest.mark.parametrize('unit', [u.adu, u.electron / u.s, u.Jy,
                                      u.dimensionless_unscaled, u.ct,
                                      u.erg / u.s / u.cm ** 2 / u.AA])
    def test_flux_units_accepted(self, unit):
        assert read_image(np.ones(SHAPE) * unit).unit == unit

    @pytest.mark.parametrize('unit', [
        u.m ** 2, u.K / u.s, u.Pa, u.K, u.kg, u.m / u.s, u.Hz, u.sr,
        u.Unit('foo', parse_strict='silent')], ids=str)
    def test_unit_allow_list_refuses(self, unit):
        with pytest.raises(ValueError, match=r'data has unit .*not a flux'):
            read_image(NDData(np.ones(SHAPE), unit=unit))

    @pytest.mark.parametrize('unit', [
        u.ph, u.DN, u.nmgy, u.W / u.m ** 2, u.ph / u.s / u.cm ** 2,
        u.ph / u.s / u.cm ** 2 / u.AA, u.MJy / u.sr, u.Jy / u.arcsec ** 2,
        u.Jy / u.beam, u.adu / u.pix, u.electron / u.s / u.pix ** 2,
        u.erg / u.s / u.cm ** 2 / u.AA / u.arcsec ** 2, u.R, u.percent,
        u.ct / u.min, 'electron / s'], ids=str)
    def test_unit_allow_list_accepts(self, unit):
        assert check_flux_unit(unit) == u.Unit(unit)

    def test_unit_message_names_parameter(self):
        with pytest.raises(ValueError, match=r"image has unit 'Pa'"):
            check_flux_unit(u.Pa, 'image')

    @pytest.mark.parametrize('masked', ['numpy', 'astropy', 'nddata'])
    def test_masked_arrays_honoured(self, masked):
        data, mask = blobs(), np.zeros(SHAPE, bool)
        mask[3, 4] = True
        given = {'numpy': np.ma.masked_array(data, mask=mask),
                 'astropy': Masked(data * u.adu, mask=mask),
                 'nddata': NDData(np.ma.masked_array(data, mask=mask))}[masked]
        image = read_image(given)
        np.testing.assert_array_equal(image.mask, mask)
        np.testing.assert_array_equal(image.data, data)
        assert image.unit == (u.adu if masked == 'astropy' else None)

    def test_cube_mask(self):
        """A (y, x) mask applies to every band of a cube."""
        mask = np.eye(*SHAPE, dtype=bool)
        cube = NDData(np.ones((2, *SHAPE)), mask=mask)
        images, _ = read_bands(cube, bands=('g', 'r'),
                               known_bands=('g', 'r'), default_band='r')
        for image in images:
            np.testing.assert_array_equal(image.mask, mask)

    def test_cube_mask_wrong_shape(self):
        cube = NDData(np.ones((2, *SHAPE)), mask=np.zeros((2, 40), bool))
        with pytest.raises(ValueError, match=r'data\.mask has shape \(2, 40\)'
                                             r'; the cube \(2, 40, 50\)'):
            read_bands(cube, bands=('g', 'r'), known_bands=('g', 'r'),
                       default_band='r')

    def test_cube_variance(self):
        cube = NDData(np.ones((2, *SHAPE)), unit='adu',
                      uncertainty=VarianceUncertainty(np.full((2, *SHAPE),
                                                              9.0)))
        images, _ = read_bands(cube, bands=('g', 'r'),
                               known_bands=('g', 'r'), default_band='r')
        for image in images:
            np.testing.assert_allclose(image.error, 3.0)

    def test_masked_cube(self):
        mask = np.zeros((2, *SHAPE), bool)
        mask[1, 3, 4] = True
        cube = np.ma.masked_array(np.ones((2, *SHAPE)), mask=mask)
        images, _ = read_bands(cube, bands=('g', 'r'),
                               known_bands=('g', 'r'), default_band='r')
        assert not images[0].mask.any() and images[1].mask[3, 4]

    def test_plain_array_uncertainty(self):
        nd = NDData(np.ones(SHAPE), uncertainty=np.ones(SHAPE))
        with pytest.raises(TypeError, match=r'data\.uncertainty is of unknown '
                                            r'kind.*StdDevUncertainty'):
            read_image(nd)

    def test_uncertainty_shape(self):
        nd = NDData(np.ones(SHAPE),
                    uncertainty=StdDevUncertainty(np.ones((3, 3))))
        with pytest.raises(ValueError, match=r'data\.uncertainty has shape '
                                             r'\(3, 3\), the data \(40, 50\)'):
            read_image(nd)

    @pytest.mark.parametrize('kind', [StdDevUncertainty, VarianceUncertainty,
                                      InverseVariance])
    def test_negative_uncertainty(self, kind):
        error = np.ones(SHAPE)
        error[3, 4] = -1.0
        with pytest.raises(ValueError, match=r'data\.uncertainty is negative '
                                             r'at 1 unmasked pixels .*\(3, 4\)'):
            read_image(NDData(np.ones(SHAPE), uncertainty=kind(error)))

    def test_negative_uncertainty_at_masked_pixel(self):
        error, mask = np.ones(SHAPE), np.zeros(SHAPE, bool)
        error[3, 4], mask[3, 4] = -1.0, True
        image = read_image(NDData(np.ones(SHAPE), mask=mask,
                                  uncertainty=VarianceUncertainty(error)))
        assert image.mask.sum() == 1 and np.isnan(image.error[3, 4])

    @pytest.mark.parametrize('kind', [StdDevUncertainty, VarianceUncertainty,
                                      InverseVariance])
    def test_zero_uncertainty_masks(self, kind):
        error = np.full(SHAPE, 4.0)
        error[3, 4] = 0.0
        error[5, 6] = np.nan
        image = read_image(NDData(np.ones(SHAPE), uncertainty=kind(error)))
        assert image.mask[3, 4] and image.mask[5, 6]
        assert image.mask.sum() == 2
        expected = {StdDevUncertainty: 4.0, VarianceUncertainty: 2.0,
                    InverseVariance: 0.5}[kind]
        np.testing.assert_allclose(image.error[~image.mask], expected)

    def test_all_zero_uncertainty(self):
        nd = NDData(np.ones(SHAPE),
                    uncertainty=StdDevUncertainty(np.zeros(SHAPE)))
        with pytest.raises(ValueError, match='uncertainty is 0 or NaN'):
            read_image(nd)

    def test_uncertainty_unit_converted(self):
        nd = NDData(np.ones(SHAPE), unit='Jy',
                    uncertainty=StdDevUncertainty(np.full(SHAPE, 500.0),
                                                  unit='mJy'))
        np.testing.assert_allclose(read_image(nd).error, 0.5)

    def test_complex_data(self):
        with pytest.raises(TypeError, match='data must be real'):
            read_image(np.ones(SHAPE, complex))

    def test_wcs_with_three_axes(self):
        wcs = WCS(naxis=3)
        wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN', 'FREQ']
        with pytest.raises(ValueError, match=r'data\.wcs has 3 pixel axes.*'
                                             r'wcs\.celestial'):
            read_image(NDData(np.ones(SHAPE), wcs=wcs))

    @pytest.mark.parametrize('cd', [[[0.0, 0.0], [0.0, 0.0]],
                                    [[1e-5, 2e-5], [1e-5, 2e-5]]])
    def test_singular_wcs(self, cd):
        wcs = make_wcs()
        wcs.wcs.cd = cd
        with pytest.raises(ValueError, match=r'data\.wcs (is invalid|has a '
                                             r'singular)'):
            read_image(NDData(np.ones(SHAPE), wcs=wcs))

    def test_read_only_input(self):
        data = blobs()
        data.flags.writeable = False
        image = read_image(data)
        image.data[0, 0] = 1e9
        assert data[0, 0] != 1e9 and not data.flags.writeable

    @pytest.mark.parametrize('value, expected', [
        (0.2 * u.arcsec / u.pix, 0.2),
        (0.2 * u.arcsec, 0.2),
        (1 * u.arcmin / u.pix, 60.0),
        (1e-4 * u.deg / u.pix, 0.36),
    ])
    def test_pixel_scale(self, value, expected):
        image = read_image(np.ones(SHAPE), pixel_scale=value)
        assert image.pixel_scale.unit == u.arcsec / u.pix
        assert image.pixel_scale.value == pytest.approx(expected)

    @pytest.mark.parametrize('value', [0.2, 0.2 * u.m, 0.2 * u.arcsec / u.m])
    def test_pixel_scale_not_angle(self, value):
        with pytest.raises(ValueError, match='pixel_scale must be an angle'):
            read_image(np.ones(SHAPE), pixel_scale=value)

    @pytest.mark.parametrize('value', [0.0 * u.arcsec, -0.2 * u.arcsec,
                                       [0.1, 0.2] * u.arcsec / u.pix,
                                       np.nan * u.arcsec])
    def test_pixel_scale_not_positive_scalar(self, value):
        with pytest.raises(ValueError,
                           match='pixel_scale must be one positive value'):
            read_image(np.ones(SHAPE), pixel_scale=value)

    def test_input_not_mutated(self):
        data = blobs()
        data[5:8, 9:12] = np.nan
        mask = np.zeros(SHAPE, bool)
        mask[30, 30] = True
        error = np.full(SHAPE, 0.5)
        ccd = CCDData(data, unit='adu', mask=mask,
                      uncertainty=StdDevUncertainty(error),
                      meta={'PSF_FWHM': 3.0}, wcs=make_wcs())
        before = copy.deepcopy(ccd)
        image = read_image(ccd)
        # Writing to the returned arrays must not reach the caller's.
        image.data[:] = 0.0
        image.mask[:] = True
        image.error[:] = 99.0
        image.meta['new'] = 1
        np.testing.assert_array_equal(ccd.data, before.data)
        np.testing.assert_array_equal(ccd.mask, before.mask)
        np.testing.assert_array_equal(ccd.uncertainty.array,
                                      before.uncertainty.array)
        assert dict(ccd.meta) == dict(before.meta)
        assert not ccd.mask[5:8, 9:12].any()

    def test_ndarray_not_mutated(self):
        data = blobs()
        data[1, 1] = np.nan
        before = data.copy()
        image = read_image(data)
        image.data[:] = 0.0
        np.testing.assert_array_equal(data, before)


def re_shape(shape):
    """Regex of a tuple's repr."""
    return repr(tuple(shape)).replace('(', r'\(').replace(')', r'\)')


class TestLocateSources:
    centers = ((12.0, 10.0), (35.0, 28.0))

    def test_segmentation_labels_preserved(self):
        image = read_image(blobs(self.centers))
        segm = segmentation(self.centers, [3, 7])
        sources = locate_sources(image, segmentation_image=segm)
        assert isinstance(sources, Sources)
        np.testing.assert_array_equal(sources.label, [3, 7])
        np.testing.assert_allclose(sources.x, [12.0, 35.0], atol=0.3)
        np.testing.assert_allclose(sources.y, [10.0, 28.0], atol=0.3)

    def test_segmentation_label_order(self):
        image = read_image(blobs(self.centers))
        segm = segmentation(self.centers, [9, 2])
        sources = locate_sources(image, segmentation_image=segm)
        np.testing.assert_array_equal(sources.label, [2, 9])
        # Label 2 is the second blob.
        assert sources.x[0] == pytest.approx(35.0, abs=0.3)
        assert sources.x[1] == pytest.approx(12.0, abs=0.3)

    def test_segmentation_fully_masked_segment(self):
        data = blobs(self.centers)
        segm = segmentation(self.centers, [1, 2])
        data[segm.data == 2] = np.nan
        sources = locate_sources(read_image(data), segmentation_image=segm)
        assert np.isfinite(sources.x).all() and np.isfinite(sources.y).all()
        assert sources.x[1] == pytest.approx(35.0, abs=0.6)
        assert sources.y[1] == pytest.approx(28.0, abs=0.6)

    def test_segmentation_wrong_shape(self):
        image = read_image(blobs(self.centers))
        segm = segmentation(((5, 5),), [1], shape=(20, 20))
        with pytest.raises(ValueError,
                           match=r'segmentation_image has shape \(20, 20\)'):
            locate_sources(image, segmentation_image=segm)

    def test_segmentation_not_segmentation_image(self):
        image = read_image(blobs(self.centers))
        with pytest.raises(TypeError, match='segmentation_image must be'):
            locate_sources(image, segmentation_image=np.zeros(SHAPE, int))

    def test_array_positions(self):
        image = read_image(blobs())
        sources = locate_sources(image, positions=[(12.0, 10.0),
                                                   (35.5, 28.25)])
        np.testing.assert_array_equal(sources.label, [1, 2])
        np.testing.assert_array_equal(sources.x, [12.0, 35.5])
        np.testing.assert_array_equal(sources.y, [10.0, 28.25])

    def test_single_position(self):
        sources = locate_sources(read_image(blobs()), positions=(3.0, 4.0))
        np.testing.assert_array_equal(sources.label, [1])
        np.testing.assert_array_equal(sources.x, [3.0])

    @pytest.mark.parametrize('table_class', [Table, QTable])
    def test_table_positions(self, table_class):
        positions = table_class({'x_centroid': [12.0, 35.0] * u.pix,
                                 'y_centroid': [10.0, 28.0] * u.pix})
        sources = locate_sources(read_image(blobs()), positions=positions)
        np.testing.assert_array_equal(sources.x, [12.0, 35.0])
        np.testing.assert_array_equal(sources.y, [10.0, 28.0])

    def test_table_missing_columns(self):
        positions = Table({'x': [1.0], 'y': [2.0]})
        with pytest.raises(ValueError, match='positions table lacks column'):
            locate_sources(read_image(blobs()), positions=positions)

    def test_skycoord_with_wcs(self):
        wcs = make_wcs()
        image = read_image(CCDData(blobs(), unit='adu', wcs=wcs))
        sky = wcs.pixel_to_world([12.0, 35.0], [10.0, 28.0])
        assert isinstance(sky, SkyCoord)
        sources = locate_sources(image, positions=sky)
        np.testing.assert_allclose(sources.x, [12.0, 35.0], atol=1e-6)
        np.testing.assert_allclose(sources.y, [10.0, 28.0], atol=1e-6)
        np.testing.assert_array_equal(sources.label, [1, 2])

    def test_scalar_skycoord_with_wcs(self):
        wcs = make_wcs()
        image = read_image(CCDData(blobs(), unit='adu', wcs=wcs))
        sources = locate_sources(image, positions=wcs.pixel_to_world(7, 8))
        np.testing.assert_allclose([sources.x[0], sources.y[0]], [7, 8],
                                   atol=1e-6)

    def test_skycoord_without_wcs(self):
        sky = SkyCoord([150.0] * u.deg, [2.0] * u.deg)
        with pytest.raises(ValueError, match='positions is a SkyCoord.*WCS'):
            locate_sources(read_image(blobs()), positions=sky)

    @pytest.mark.parametrize('position', [(-3.0, 5.0), (5.0, 45.0),
                                          (60.0, 5.0)])
    def test_positions_off_image(self, position):
        with pytest.raises(ValueError,
                           match=r'positions \[1\] .*outside the 50x40'):
            locate_sources(read_image(blobs()),
                           positions=[(5.0, 5.0), position])

    @pytest.mark.parametrize('position', [(np.nan, 5.0), (5.0, np.inf)])
    def test_positions_not_finite(self, position):
        with pytest.raises(ValueError,
                           match=r'positions \[1\] .*not finite'):
            locate_sources(read_image(blobs()),
                           positions=[(5.0, 5.0), position])

    @pytest.mark.parametrize('positions', ['48,46', b'48', {'x': 1}])
    def test_positions_not_array(self, positions):
        with pytest.raises(TypeError, match='positions must be \\(N, 2\\) pixel'):
            locate_sources(read_image(blobs()), positions=positions)

    def test_positions_not_numbers(self):
        with pytest.raises(TypeError, match='positions must hold numbers'):
            locate_sources(read_image(blobs()), positions=[['a', 'b']])

    def test_positions_ragged(self):
        with pytest.raises(ValueError, match='positions must have shape'):
            locate_sources(read_image(blobs()), positions=[[1, 2], [3]])

    @pytest.mark.parametrize('unit', [u.deg, u.arcsec])
    def test_table_angle_columns(self, unit):
        table = QTable({'x_centroid': [1.0] * unit,
                        'y_centroid': [2.0] * unit})
        with pytest.raises(ValueError, match=r"positions\['x_centroid'\] has "
                                             r'unit .*SkyCoord'):
            locate_sources(read_image(blobs()), positions=table)

    def test_table_pixel_columns(self):
        table = Table({'x_centroid': [12.0] * u.pix,
                       'y_centroid': [10.0] * u.pix})
        sources = locate_sources(read_image(blobs()), positions=table)
        assert (sources.x[0], sources.y[0]) == (12.0, 10.0)

    def test_table_masked_entries(self):
        table = Table({'x_centroid': np.ma.masked_array([1.0, 2.0],
                                                        mask=[False, True]),
                       'y_centroid': [2.0, 3.0]})
        with pytest.raises(ValueError, match=r"positions\['x_centroid'\] has "
                                             r'masked entries \[1\]'):
            locate_sources(read_image(blobs()), positions=table)

    def test_quantity_positions(self):
        image = read_image(blobs())
        sources = locate_sources(image, positions=[[12.0, 10.0]] * u.pix)
        assert sources.x[0] == 12.0
        with pytest.raises(ValueError, match="positions has unit 'arcsec'"):
            locate_sources(image, positions=[[12.0, 10.0]] * u.arcsec)

    def test_positions_on_edge_pixels_allowed(self):
        sources = locate_sources(read_image(blobs()),
                                 positions=[(0.0, 0.0), (49.0, 39.0)])
        assert len(sources.label) == 2

    @pytest.mark.parametrize('positions', [[(1.0, 2.0, 3.0)],
                                           np.ones((2, 2, 2))])
    def test_positions_wrong_shape(self, positions):
        with pytest.raises(ValueError, match=r'positions must have shape'):
            locate_sources(read_image(blobs()), positions=positions)

    def test_positions_empty(self):
        with pytest.raises(ValueError, match='positions is empty'):
            locate_sources(read_image(blobs()), positions=np.empty((0, 2)))

    def test_both_given(self):
        image = read_image(blobs(self.centers))
        segm = segmentation(self.centers, [1, 2])
        with pytest.raises(ValueError, match='exactly one of '
                                             'segmentation_image and positions'):
            locate_sources(image, segmentation_image=segm,
                           positions=[(1.0, 1.0)])

    def test_neither_given(self):
        with pytest.raises(ValueError, match='exactly one of '
                                             'segmentation_image and positions'):
            locate_sources(read_image(blobs()))


class TestCutStamps:
    def image(self, **kwargs):
        data = np.arange(np.prod(SHAPE), dtype=float).reshape(SHAPE)
        return read_image(CCDData(data, unit='adu', **kwargs))

    @pytest.mark.parametrize('size', [8, 9])
    @pytest.mark.parametrize('x, y, col, row', [(15.4, 20.6, 15, 21),
                                                (15.0, 20.0, 15, 20),
                                                (14.6, 19.4, 15, 19)])
    def test_centred_on_nearest_pixel(self, size, x, y, col, row):
        image = self.image()
        sources = locate_sources(image, positions=[(x, y)])
        stamps, errors, flags = cut_stamps(image, sources, size)
        assert stamps.shape == (1, size, size)
        assert stamps.dtype == np.float32
        assert errors is None
        assert flags[0] == 0
        half = size // 2
        assert stamps[0, half, half] == image.data[row, col]
        np.testing.assert_array_equal(
            stamps[0], image.data[row - half:row - half + size,
                                  col - half:col - half + size])

    def test_edge_flag(self):
        image = self.image()
        sources = locate_sources(image, positions=[(2.0, 20.0), (25.0, 20.0),
                                                   (25.0, 38.0)])
        stamps, _, flags = cut_stamps(image, sources, 10)
        np.testing.assert_array_equal(
            flags, [SourceFlags.EDGE, 0, SourceFlags.EDGE])
        # Pixels beyond the edge are NaN, the rest are data.
        assert np.isnan(stamps[0][:, :3]).all()
        assert np.isfinite(stamps[0][:, 3:]).all()
        assert np.isfinite(stamps[1]).all()

    def test_masked_flag(self):
        mask = np.zeros(SHAPE, bool)
        mask[20, 26] = True
        image = self.image(mask=mask)
        sources = locate_sources(image, positions=[(25.0, 20.0),
                                                   (10.0, 10.0)])
        stamps, _, flags = cut_stamps(image, sources, 8)
        np.testing.assert_array_equal(flags, [SourceFlags.MASKED, 0])
        assert np.isnan(stamps[0, 4, 5])
        assert np.isfinite(stamps[0]).sum() == 63
        assert np.isfinite(stamps[1]).all()

    def test_nan_and_edge_flags_combine(self):
        data = np.ones(SHAPE)
        data[1, 1] = np.nan
        image = read_image(data)
        sources = locate_sources(image, positions=[(1.0, 1.0)])
        _, _, flags = cut_stamps(image, sources, 8)
        np.testing.assert_array_equal(
            flags, [SourceFlags.MASKED | SourceFlags.EDGE])

    def test_error_stamps(self):
        error = np.full(SHAPE, 2.0)
        ccd = CCDData(np.ones(SHAPE), unit='adu',
                      uncertainty=VarianceUncertainty(error ** 2))
        image = read_image(ccd)
        sources = locate_sources(image, positions=[(25.0, 20.0), (1.0, 1.0)])
        stamps, errors, _ = cut_stamps(image, sources, 8)
        assert errors.shape == stamps.shape
        np.testing.assert_array_equal(errors[0], 2.0)
        assert np.isnan(errors[1][0, 0])

    def test_output_shapes_and_dtypes(self):
        image = self.image()
        sources = locate_sources(image, positions=[(25.0, 20.0)] * 3)
        stamps, _, flags = cut_stamps(image, sources, 6)
        assert stamps.shape == (3, 6, 6)
        assert flags.shape == (3,) and flags.dtype == np.int32



class TestSizeAwareStamps:
    """``sampling_factors``, ``block_image`` and footprints (size-aware stamps)."""

    def test_footprint_must_fit(self):
        factors = sampling_factors(np.array([10.0, 32.0, 33.0, 130.0]), None,
                                   32)
        np.testing.assert_array_equal(factors, [1, 1, 2, 5])

    def test_psf_broader_than_trained(self):
        factors = sampling_factors(None, np.array([2.0, 6.0, 6.5, 13.0]), 32,
                                   psf_range=(1.0, 6.0))
        np.testing.assert_array_equal(factors, [1, 1, 2, 3])

    def test_footprint_limited_by_narrowest_trained_psf(self):
        # A 200-pixel footprint would need 7x; the PSF (3 pix, trained down
        # to 1) allows 3x.
        factors = sampling_factors(np.array([200.0, 200.0]),
                                   np.array([3.0, 0.8]), 32,
                                   psf_range=(1.0, 6.0))
        np.testing.assert_array_equal(factors, [3, 1])

    def test_block_image_keeps_flux_and_masks(self):
        data = np.arange(36.0).reshape(6, 6)
        mask = np.zeros((6, 6), bool)
        mask[0, 0] = True
        error = np.full((6, 6), 2.0)
        image = ImageData(data, mask, error, None, None, None, {})
        binned = block_image(image, 2)
        assert binned.shape == (3, 3)
        assert binned.data[1:, 1:].sum() == data[2:, 2:].sum()
        assert binned.mask[0, 0] and binned.mask.sum() == 1
        np.testing.assert_allclose(binned.error[1, 1], 4.0)
        assert block_image(image, 1) is image
        assert data[0, 0] == 0.0 and mask[0, 0]  # inputs untouched

    def test_extent_from_segmentation_and_positions(self):
        yy, xx = np.mgrid[:80, :100]
        data = (1000 * np.exp(-0.5 * ((xx - 30) ** 2 + (yy - 40) ** 2) / 8**2)
                + 50 * np.exp(-0.5 * ((xx - 80) ** 2 + (yy - 20) ** 2)))
        data += np.random.default_rng(0).normal(0, 1, data.shape)
        image = read_image(data)
        sources = locate_sources(image, positions=[(30, 40), (80, 20),
                                                   (5, 75)])
        big, small, empty = sources.extent
        assert big > 40 and 2 <= small < 10 and empty == 0
        segm = SegmentationImage((np.hypot(xx - 30, yy - 40) < 20)
                                 .astype(int) * 3)
        from_segm = locate_sources(image, segmentation_image=segm)
        np.testing.assert_array_equal(from_segm.extent, [39])
