# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The image-to-image family with a tiny `ImageToImageEstimator`."""

import copy
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import NDData
from astropy.table import join
from photutils.segmentation import SegmentationImage, SourceCatalog

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.image import ImageResult
from astrodl_plugins.core.segmentation import (
    check_segmentation,
    deblended_segmentation,
    labels_at,
)
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    LABELS,
    SCALE,
    SHAPE,
    TinySegments,
    image_data,
    make_ccd,
    make_segmentation,
    make_wcs,
)
from astrodl_plugins.exceptions import AstrodlUserWarning, NotFittedError

KWARGS = dict(n_samples=6, seed=1)


@pytest.fixture(scope='module')
def estimator(tiny_segments):
    return tiny_segments


@pytest.fixture(scope='module')
def result(estimator):
    return estimator.process(make_ccd(), make_segmentation(),
                             quantiles=(0.16, 0.84), **KWARGS)


class TestProcess:
    def test_result(self, result):
        assert isinstance(result, ImageResult)
        assert repr(result) == '<ImageResult: 3 labels, table rows: 3>'
        segm = result.segmentation_image
        assert isinstance(segm, SegmentationImage)
        np.testing.assert_array_equal(segm.labels, [1, 2, 3])
        np.testing.assert_array_equal(result.parent_labels, LABELS)
        np.testing.assert_array_equal(segm.data > 0,
                                      make_segmentation().data > 0)
        assert result.meta == {'n_segments': 3, 'psf_fwhm': 3.0,
                               'psf_fwhm_source': "given (data.meta['PSF_FWHM'])"}

    def test_table(self, result):
        table = result.table
        assert table.colnames == [
            'label', 'x_centroid', 'y_centroid', 'sky_centroid',
            'parent_label', 'flux', 'flux_err', 'flux_q16', 'flux_q84',
            'area', 'flag']
        np.testing.assert_array_equal(table['label'], [1, 2, 3])
        np.testing.assert_array_equal(table['parent_label'], LABELS)
        np.testing.assert_allclose(table['x_centroid'].value, CENTERS[:, 0])
        assert table['x_centroid'].unit is None  # plain, as photutils'
        assert table['flux'].unit == u.electron / u.s
        assert table['area'].unit == u.pix ** 2
        assert np.isfinite(table['flux']).all()
        assert (table['flux_err'] > 0).all()
        np.testing.assert_array_equal(table['flag'], 0)
        sky = make_wcs().pixel_to_world(CENTERS[:, 0], CENTERS[:, 1])
        assert (table['sky_centroid'].separation(sky) < 1e-6 * u.arcsec).all()

    def test_meta(self, result):
        meta = result.table.meta
        assert meta['estimator'] == 'tiny-segments'
        assert meta['n_samples'] == KWARGS['n_samples']
        assert meta['seed'] == KWARGS['seed']
        assert meta['n_segments'] == 3
        assert set(meta['flags']) == {1, 2, 4, 8}

    def test_joins_input_catalog(self, result):
        catalog = SourceCatalog(make_ccd().data, make_segmentation())
        catalog = catalog.to_table(columns=['label', 'area'])
        catalog.rename_column('label', 'parent_label')
        joined = join(result.table, catalog, keys='parent_label')
        assert len(joined) == 3
        np.testing.assert_array_equal(joined['area_1'].value,
                                      joined['area_2'].value)

    def test_predict_is_the_table(self, estimator, result):
        table = estimator.predict(make_ccd(),
                                  segmentation_image=make_segmentation(),
                                  quantiles=(0.16, 0.84), **KWARGS)
        for name in ('flux', 'flux_err', 'flux_q84', 'parent_label'):
            np.testing.assert_array_equal(table[name], result.table[name])

    def test_same_seed(self, estimator, result):
        again = estimator.process(make_ccd(), make_segmentation(),
                                  quantiles=(0.16, 0.84), **KWARGS)
        np.testing.assert_array_equal(again.table['flux_q16'],
                                      result.table['flux_q16'])
        other = estimator.process(make_ccd(), make_segmentation(),
                                  n_samples=5, seed=2)
        assert not np.array_equal(other.table['flux'], result.table['flux'])

    def test_zero_samples(self, estimator):
        first = estimator.process(make_ccd(), make_segmentation(),
                                  n_samples=0, seed=0, uncertainty_parts=True)
        second = estimator.process(make_ccd(), make_segmentation(),
                                   n_samples=0, seed=5)
        np.testing.assert_array_equal(first.table['flux'],
                                      second.table['flux'])
        np.testing.assert_array_equal(first.table['flux_err_epistemic'], 0)

    def test_return_samples(self, estimator):
        table, draws = estimator.predict(
            make_ccd(), segmentation_image=make_segmentation(),
            return_samples=True, **KWARGS)
        assert list(draws) == ['flux']
        assert draws['flux'].shape == (3, KWARGS['n_samples'])
        assert draws['flux'].unit == u.electron / u.s
        np.testing.assert_allclose(draws['flux'].mean(axis=1), table['flux'],
                                   rtol=1e-6)

    def test_uncertainty_parts(self, estimator):
        table = estimator.predict(make_ccd(),
                                  segmentation_image=make_segmentation(),
                                  uncertainty_parts=True, **KWARGS)
        np.testing.assert_allclose(
            np.hypot(table['flux_err_epistemic'],
                     table['flux_err_aleatoric']), table['flux_err'],
            rtol=1e-6)
        assert table['flux_err_aleatoric'].unit == u.electron / u.s

    def test_integer_array_segmentation(self, estimator, result):
        again = estimator.process(make_ccd(), make_segmentation().data,
                                  quantiles=(0.16, 0.84), **KWARGS)
        np.testing.assert_array_equal(again.table['flux'],
                                      result.table['flux'])
        as_float = estimator.process(
            make_ccd(), make_segmentation().data.astype(float), **KWARGS)
        np.testing.assert_array_equal(as_float.parent_labels, LABELS)

    def test_unitless_data(self, estimator):
        result = estimator.process(image_data(), make_segmentation(),
                                   **KWARGS)
        assert result.table['flux'].unit is None
        assert 'sky_centroid' not in result.table.colnames

    def test_inputs_untouched(self, estimator):
        ccd = make_ccd()
        ccd.mask[0, 0] = True
        segm = make_segmentation()
        before_ccd, before_segm = copy.deepcopy(ccd), segm.data.copy()
        estimator.process(ccd, segm, **KWARGS)
        np.testing.assert_array_equal(ccd.data, before_ccd.data)
        np.testing.assert_array_equal(ccd.mask, before_ccd.mask)
        np.testing.assert_array_equal(segm.data, before_segm)


