# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""TrainableMixin.fit with the tiny estimators of the core tests."""

import keras
import numpy as np
import pytest

from astrodl_plugins.core.tests.tiny import (
    TinySeries,
    TinySeriesPair,
    TinyStamp,
    blob_stamps,
    level_series,
)
from astrodl_plugins.exceptions import NotFittedError
from astrodl_plugins.training import fit as fit_module
from astrodl_plugins.training.mixin import TrainableMixin, TrainingTask


class RecordingSeries(TinySeries):
    """TinySeries that keeps what ``_training_tasks`` received."""

    def _training_tasks(self, train, validation, *, new, augment, seed):
        self.received = dict(train=train, validation=validation, new=new,
                             augment=augment, seed=seed)
        return super()._training_tasks(train, validation, new=new,
                                       augment=augment, seed=seed)


class RecordingStamp(TinyStamp):
    def _training_tasks(self, train, validation, *, new, augment, seed):
        self.received = dict(train=train, validation=validation)
        return super()._training_tasks(train, validation, new=new,
                                       augment=augment, seed=seed)


@pytest.fixture
def fake_fit(monkeypatch):
    """Replace the fit loop: record its keywords, train nothing."""
    calls = []

    def fit_network(model, train, validation, **kwargs):
        calls.append(dict(model=model, train=train, validation=validation,
                          **kwargs))
        return {'loss': [1.0], 'val_loss': [1.0]}

    monkeypatch.setattr(fit_module, 'fit_network', fit_network)
    return calls


@pytest.fixture
def spy_fit(monkeypatch):
    """Record the fit loop's keywords, and run it."""
    calls = []
    real = fit_module.fit_network

    def fit_network(model, train, validation, **kwargs):
        calls.append(dict(model=model, **kwargs))
        return real(model, train, validation, **kwargs)

    monkeypatch.setattr(fit_module, 'fit_network', fit_network)
    return calls


def indexed_series(n, length=24):
    """Series whose values are their row number (to trace the split)."""
    values = np.repeat(np.arange(n, dtype=np.float32)[:, None], length,
                       axis=1)
    _, labels = level_series(n)
    return values, labels


class TestValidationSplit:
    @pytest.mark.parametrize('n, fraction, n_val', [
        (50, 0.1, 5), (50, 0.0, 1), (10, 0.25, 2), (7, 0.5, 4), (3, 0.1, 1),
    ])
    def test_sizes(self, fake_fit, n, fraction, n_val):
        estimator = RecordingSeries()
        estimator.fit(*indexed_series(n), validation_fraction=fraction)
        assert len(estimator.received['validation'][0]) == n_val
        assert len(estimator.received['train'][0]) == n - n_val
        task = fake_fit[0]
        assert len(task['validation'][1]) == n_val

    def test_rows(self, fake_fit):
        n, seed = 40, 7
        estimator = RecordingSeries()
        estimator.fit(*indexed_series(n), validation_fraction=0.2, seed=seed)
        order = np.random.default_rng(seed).permutation(n)
        validation = estimator.received['validation'][0][:, 0]
        train = estimator.received['train'][0][:, 0]
        np.testing.assert_array_equal(validation, order[:8])
        np.testing.assert_array_equal(train, order[8:])
        # Labels follow their rows.
        _, labels = indexed_series(n)
        np.testing.assert_array_equal(estimator.received['validation'][1],
                                      labels['level'][order[:8]])

    def test_validation_data_given(self, fake_fit):
        estimator = RecordingSeries()
        values, labels = indexed_series(30)
        estimator.fit(values, labels,
                      validation_data=indexed_series(6))
        assert len(estimator.received['train'][0]) == 30
        np.testing.assert_array_equal(
            estimator.received['validation'][0][:, 0], np.arange(6))


class TestSharedKeywords:
    def stamps(self, n, seed=0):
        stamps, truth = blob_stamps(n, seed=seed)
        truth.remove_column('psf_fwhm')
        return stamps, truth

    def test_scalar_keyword_reaches_validation(self, fake_fit):
        estimator = RecordingStamp()
        estimator.fit(*self.stamps(20), psf_fwhm=2.5,
                      validation_data=self.stamps(5, seed=1))
        np.testing.assert_array_equal(estimator.received['train'][2], 2.5)
        np.testing.assert_array_equal(estimator.received['validation'][2],
                                      2.5)

    def test_per_example_keyword_does_not(self, fake_fit):
        estimator = RecordingStamp()
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimator.fit(*self.stamps(20), psf_fwhm=np.full(20, 2.5),
                          validation_data=self.stamps(5, seed=1))

    def test_positional_validation_value_wins(self, fake_fit):
        estimator = RecordingStamp()
        estimator.fit(*self.stamps(20), psf_fwhm=2.5,
                      validation_data=(*self.stamps(5, seed=1), 4.0))
        np.testing.assert_array_equal(estimator.received['validation'][2],
                                      4.0)

    def test_split_keeps_per_example_keyword(self, fake_fit):
        estimator = RecordingStamp()
        psf = np.linspace(2.0, 4.0, 20)
        estimator.fit(*self.stamps(20), psf_fwhm=psf,
                      validation_fraction=0.25, seed=3)
        order = np.random.default_rng(3).permutation(20)
        np.testing.assert_array_equal(estimator.received['validation'][2],
                                      psf[order[:5]])


