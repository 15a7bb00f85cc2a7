# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The out-of-distribution score (Familiarity) and its place in predict."""

import json

import numpy as np
import pytest

from astrodl_plugins.core.familiarity import Familiarity
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    STAMP_KWARGS,
    blob_stamps,
    image_data,
    make_ccd,
    make_tiny_stamp,
)


def clusters(n, seed=0, shift=0.0, d=20):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.normal(size=(n, d)) + 5.0 * labels[:, None] + shift
    return features, labels


class TestFamiliarity:
    def test_calibrated_quantile(self):
        features, labels = clusters(4000)
        held_out, _ = clusters(4000, seed=1)
        model = Familiarity.fit(features, labels, held_out, n_components=8)
        assert np.mean(model.score(held_out) <= 1) == pytest.approx(0.99,
                                                                    abs=0.01)
        fresh, _ = clusters(4000, seed=2)
        assert np.mean(model.score(fresh) > 1) < 0.03

    def test_far_inputs_score_high(self):
        features, labels = clusters(2000)
        model = Familiarity.fit(features, labels)
        far, _ = clusters(100, seed=3, shift=8.0)
        assert np.all(model.score(far) > 1)

    def test_class_conditional(self):
        # Between the two class centres: unlike either class.
        features, labels = clusters(2000)
        model = Familiarity.fit(features, labels)
        between = np.full((10, 20), 2.5)
        assert np.all(model.score(between) > 1)

    def test_round_trip(self):
        features, labels = clusters(500)
        model = Familiarity.fit(features, labels, n_components=4)
        again = Familiarity.from_dict(json.loads(json.dumps(model.to_dict())))
        np.testing.assert_allclose(again.score(features),
                                   model.score(features), rtol=1e-12)

    def test_round_trip_features_in_a_subspace(self):
        # Features using few of their units (the residual is tiny): the
        # saved state scores like the fitted one.
        rng = np.random.default_rng(3)
        features = np.zeros((300, 64))
        features[:, :10] = rng.normal(size=(300, 10)) * 5 + 100
        features[:, 10:] = rng.normal(size=(300, 54)) * 1e-4
        model = Familiarity.fit(features, n_components=8)
        again = Familiarity.from_dict(json.loads(json.dumps(model.to_dict())))
        np.testing.assert_allclose(again.score(features),
                                   model.score(features), rtol=1e-9)

    def test_bad_features(self):
        with pytest.raises(ValueError, match=r'features must be \(n, d\)'):
            Familiarity.fit(np.zeros(5))


@pytest.fixture(scope='module')
def familiar():
    estimator = make_tiny_stamp(dense=8)
    stamps, _ = blob_stamps(400, seed=1)
    features, usable = estimator.network_features(stamps, psf_fwhm=3.0)
    held_out, _ = estimator.network_features(blob_stamps(200, seed=2)[0],
                                             psf_fwhm=3.0)
    assert usable.all()
    return estimator.fit_familiarity(features, held_out=held_out,
                                     n_components=4)


class TestInPredict:
    def test_column_flag_and_meta(self, familiar):
        table = familiar.predict(make_ccd(), positions=CENTERS,
                                 **STAMP_KWARGS)
        assert table.colnames[-3:] == ['rescale', 'ood_score', 'flag']
        assert np.all(np.isfinite(table['ood_score']))
        unfamiliar = (table['flag'] & SourceFlags.UNFAMILIAR) > 0
        np.testing.assert_array_equal(unfamiliar, table['ood_score'] > 1)
        assert 'ood_score' in table.meta
        assert 32 in table.meta['flags']

    def test_strange_stamp_is_flagged(self, familiar):
        data = image_data()
        data[20:40, 20:40] = 5000.0 * np.random.default_rng(0).random(
            (20, 20))
        table = familiar.predict(make_ccd(data=data), positions=CENTERS,
                                 **STAMP_KWARGS)
        assert table['ood_score'][0] > 1
        assert table['flag'][0] & SourceFlags.UNFAMILIAR

    def test_tta_scores_the_stamp_as_given(self, familiar):
        plain = familiar.predict(make_ccd(), positions=CENTERS,
                                 **STAMP_KWARGS)
        tta = familiar.predict(make_ccd(), positions=CENTERS, tta=True,
                               **STAMP_KWARGS)
        np.testing.assert_allclose(tta['ood_score'], plain['ood_score'],
                                   rtol=1e-5)

    def test_saved_with_the_estimator(self, familiar, tmp_path):
        loaded = type(familiar).from_preset(familiar.save(tmp_path / 'p'))
        a = familiar.predict(make_ccd(), positions=CENTERS, **STAMP_KWARGS)
        b = loaded.predict(make_ccd(), positions=CENTERS, **STAMP_KWARGS)
        np.testing.assert_allclose(a['ood_score'], b['ood_score'], rtol=1e-4)

    def test_no_familiarity_no_column(self):
        table = make_tiny_stamp(dense=8).predict(
            make_ccd(), positions=CENTERS, **STAMP_KWARGS)
        assert 'ood_score' not in table.colnames