class TestSelection:
    def test_labels(self, estimator):
        result = estimator.process(make_ccd(), make_segmentation(),
                                   labels=[9, 5], **KWARGS)
        # Every segment is in the output; only the selected are measured.
        assert result.segmentation_image.n_labels == 3
        np.testing.assert_array_equal(result.table['parent_label'], [5, 9])
        np.testing.assert_array_equal(result.table['label'], [2, 3])

    def test_single_label(self, estimator):
        result = estimator.process(make_ccd(), make_segmentation(), labels=5,
                                   **KWARGS)
        np.testing.assert_array_equal(result.table['parent_label'], [5])

    def test_positions(self, estimator):
        positions = CENTERS[[2, 0, 2]] + 0.4
        result = estimator.process(make_ccd(), make_segmentation(),
                                   positions=positions, **KWARGS)
        np.testing.assert_array_equal(result.table['parent_label'], [2, 9])

    def test_positions_as_sky_and_table(self, estimator):
        from astropy.table import Table

        ccd = make_ccd()
        sky = ccd.wcs.pixel_to_world(CENTERS[[2, 0]][:, 0],
                                     CENTERS[[2, 0]][:, 1])
        table = Table({'x_centroid': CENTERS[[2, 0]][:, 0],
                       'y_centroid': CENTERS[[2, 0]][:, 1]})
        for positions in (sky, table):
            result = estimator.process(ccd, make_segmentation(),
                                       positions=positions, **KWARGS)
            np.testing.assert_array_equal(result.table['parent_label'],
                                          [2, 9])

    def test_positions_off_segments(self, estimator):
        with pytest.raises(ValueError, match=r'positions \[1\] \(0-based\) '
                                             'are outside the image or on '
                                             'no segment'):
            estimator.process(make_ccd(), make_segmentation(),
                              positions=[CENTERS[0], (1.0, 1.0)], **KWARGS)

    def test_labels_and_positions(self, estimator):
        with pytest.raises(ValueError, match='at most one of labels and '
                                             'positions'):
            estimator.process(make_ccd(), make_segmentation(), labels=[2],
                              positions=CENTERS, **KWARGS)

    def test_positions_need_segmentation(self, estimator):
        with pytest.raises(ValueError, match='positions need a '
                                             'segmentation_image'):
            estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)

    def test_no_segmentation(self, estimator):
        with pytest.raises(ValueError, match='segmentation_image is required'):
            estimator.predict(make_ccd(), **KWARGS)

    def test_unknown_label(self, estimator):
        with pytest.raises(ValueError, match=r'labels \[4\] are not in '
                                             'segmentation_image'):
            estimator.process(make_ccd(), make_segmentation(), labels=[2, 4],
                              **KWARGS)

    def test_empty_segmentation(self, estimator):
        with pytest.warns(AstrodlUserWarning, match='has no source'):
            result = estimator.process(make_ccd(), np.zeros(SHAPE, int),
                                       **KWARGS)
        assert result.segmentation_image is None
        assert len(result.parent_labels) == 0
        assert len(result.table) == 0
        assert result.model_images == []
        np.testing.assert_array_equal(result.model_image(SHAPE), 0.0)

    def test_empty_segmentation_columns(self, estimator, result):
        # The empty table has the columns of a full one (row_columns).
        with pytest.warns(AstrodlUserWarning, match='has no source'):
            empty = estimator.process(make_ccd(), np.zeros(SHAPE, int),
                                      quantiles=(0.16, 0.84), **KWARGS)
        assert empty.table.colnames == result.table.colnames
        assert empty.table['flux'].unit == u.electron / u.s
        assert empty.draws['flux'].shape == (0, KWARGS['n_samples'])


