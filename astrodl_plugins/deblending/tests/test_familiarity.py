# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The deblender's out-of-distribution score (``ood_score``, ``UNFAMILIAR``)."""

import numpy as np
import pytest
from astropy.modeling.models import Gaussian2D
from astropy.nddata import NDData, StdDevUncertainty
from photutils.segmentation import detect_sources

import astrodl_plugins as adl
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.store import UnverifiedPresetWarning
from astrodl_plugins.deblending import Deblender
from astrodl_plugins.deblending.centres import cut_window
from astrodl_plugins.deblending.evaluate import detect
from astrodl_plugins.simulate import simulate_blend_field

KWARGS = {'n_samples': 2, 'seed': 0}


@pytest.fixture(scope='module')
def deblender():
    return adl.get_estimator('deblender')


@pytest.fixture(scope='module')
def field():
    """A small held-out blend field (seed 3) with its noise as uncertainty."""
    image, _, sigma = simulate_blend_field(seed=3, shape=(336, 336),
                                           n_processes=1)
    segm, _ = detect(image, sigma)
    data = NDData(image, uncertainty=StdDevUncertainty(
        np.full(image.shape, sigma)))
    return data, sigma, segm


@pytest.fixture(scope='module')
def table(deblender, field):
    data, _, segm = field
    return deblender.predict(data, segmentation_image=segm, **KWARGS)


def _unfamiliar(table):
    return (table['flag'] & SourceFlags.UNFAMILIAR) > 0


class TestShippedPreset:
    def test_has_a_familiarity_model(self, deblender):
        card = deblender.card_['familiarity']
        assert card['command'].startswith('astrodl familiarity deblender ')
        assert card['threshold'] == deblender.familiarity_.threshold
        assert 'UNFAMILIAR' in Deblender.flag_names

    def test_column_and_flag(self, table):
        assert table.colnames[-3:] == ['n_children', 'ood_score', 'flag']
        assert np.all(np.isfinite(table['ood_score']))
        np.testing.assert_array_equal(_unfamiliar(table),
                                      table['ood_score'] > 1)
        assert 'ood_score' in table.meta
        assert int(SourceFlags.UNFAMILIAR) in table.meta['flags']
        # Blends like the training simulations: few flagged.
        assert np.mean(_unfamiliar(table)) <= 0.1

    def test_score_is_that_of_the_child_stamp(self, deblender, field, table):
        """
        The score of a child is that of the extractor's features of the
        stamp centred on it (`Deblender.network_features`, which the
        familiarity model was fitted with).
        """
        data, sigma, _ = field
        size = deblender.stamp_size
        x, y = table['x_centroid'].value, table['y_centroid'].value
        x0 = np.floor(x + 0.5).astype(int) - size // 2
        y0 = np.floor(y + 0.5).astype(int) - size // 2
        stamps = np.stack([cut_window(data.data, b, a, size, np.nan)
                           for a, b in zip(x0, y0)])
        features = deblender.network_features(stamps, sigma, x - x0, y - y0)
        np.testing.assert_allclose(deblender.familiarity_.score(features),
                                   table['ood_score'], rtol=1e-4)

    def test_saved_preset_scores_the_same(self, deblender, field, table,
                                          tmp_path):
        # Saved here: intact, but not a shipped preset.
        with pytest.warns(UnverifiedPresetWarning, match='not a shipped'):
            loaded = Deblender.from_preset(
                deblender.save(tmp_path / 'preset'))
        data, _, segm = field
        again = loaded.predict(data, segmentation_image=segm, **KWARGS)
        np.testing.assert_allclose(again['ood_score'], table['ood_score'],
                                   rtol=1e-6)
        np.testing.assert_array_equal(again['flag'], table['flag'])

    def test_no_familiarity_no_column(self, field, table):
        plain = Deblender.from_preset('deblender')
        del plain.familiarity_
        data, _, segm = field
        bare = plain.predict(data, segmentation_image=segm, **KWARGS)
        assert 'ood_score' not in bare.colnames
        assert 'ood_score' not in bare.meta
        assert not _unfamiliar(bare).any()
        np.testing.assert_array_equal(bare['flux'], table['flux'])


class TestOutOfRange:
    def test_photutils_elongated_source_is_flagged(self, deblender):
        """
        photutils' ``test_deblend_multiple_sources_with_neighbor``: the
        deblender finds no centre in the sigma 20 x 5 pixel Gaussian and
        leaves it with its round neighbour (see test_photutils_deblend);
        the child that holds it is flagged.
        """
        y, x = np.mgrid[0:100, 0:100]
        data = (Gaussian2D(100, 50, 50, 20, 5, theta=45)
                + Gaussian2D(100, 35, 50, 5, 5)
                + Gaussian2D(100, 60, 20, 5, 5))(x, y)
        segm = detect_sources(data, 10, 5)
        result = deblender.deblend(data, segm, 5, **KWARGS)
        table = result.table
        holder = table['label'] == result.segmentation_image.data[50, 50]
        assert holder.sum() == 1
        assert np.all(_unfamiliar(table)[holder])
        assert np.all(table['ood_score'][holder] > 1)


class TestImageFamily:
    def test_sample_gives_the_score(self):
        """
        An image-to-image estimator that draws through ``_sample`` (here
        the core tests' tiny one) gets ``ood_score`` without code.
        """
        from astrodl_plugins.core.tests.tiny import (
            make_ccd,
            make_segmentation,
            make_tiny_segments,
        )

        estimator = make_tiny_segments()
        features = np.random.default_rng(0).normal(size=(50, 8))
        estimator.fit_familiarity(features, n_components=4)
        table = estimator.predict(make_ccd(),
                                  segmentation_image=make_segmentation(),
                                  **KWARGS)
        assert table.colnames[-2:] == ['ood_score', 'flag']
        assert np.all(np.isfinite(table['ood_score']))
        np.testing.assert_array_equal(_unfamiliar(table),
                                      table['ood_score'] > 1)
        assert int(SourceFlags.UNFAMILIAR) in table.meta['flags']
