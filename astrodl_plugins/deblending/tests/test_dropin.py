# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
`deblend_sources_dl` as a drop-in for photutils' `deblend_sources`: its
keywords and defaults, the warnings of those that have no effect, and the
labels and parent map it fills.
"""

import inspect
import warnings

import numpy as np
import pytest
from astropy.modeling.models import Gaussian2D
from astropy.utils.exceptions import AstropyUserWarning
from numpy.testing import assert_equal
from photutils.segmentation import (
    SegmentationImage,
    deblend_sources,
    detect_sources,
)

from astrodl_plugins.deblending import deblend_sources_dl

N_PIXELS = 5


@pytest.fixture(scope='module')
def field():
    """A blend of two equal Gaussians (split) and an isolated one."""
    y, x = np.mgrid[0:100, 0:130]
    data = (Gaussian2D(100, 50, 50, 5, 5)(x, y)
            + Gaussian2D(100, 35, 50, 5, 5)(x, y)
            + Gaussian2D(100, 110, 20, 5, 5)(x, y))
    segm = detect_sources(data, 10, N_PIXELS)
    assert segm.n_labels == 2
    return data, segm


def _maps(segm):
    """A segmentation's labels and parent maps, as plain Python."""
    return {'labels': segm.labels.tolist(),
            'deblended_labels': segm.deblended_labels.tolist(),
            'to_parent': {int(k): int(v) for k, v in
                          segm.deblended_label_to_parent.items()},
            'to_children': {int(k): np.asarray(v).tolist() for k, v in
                            segm.parent_to_deblended_labels.items()}}


class TestKeywords:
    def test_every_photutils_keyword_with_its_default(self):
        ours = inspect.signature(deblend_sources_dl).parameters
        theirs = inspect.signature(deblend_sources).parameters
        for name, parameter in theirs.items():
            assert name in ours, name
            assert ours[name].kind == parameter.kind, name
            assert ours[name].default == parameter.default, name

    def test_defaults_do_not_warn(self, field):
        data, segm = field
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            deblend_sources_dl(data, segm, N_PIXELS, labels=None,
                               n_levels=32, contrast=0.001,
                               mode='exponential', connectivity=8,
                               relabel=True, n_processes=1,
                               progress_bar=False)
        assert not caught

    @pytest.mark.parametrize('keyword', [
        {'n_levels': 16}, {'contrast': 0.0}, {'contrast': 0.3},
        {'mode': 'linear'}, {'mode': 'sinh'}, {'connectivity': 4},
        {'n_processes': 4}, {'n_processes': None}])
    def test_ignored_keywords_warn(self, field, keyword):
        """A value other than photutils' default: a warning, same result."""
        data, segm = field
        (name,) = keyword
        with pytest.warns(AstropyUserWarning,
                          match=f'{name}=.* has no effect'):
            result = deblend_sources_dl(data, segm, N_PIXELS,
                                        progress_bar=False, **keyword)
        assert_equal(result.data, deblend_sources_dl(
            data, segm, N_PIXELS, progress_bar=False).data)

    def test_one_warning_per_keyword(self, field):
        data, segm = field
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            deblend_sources_dl(data, segm, N_PIXELS, n_levels=8,
                               mode='linear', progress_bar=False)
        messages = sorted(str(w.message).split('=')[0] for w in caught)
        assert messages == ['mode', 'n_levels']
        assert all(w.filename == __file__ for w in caught)

    @pytest.mark.parametrize(('keyword', 'match'), [
        ({'n_levels': 0}, 'n_levels'), ({'n_levels': 2.5}, 'n_levels'),
        ({'n_levels': True}, 'n_levels'), ({'contrast': 1.5}, 'contrast'),
        ({'contrast': -0.1}, 'contrast'), ({'contrast': 'x'}, 'contrast'),
        ({'mode': 'log'}, 'mode'), ({'mode': None}, 'mode'),
        ({'connectivity': 6}, 'connectivity'),
        ({'n_processes': 0}, 'n_processes'),
        ({'n_processes': 1.5}, 'n_processes')])
    def test_bad_values_rejected(self, field, keyword, match):
        data, segm = field
        with pytest.raises(ValueError, match=match):
            deblend_sources_dl(data, segm, N_PIXELS, progress_bar=False,
                               **keyword)

    def test_contrast_one_deblends_nothing(self, field):
        """As photutils: the input back, its labels not renumbered."""
        data, segm = field
        segm = segm.copy()
        segm.reassign_label(1, 7)
        result = deblend_sources_dl(data, segm, N_PIXELS, contrast=1,
                                    progress_bar=False)
        assert_equal(result.data, segm.data)
        assert_equal(result.data, deblend_sources(
            data, segm, N_PIXELS, contrast=1, progress_bar=False).data)
        assert result.parent_to_deblended_labels == {}


class TestLabels:
    @pytest.mark.parametrize('relabel', [True, False])
    def test_labels_and_parent_map_as_photutils(self, field, relabel):
        """
        The same children as photutils on this field, numbered the same
        way, with the same parent map.
        """
        data, segm = field
        ours = deblend_sources_dl(data, segm, N_PIXELS, relabel=relabel,
                                  progress_bar=False)
        theirs = deblend_sources(data, segm, N_PIXELS, relabel=relabel,
                                 progress_bar=False)
        assert _maps(ours) == _maps(theirs)
        assert_equal(ours.data > 0, theirs.data > 0)
        # The isolated source keeps its pixels and label.
        assert_equal(ours.data == 1, theirs.data == 1)
        if relabel:
            assert_equal(ours.labels, [1, 2, 3])
        else:
            assert_equal(ours.labels, [1, 3, 4])
        assert ours.deblended_label_to_parent == {
            label: 2 for label in ours.labels[1:].tolist()}

    @pytest.mark.parametrize('relabel', [True, False])
    def test_nonconsecutive_labels(self, field, relabel):
        """
        Input labels 9 (the blend) and 4: photutils' numbering, without
        ``relabel`` the children after the largest label (10, 11).
        """
        data, segm = field
        segm = SegmentationImage(np.where(
            segm.data == 1, 4, np.where(segm.data == 2, 9, 0)))
        ours = deblend_sources_dl(data, segm, N_PIXELS, relabel=relabel,
                                  progress_bar=False)
        theirs = deblend_sources(data, segm, N_PIXELS, relabel=relabel,
                                 progress_bar=False)
        assert _maps(ours) == _maps(theirs)
        expected = [1, 2, 3] if relabel else [4, 10, 11]
        assert_equal(ours.labels, expected)

    def test_labels_keyword_without_relabel(self, field):
        """Only the isolated source asked for: nothing split, labels kept."""
        data, segm = field
        result = deblend_sources_dl(data, segm, N_PIXELS, labels=1,
                                    relabel=False, progress_bar=False)
        assert_equal(result.data, segm.data)
        assert result.parent_to_deblended_labels == {}