class TestFlags:
    def test_edge(self, estimator):
        centers = np.array([(3.0, 40.0), (50.0, 40.0)])
        segm = make_segmentation(centers, [1, 2], radius=2)
        data = image_data(centers)
        result = estimator.process(data, segm, **KWARGS)
        np.testing.assert_array_equal(result.table['flag'],
                                      [SourceFlags.EDGE, 0])

    def test_masked_window(self, estimator):
        ccd = make_ccd()
        x, y = CENTERS[1].astype(int)
        ccd.mask[y + 5, x + 5] = True
        result = estimator.process(ccd, make_segmentation(), **KWARGS)
        np.testing.assert_array_equal(result.table['flag'],
                                      [0, SourceFlags.MASKED, 0])
        assert np.isfinite(result.table['flux']).all()


class TestModels:
    def test_model_images(self, result):
        images = result.model_images
        assert len(images) == 3
        for image, label, parent in zip(images, [1, 2, 3], LABELS):
            assert isinstance(image, NDData)
            assert image.data.shape == (12, 12)
            assert image.unit == u.electron / u.s
            assert image.meta['label'] == label
            assert image.meta['parent_label'] == parent
            x0, y0 = image.meta['origin']
            # The stamp's WCS is the image's, shifted to its first pixel.
            sky = image.wcs.pixel_to_world(0, 0)
            expected = make_wcs().pixel_to_world(x0, y0)
            assert sky.separation(expected) < 1e-6 * u.arcsec

    def test_model_image(self, result):
        data = make_ccd().data
        inside = make_segmentation().data > 0
        np.testing.assert_allclose(result.model_image(SHAPE),
                                   np.where(inside, data, 0.0))

    def test_model_image_clipped_at_edges(self, estimator):
        centers = np.array([(2.0, 2.0)])
        segm = make_segmentation(centers, [1], radius=3)
        data = image_data(centers)
        result = estimator.process(data, segm, **KWARGS)
        assert result.table['flag'][0] == SourceFlags.EDGE
        np.testing.assert_allclose(result.model_image(SHAPE),
                                   np.where(segm.data > 0, data, 0.0))


class TestMeasureFalse:
    def test_segmentation_only(self, estimator, result):
        only = estimator.process(make_ccd(), make_segmentation(),
                                 measure=False, **KWARGS)
        assert only.table is None
        assert only.draws == {}
        assert only.model_images == []
        np.testing.assert_array_equal(only.segmentation_image.data,
                                      result.segmentation_image.data)
        np.testing.assert_array_equal(only.parent_labels, LABELS)
        assert only.meta['n_segments'] == 3
        assert repr(only) == '<ImageResult: 3 labels, table rows: None>'