class TestFreeze:
    def test_refused_by_default(self, fake_fit):
        with pytest.raises(ValueError, match="TinySeries does not support "
                                             "freeze; got 'dense'"):
            TinySeries().fit(*indexed_series(20), freeze='dense')
        assert fake_fit == []

    def test_refused_when_fine_tuning(self, fake_fit):
        estimator = TinySeries().fit(*indexed_series(20))
        model = estimator.model_
        weights = [w.copy() for w in model.get_weights()]
        with pytest.raises(ValueError, match='does not support freeze'):
            estimator.fit(*indexed_series(20), freeze=1)
        assert estimator.model_ is model
        for old, new in zip(weights, model.get_weights()):
            np.testing.assert_array_equal(old, new)

    def test_refused_fit_leaves_estimator_unfitted(self, fake_fit):
        estimator = TinySeries()
        with pytest.raises(ValueError, match='does not support freeze'):
            estimator.fit(*indexed_series(20), freeze='dense')
        with pytest.raises(NotFittedError):
            estimator.predict(np.ones((2, 24)))

    def test_trainable_restored(self, fake_fit):
        class Freezing(TinySeries):
            def _freeze(self, network, freeze):
                if freeze:
                    network.get_layer('dense0').trainable = False
                    self.frozen = [layer.name for layer in network.layers
                                   if not layer.trainable]

        estimator = Freezing()
        estimator.fit(*indexed_series(20), freeze=True)
        assert estimator.frozen == ['dense0']
        assert all(layer.trainable for layer in estimator.model_.layers)


class TestFit:
    def test_returns_self_and_history(self):
        estimator = TinySeries()
        data = level_series(64)
        assert estimator.fit(*data, epochs=1) is estimator
        assert set(estimator.history_) == {'loss', 'val_loss'}
        assert len(estimator.history_['loss']) == 1
        table = estimator.predict(data[0][:4], n_samples=3, seed=0)
        assert np.isfinite(table['level']).all()

    def test_history_per_network(self):
        estimator = TinySeriesPair()
        estimator.fit(*level_series(64), epochs=1)
        assert set(estimator.history_) == {'model', 'other'}
        for history in estimator.history_.values():
            assert set(history) == {'loss', 'val_loss'}
            assert len(history['loss']) == 1
        assert estimator.model_.name == 'tiny_series'
        assert estimator.other_.name == 'tiny_spread'
        assert 'spread' in estimator.predict(np.ones((2, 24)), n_samples=2,
                                             seed=0).colnames

    def test_learns(self):
        estimator = TinySeries()
        train = level_series(256, seed=0)
        estimator.fit(*train, epochs=6, patience=6)
        history = estimator.history_
        assert history['val_loss'][-1] < history['val_loss'][0]
        values, labels = level_series(64, seed=5)
        table = estimator.predict(values, n_samples=0, seed=0)
        error = np.abs(table['level'].value - labels['level'])
        assert np.median(error) < 0.5

    def test_same_seed_same_weights(self):
        weights = []
        for _ in range(2):
            estimator = TinySeries().fit(*level_series(48), epochs=1, seed=4)
            weights.append(estimator.model_.get_weights())
        for first, second in zip(*weights):
            np.testing.assert_allclose(first, second, rtol=1e-6)

    def test_fine_tuning(self, spy_fit):
        estimator = TinySeries().fit(*level_series(48), epochs=1)
        model = estimator.model_
        engine = estimator.mc_engine()
        before = [w.copy() for w in model.get_weights()]
        estimator.model_sha256_ = 'loaded'
        estimator.fit(*level_series(48, seed=1), epochs=1)
        # The loaded network is trained further, not rebuilt.
        assert estimator.model_ is model
        assert any(not np.array_equal(old, new)
                   for old, new in zip(before, model.get_weights()))
        assert [call['learning_rate'] for call in spy_fit] == \
            pytest.approx([1e-2, 1e-3])
        assert all(call['model'] is model for call in spy_fit)
        # The fitted network no longer matches a preset; engines are new.
        assert estimator.model_sha256_ is None
        assert estimator.mc_engine() is not engine

    def test_keywords_override_task(self, fake_fit):
        estimator = RecordingSeries()
        estimator.fit(*indexed_series(20))
        estimator.fit(*indexed_series(20), epochs=7, batch_size=3,
                      patience=1, learning_rate=0.5, seed=9, verbose=1,
                      augment=False)
        first, second = fake_fit
        assert (first['epochs'], first['batch_size'], first['patience'],
                first['learning_rate'], first['seed'], first['verbose']) == \
            (2, 16, 2, 1e-2, 0, 0)
        assert (second['epochs'], second['batch_size'], second['patience'],
                second['learning_rate'], second['seed'],
                second['verbose']) == (7, 3, 1, 0.5, 9, 1)
        assert estimator.received['new'] is False
        assert estimator.received['augment'] is False
        assert estimator.received['seed'] == 9

    def test_new_flag(self, fake_fit):
        estimator = RecordingSeries()
        estimator.fit(*indexed_series(20))
        assert estimator.received['new'] is True
        assert estimator.received['augment'] is True

    def test_stamp_estimator(self):
        estimator = TinyStamp()
        stamps, truth = blob_stamps(64)
        estimator.fit(stamps, truth, epochs=1)
        assert set(estimator.history_) == {'loss', 'val_loss'}
        table = estimator.predict_stamps(stamps[:3], psf_fwhm=3.0,
                                         n_samples=2, seed=0)
        assert np.isfinite(table['flux']).all()


class TestHooks:
    def test_required(self):
        class Bare(TrainableMixin):
            networks = ('model',)

        with pytest.raises(NotImplementedError, match='Bare must implement '
                                                      '_training_data'):
            Bare().fit(np.ones(3), np.ones(3))

    def test_training_task_defaults(self):
        task = TrainingTask('model', keras.Sequential, ([], None),
                            ([], None), loss='mse')
        assert (task.epochs, task.batch_size, task.patience,
                task.learning_rate) == (20, 256, 5, 1e-3)
        assert task.prepare is None and task.prepare_validation is None
