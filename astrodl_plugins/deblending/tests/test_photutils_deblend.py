# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
photutils' own deblending tests, run against `deblend_sources_dl`.

A port of the behavioural tests of photutils 3.0's
``photutils/segmentation/tests/test_deblend.py``: the same data, and the
same assertions where they make sense for a network. Each test names the
photutils test it ports. The keywords that have no meaning for the
networks (``mode``, ``n_levels``, ``contrast``, ``connectivity``,
``n_processes``) are accepted and checked as photutils checks them; their
tests are ported with the warning a value other than photutils' default
gives (tests/test_dropin.py has more). Tests of photutils' private
classes are not ported; docs/deblending.rst lists them with the reasons.
"""

import warnings

import numpy as np
import pytest
from astropy.modeling.models import Gaussian2D
from astropy.nddata import NDData
from numpy.testing import assert_allclose, assert_equal
from photutils.segmentation import SegmentationImage, detect_sources

from astrodl_plugins.deblending import deblend_sources_dl
from astrodl_plugins.exceptions import AstrodlUserWarning

THRESHOLD = 10
N_PIXELS = 5


@pytest.fixture(scope='module')
def pair():
    """photutils' ``setup``: two equal Gaussians, and a third, fainter."""
    y, x = np.mgrid[0:100, 0:100]
    data = (Gaussian2D(100, 50, 50, 5, 5)(x, y)
            + Gaussian2D(100, 35, 50, 5, 5)(x, y))
    data3 = data + Gaussian2D(30, 70, 50, 5, 5)(x, y)
    return {'x': x, 'y': y, 'data': data, 'data3': data3,
            'segm': detect_sources(data, THRESHOLD, N_PIXELS),
            'segm3': detect_sources(data3, THRESHOLD, N_PIXELS)}


def _assert_children_of(result, segm):
    """Children tile their parents, labelled 1..N, with photutils' maps."""
    assert_allclose(np.nonzero(segm), np.nonzero(result))
    assert_equal(result.labels, np.arange(1, result.n_labels + 1))
    assert result.n_labels == len(result.slices)
    for child in result.labels:
        under = np.unique(segm.data[result.data == child])
        assert under.size == 1
        parent = result.deblended_label_to_parent.get(child)
        assert parent is None or parent == under[0]