class TestPSF:
    @pytest.mark.parametrize('meta, psf, expected', [
        (True, None, 3.0),
        (False, None, None),
        (False, 4.0, 4.0),
        (False, 3 * SCALE * u.arcsec, 3.0),
        (True, 2.0 * u.pix, 2.0),
    ])
    def test_image_psf(self, estimator, meta, psf, expected):
        result = estimator.process(make_ccd(meta=meta), make_segmentation(),
                                   psf_fwhm=psf, measure=False)
        if expected is None:
            assert result.meta['psf_fwhm'] is None
        else:
            assert result.meta['psf_fwhm'] == pytest.approx(expected)
            assert result.meta['psf_fwhm_source'].startswith('given')

    def test_angle_needs_scale(self, estimator):
        with pytest.raises(ValueError, match='pixel scale is unknown'):
            estimator.process(make_ccd(wcs=False), make_segmentation(),
                              psf_fwhm=0.6 * u.arcsec)


class TestArguments:
    def test_unknown_keyword(self, estimator):
        with pytest.raises(TypeError, match="TinySegments.predict got "
                                            "unexpected.*'threshold'"):
            estimator.predict(make_ccd(),
                              segmentation_image=make_segmentation(),
                              threshold=2)

    def test_bad_n_samples(self, estimator):
        with pytest.raises(ValueError, match='n_samples must be'):
            estimator.process(make_ccd(), make_segmentation(), n_samples=-2)

    def test_not_fitted(self):
        with pytest.raises(NotFittedError, match='no trained model'):
            TinySegments().process(make_ccd(), make_segmentation())

    @pytest.mark.parametrize('segm, error, match', [
        (np.zeros((5, 5), int), ValueError, r'has shape \(5, 5\)'),
        (np.full(SHAPE, 0.5), ValueError, 'must hold integer labels'),
        (np.ones(SHAPE, bool), TypeError, 'integer array'),
        (-np.ones(SHAPE, int), ValueError, 'negative labels'),
    ])
    def test_bad_segmentation(self, estimator, segm, error, match):
        with pytest.raises(error, match=match):
            estimator.process(make_ccd(), segm)


class TestSegmentationHelpers:
    def test_check_all_labels(self):
        segm, labels = check_segmentation(make_segmentation(), SHAPE)
        np.testing.assert_array_equal(labels, LABELS)
        assert isinstance(segm, SegmentationImage)

    def test_check_labels_sorted_unique(self):
        _, labels = check_segmentation(make_segmentation(), SHAPE,
                                       labels=[9, 2, 9])
        np.testing.assert_array_equal(labels, [2, 9])

    def test_check_float_labels_refused(self):
        with pytest.raises(ValueError, match='labels must be integers'):
            check_segmentation(make_segmentation(), SHAPE, labels=[2.0])

    def test_check_empty_warns(self):
        with pytest.warns(AstrodlUserWarning, match='image has no source'):
            segm, labels = check_segmentation(np.zeros((3, 3), int), (3, 3),
                                              name='image')
        assert segm is None and labels.size == 0

    def test_check_integer_array_no_warning(self):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            check_segmentation(make_segmentation().data, SHAPE)

    def test_labels_at(self):
        segm = make_segmentation()
        np.testing.assert_array_equal(labels_at(segm, CENTERS), LABELS)
        np.testing.assert_array_equal(labels_at(segm, CENTERS[0]), [2])

    @pytest.mark.parametrize('positions', [[(-20.0, 5.0)], [(1.0, 1.0)],
                                           [(500.0, 30.0)]])
    def test_labels_at_off(self, positions):
        with pytest.raises(ValueError, match=r'positions \[0\]'):
            labels_at(make_segmentation(), positions)

    def test_labels_at_shape(self):
        with pytest.raises(ValueError, match=r'positions must have shape'):
            labels_at(make_segmentation(), np.ones((2, 3)))

    def test_deblended_segmentation(self):
        image = np.zeros((5, 6), np.int32)
        image[0, :2], image[2, :2], image[4, :2], image[0, 4:] = 1, 2, 3, 4
        segm = deblended_segmentation(image, [7, 7, 9, 7])
        np.testing.assert_array_equal(segm.labels, [1, 2, 3, 4])
        np.testing.assert_array_equal(segm.deblended_labels, [1, 2, 4])
        assert segm.deblended_label_to_parent == {1: 7, 2: 7, 4: 7}
        np.testing.assert_array_equal(
            segm.parent_to_deblended_labels[7], [1, 2, 4])
        # A parent with one child is not "deblended" (as in photutils).
        assert 3 not in segm.deblended_label_to_parent