class TestDeblendSourcesDL:
    @pytest.mark.parametrize('dtype', [np.int32, np.int64, np.uint16])
    def test_deblend_sources(self, pair, dtype):
        """
        photutils' ``test_deblend_sources`` (without ``mode``, which has
        no meaning here, or its ``n_processes`` part): a symmetric pair
        splits into two children of equal areas and fluxes. Also: the
        label type of the input is kept, and no input is modified.
        """
        data = pair['data'].copy()
        segm = SegmentationImage(pair['segm'].data.astype(dtype))
        result = deblend_sources_dl(data, segm, N_PIXELS)
        assert result.data.dtype == segm.data.dtype
        assert result.n_labels == 2
        assert result.n_labels == len(result.slices)
        mask1 = (result.data == 1)
        mask2 = (result.data == 2)
        assert_allclose(len(result.data[mask1]), len(result.data[mask2]))
        assert_allclose(np.sum(data[mask1]), np.sum(data[mask2]))
        assert_allclose(np.nonzero(segm), np.nonzero(result))
        assert_equal(result.parent_to_deblended_labels, {1: [1, 2]})
        assert_equal(data, pair['data'])
        assert_equal(segm.data, pair['segm'].data)

    def test_deblend_multiple_sources(self, pair):
        """
        photutils' ``test_deblend_multiple_sources``: three equal pairs,
        six children of equal areas.
        """
        x, y = pair['x'], pair['y']
        data = (pair['data'] + Gaussian2D(100, 50, 15, 5, 5)(x, y)
                + Gaussian2D(100, 35, 15, 5, 5)(x, y)
                + Gaussian2D(100, 50, 85, 5, 5)(x, y)
                + Gaussian2D(100, 35, 85, 5, 5)(x, y))
        segm = detect_sources(data, THRESHOLD, N_PIXELS)
        result = deblend_sources_dl(data, segm, N_PIXELS)
        assert result.n_labels == 6
        assert result.n_labels == len(result.slices)
        assert result.areas[0] == result.areas[1]
        assert result.areas[0] == result.areas[2]
        assert result.areas[0] == result.areas[3]
        assert result.areas[0] == result.areas[4]
        assert result.areas[0] == result.areas[5]

    @pytest.mark.xfail(
        strict=True,
        reason='the sigma = 20 x 5 pixel Gaussian (r_eff about 24 pixels, '
               'axis ratio 0.25) is far outside the sources the networks '
               'were trained on (r_eff <= 6 pixels, axis ratio >= 0.3): no '
               'centre is found in it and it stays merged with its '
               'round neighbour (2 children, not 3)')
    def test_deblend_multiple_sources_with_neighbor(self, pair):
        """
        photutils' ``test_deblend_multiple_sources_with_neighbor``. The
        child that holds the elongated source is flagged ``UNFAMILIAR``
        (test_familiarity).
        """
        x, y = pair['x'], pair['y']
        data = (Gaussian2D(100, 50, 50, 20, 5, theta=45)
                + Gaussian2D(100, 35, 50, 5, 5)
                + Gaussian2D(100, 60, 20, 5, 5))(x, y)
        segm = detect_sources(data, THRESHOLD, N_PIXELS)
        result = deblend_sources_dl(data, segm, N_PIXELS)
        assert result.n_labels == 3

    def test_deblend_labels(self, pair):
        """
        photutils' ``test_deblend_labels``: ``labels=1`` deblends the
        isolated source only (nothing to split); the blend is copied.
        """
        x, y = pair['x'], pair['y']
        data = (Gaussian2D(100, 50, 50, 20, 5, theta=45)
                + Gaussian2D(100, 35, 50, 5, 5)
                + Gaussian2D(100, 60, 20, 5, 5))(x, y)
        segm = detect_sources(data, THRESHOLD, N_PIXELS)
        result = deblend_sources_dl(data, segm, N_PIXELS, labels=1)
        assert result.n_labels == 2
        _assert_children_of(result, segm)

    def test_deblend_label_assignment(self):
        """
        photutils' ``test_deblend_label_assignment``: two parents, each of
        four Gaussians, get unique children labels. photutils' count (4)
        comes from ``contrast=0.3``, which has no meaning here; instead,
        both parents are split, and the same way (they are the same
        blend, 100 pixels apart).
        """
        y, x = np.mgrid[0:201, 0:101]
        y0a = 35
        y1a = 60
        yshift = 100
        y0b = y0a + yshift
        y1b = y1a + yshift
        data = (Gaussian2D(80, 36, y0a, 8, 8)(x, y)
                + Gaussian2D(71, 58, y1a, 8, 8)(x, y)
                + Gaussian2D(30, 36, y1a, 7, 7)(x, y)
                + Gaussian2D(30, 58, y0a, 7, 7)(x, y)
                + Gaussian2D(80, 36, y0b, 8, 8)(x, y)
                + Gaussian2D(71, 58, y1b, 8, 8)(x, y)
                + Gaussian2D(30, 36, y1b, 7, 7)(x, y)
                + Gaussian2D(30, 58, y0b, 7, 7)(x, y))
        segm1 = detect_sources(data, 5.0, N_PIXELS)
        assert segm1.n_labels == 2
        segm2 = deblend_sources_dl(data, segm1, N_PIXELS)
        _assert_children_of(segm2, segm1)
        children = segm2.parent_to_deblended_labels
        assert set(children) == {1, 2}
        assert len(children[1]) == len(children[2]) >= 2
        assert not set(children[1]) & set(children[2])

    def test_deblend_three_sources(self, pair):
        """
        photutils' ``test_deblend_three_sources`` (without ``mode``): three
        children, the parent's footprint kept.
        """
        result = deblend_sources_dl(pair['data3'], pair['segm3'], N_PIXELS)
        assert result.n_labels == 3
        assert_allclose(np.nonzero(pair['segm3']), np.nonzero(result))

    def test_segmentation_image(self, pair):
        """
        photutils' ``test_segmentation_image``. A segmentation of another
        shape is refused; an integer array is accepted (photutils wants a
        `~photutils.segmentation.SegmentationImage`) and gives the same
        children.
        """
        segm_wrong = SegmentationImage(np.ones((2, 2), dtype=int))
        match = 'segmentation_image has shape'
        with pytest.raises(ValueError, match=match):
            deblend_sources_dl(pair['data'], segm_wrong, N_PIXELS)
        from_array = deblend_sources_dl(pair['data'], pair['segm'].data,
                                        N_PIXELS)
        result = deblend_sources_dl(pair['data'], pair['segm'], N_PIXELS)
        assert_equal(from_array.data, result.data)

    def test_deblend_sources_norelabel(self, pair):
        """
        photutils' ``test_deblend_sources_norelabel`` (without ``mode``):
        the children are numbered after the input's largest label.
        """
        result = deblend_sources_dl(pair['data'], pair['segm'], N_PIXELS,
                                    relabel=False, progress_bar=False)
        assert result.n_labels == 2
        assert_equal(result.labels, [2, 3])
        assert_equal(result.parent_to_deblended_labels, {1: [2, 3]})
        assert len(result.slices) <= result.max_label
        assert len(result.slices) == result.n_labels
        assert_allclose(np.nonzero(pair['segm']), np.nonzero(result))

    def test_deblend_contrast_levels(self):
        """
        photutils' ``test_deblend_contrast_levels``: every contrast in
        [0.1, 1] gives at least one source (``contrast=1`` none split);
        ``mode`` and ``contrast`` other than photutils' defaults warn that
        they have no effect.
        """
        y, x = np.mgrid[0:51, 0:151]
        y0 = 25
        data = (Gaussian2D(9.5, 16, y0, 5, 5)(x, y)
                + Gaussian2D(51, 30, y0, 3, 3)(x, y)
                + Gaussian2D(30, 42, y0, 5, 5)(x, y)
                + Gaussian2D(80, 66, y0, 8, 8)(x, y)
                + Gaussian2D(71, 88, y0, 8, 8)(x, y)
                + Gaussian2D(18, 119, y0, 7, 7)(x, y))
        segm = detect_sources(data, 1.0, N_PIXELS)
        for contrast in np.arange(1, 11) / 10.0:
            with pytest.warns(AstrodlUserWarning, match='no effect'):
                segm3 = deblend_sources_dl(data, segm, N_PIXELS,
                                           mode='linear', n_levels=32,
                                           contrast=contrast,
                                           progress_bar=False)
            assert segm3.n_labels >= 1
        assert_equal(segm3.data, segm.data)

    @pytest.mark.parametrize(('keyword', 'match'), [
        ({'n_levels': 0}, 'n_levels must be'),
        ({'contrast': -1}, 'contrast must be >= 0 and <= 1'),
        ({'mode': 'invalid'},
         "mode must be 'exponential', 'linear', or 'sinh'"),
        ({'connectivity': 'invalid'}, 'Invalid connectivity')])
    def test_invalid_keywords(self, pair, keyword, match):
        """
        photutils' ``test_invalid_n_levels``, ``test_invalid_contrast``,
        ``test_invalid_mode`` and ``test_invalid_connectivity``: the same
        `ValueError`.
        """
        with pytest.raises(ValueError, match=match):
            deblend_sources_dl(pair['data'], pair['segm'], N_PIXELS,
                               progress_bar=False, **keyword)

    def test_constant_source(self, pair):
        """
        photutils' ``test_constant_source``: a segment of constant data
        is not split.
        """
        data = pair['data'].copy()
        data[data.nonzero()] = 1.0
        result = deblend_sources_dl(data, pair['segm'], N_PIXELS)
        assert_allclose(result, pair['segm'])

    def test_deblend_connectivity(self):
        """
        photutils' ``test_deblend_connectivity``, its connectivity-4 half
        (``connectivity`` itself has no meaning here): the 9 segments of a
        connectivity-4 detection are kept, the 21 x 21 square of constant
        data among them.
        """
        data = np.zeros((51, 51))
        data[15:36, 15:36] = 10.0
        data[14, 36] = 1.0
        data[13, 37] = 10
        data[14, 14] = 5.0
        data[13, 13] = 10.0
        data[36, 14] = 10.0
        data[37, 13] = 10.0
        data[36, 36] = 10.0
        data[37, 37] = 10.0
        segm = detect_sources(data, 0.1, 1, connectivity=4)
        assert segm.n_labels == 9
        segm2 = deblend_sources_dl(data, segm, 1)
        assert segm2.n_labels == 9
        _assert_children_of(segm2, segm)

    @pytest.mark.parametrize('name', ['negval', 'zero_min'])
    def test_source_with_nonpositive_values(self, pair, name):
        """
        photutils' ``test_source_with_negval`` and
        ``test_source_zero_min``. photutils warns that it changed its
        ``mode``; the networks have no mode to change, so there is no
        warning, and the pair still splits into equal halves.
        """
        data = pair['data'].copy()
        if name == 'negval':
            data -= 20
        else:
            data -= data[pair['segm'].data > 0].min()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            result = deblend_sources_dl(data, pair['segm'], N_PIXELS)
        assert not caught
        assert result.n_labels == 2
        assert result.areas[0] == result.areas[1]
        assert_allclose(np.nonzero(pair['segm']), np.nonzero(result))

    def test_connectivity(self):
        """
        photutils' ``test_connectivity`` (its first part; the second
        checks photutils' error for a connectivity that differs from the
        detection's, which cannot happen here): three pixels joined by
        their corners stay one source.
        """
        data = np.zeros((3, 3))
        data[0, 0] = 2
        data[1, 1] = 2
        data[2, 2] = 1
        segm = np.zeros(data.shape, dtype=int)
        segm[data.nonzero()] = 1
        segm = SegmentationImage(segm)
        data = data * 100.0
        segm_deblend = deblend_sources_dl(data, segm, n_pixels=1)
        assert segm_deblend.n_labels == 1

    def test_data_nan(self, pair):
        """
        photutils' ``test_data_nan``: deblending occurs even if the data
        within a segment contain a NaN. Also: the NaN pixel stays in the
        footprint, the data are not modified, and a NaN is treated as a
        masked pixel.
        """
        data = pair['data'].copy()
        data[50, 50] = np.nan
        segm2 = deblend_sources_dl(data, pair['segm'], 5)
        assert segm2.n_labels == 2
        assert segm2.data[50, 50] > 0
        assert_allclose(np.nonzero(pair['segm']), np.nonzero(segm2))
        assert np.isnan(data[50, 50])
        assert np.sum(np.isnan(data)) == 1
        mask = np.zeros(data.shape, bool)
        mask[50, 50] = True
        masked = deblend_sources_dl(NDData(pair['data'], mask=mask),
                                    pair['segm'], 5)
        assert_equal(masked.data, segm2.data)

    @pytest.mark.parametrize('label', [512, 1000])
    def test_nonconsecutive_labels(self, pair, label):
        """
        photutils' ``test_watershed`` (label 512) and
        ``test_nonconsecutive_labels`` (label 1000): the children are
        labelled from 1, their parent keeps its own label in the map.
        """
        segm = pair['segm'].copy()
        segm.reassign_label(1, label)
        result = deblend_sources_dl(pair['data'], segm, N_PIXELS)
        assert result.n_labels == 2
        assert_equal(result.parent_to_deblended_labels, {label: [1, 2]})
        assert_equal(result.deblended_label_to_parent, {1: label, 2: label})
        assert result.areas[0] == result.areas[1]

    def test_nondetection(self, pair):
        """
        photutils' ``test_nondetection``: bright single pixels on two of
        the peaks raise no warning (photutils: no `NoDetectionsWarning`),
        and add no source.
        """
        data = np.copy(pair['data3'])
        data[50, 50] = 1000.0
        data[50, 70] = 500.0
        segm = detect_sources(data, THRESHOLD, N_PIXELS)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            result = deblend_sources_dl(data, segm, N_PIXELS)
        assert not caught
        assert result.n_labels == 3

    def test_deblend_progress_bar(self, pair):
        """
        photutils' ``test_deblend_progress_bar``: the same children with a
        progress bar.
        """
        result = deblend_sources_dl(pair['data'], pair['segm'], N_PIXELS,
                                    progress_bar=True)
        assert result.n_labels == 2
        assert_equal(result.data, deblend_sources_dl(
            pair['data'], pair['segm'], N_PIXELS, progress_bar=False).data)

    def test_deblend_nproc_none(self, pair):
        """
        photutils' ``test_deblend_nproc_none``: ``n_processes=None`` is
        accepted (with a warning that it has no effect here).
        """
        with pytest.warns(AstrodlUserWarning, match='n_processes=None'):
            result = deblend_sources_dl(pair['data'], pair['segm'],
                                        N_PIXELS, progress_bar=False,
                                        n_processes=None)
        assert result.n_labels == 2

