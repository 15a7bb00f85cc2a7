# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""fit_network: the shared fit loop (batches, early stopping, prepare)."""

import keras
import numpy as np
import pytest

from astrodl_plugins.training.fit import fit_network, plot_history


def linear_model(n_in=1, zeros=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((n_in,), name='x')
    init = 'zeros' if zeros else 'glorot_uniform'
    out = keras.layers.Dense(1, kernel_initializer=init, name='out')(inputs)
    return keras.Model(inputs, out)


def line(n, seed=0, slope=2.0, intercept=1.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return [x], (slope * x + intercept).astype(np.float32)


def mse(model, data):
    inputs, targets = data
    predicted = keras.ops.convert_to_numpy(model(inputs[0]))
    return float(np.mean((predicted - targets) ** 2))


class TestFitNetwork:
    def test_loss_decreases(self):
        model = linear_model()
        history = fit_network(model, line(128), line(32, seed=1), loss='mse',
                              epochs=6, batch_size=16, learning_rate=0.05,
                              patience=6, verbose=0)
        assert set(history) == {'loss', 'val_loss'}
        assert len(history['loss']) == 6
        assert all(isinstance(v, float) for v in history['loss'])
        assert history['loss'][-1] < 0.5 * history['loss'][0]
        assert history['val_loss'][-1] < history['val_loss'][0]

    def test_early_stopping_keeps_best_weights(self):
        # The validation targets go the other way: the validation loss is
        # best after the first epoch and grows as the model learns.
        model = linear_model(zeros=True)
        validation = line(32, seed=1, slope=-2.0, intercept=-1.0)
        history = fit_network(model, line(128), validation, loss='mse',
                              epochs=30, batch_size=16, learning_rate=0.05,
                              patience=2, verbose=0)
        val = history['val_loss']
        assert len(val) < 30
        assert int(np.argmin(val)) == len(val) - 3
        assert mse(model, validation) == pytest.approx(min(val), rel=1e-4)

    def test_prepare_used(self):
        calls = {'train': [], 'validation': []}

        def prepare(inputs, targets, rng):
            assert isinstance(rng, np.random.Generator)
            assert isinstance(inputs, list) and len(inputs) == 1
            calls['train'].append(len(targets))
            # Train on a constant target: the model learns it.
            return inputs, np.full_like(targets, 3.0)

        def prepare_validation(inputs, targets, rng):
            calls['validation'].append(len(targets))
            return inputs, np.full_like(targets, 3.0)

        model = linear_model()
        history = fit_network(model, line(64), line(16, seed=1), loss='mse',
                              epochs=8, batch_size=16, learning_rate=0.5,
                              patience=8, prepare=prepare,
                              prepare_validation=prepare_validation,
                              verbose=0)
        # 4 batches per epoch (Keras may peek at the first one).
        assert len(calls['train']) >= 8 * 4
        assert set(calls['train']) == {16}
        assert len(calls['validation']) >= 8
        assert history['val_loss'][-1] < 0.2
        predicted = keras.ops.convert_to_numpy(model(line(5, seed=7)[0][0]))
        np.testing.assert_allclose(predicted, 3.0, atol=0.5)

    def test_last_batch_smaller(self):
        sizes = []

        def prepare(inputs, targets, rng):
            sizes.append(len(targets))
            return inputs, targets

        fit_network(linear_model(), line(40), line(8, seed=1), loss='mse',
                    epochs=1, batch_size=16, prepare=prepare, verbose=0)
        assert sorted(set(sizes)) == [8, 16]

    def test_two_inputs(self):
        keras.utils.set_random_seed(0)
        a = keras.Input((1,), name='a')
        b = keras.Input((1,), name='b')
        out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
        model = keras.Model([a, b], out)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 2)).astype(np.float32)
        data = ([x[:, :1], x[:, 1:]], (x[:, :1] - x[:, 1:]))
        history = fit_network(model, data, data, loss='mse', epochs=3,
                              batch_size=16, learning_rate=0.05, verbose=0)
        assert history['loss'][-1] < history['loss'][0]

    def test_seeded(self):
        histories = []
        for _ in range(2):
            model = linear_model()
            histories.append(fit_network(
                model, line(64), line(16, seed=1), loss='mse', epochs=2,
                batch_size=16, learning_rate=0.05, seed=4, verbose=0))
        np.testing.assert_allclose(histories[0]['loss'], histories[1]['loss'],
                                   rtol=1e-6)

    def test_frozen_layers_unchanged(self):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((1,))
        hidden = keras.layers.Dense(4, name='hidden')(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1, name='out')(hidden))
        model.get_layer('hidden').trainable = False
        frozen = [w.copy() for w in model.get_layer('hidden').get_weights()]
        free = [w.copy() for w in model.get_layer('out').get_weights()]
        fit_network(model, line(32), line(8, seed=1), loss='mse', epochs=1,
                    batch_size=16, verbose=0)
        for old, new in zip(frozen, model.get_layer('hidden').get_weights()):
            np.testing.assert_array_equal(old, new)
        assert not np.array_equal(free[0],
                                  model.get_layer('out').get_weights()[0])


class TestPlotHistory:
    def test_png(self, tmp_path):
        history = {'loss': [3.0, 2.0, 1.5], 'val_loss': [3.5, 2.5, 2.0],
                   'stage1_epochs': 2}
        path = tmp_path / 'history.png'
        plot_history(history, path, title='tiny')
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    def test_without_validation(self, tmp_path):
        plot_history({'loss': [1.0, 0.5]}, tmp_path / 'h.png')
        assert (tmp_path / 'h.png').exists()

    def test_leaves_the_callers_matplotlib_alone(self, tmp_path):
        # Library code draws on a Figure: no pyplot figure left open, and
        # the caller's backend is not switched.
        import matplotlib
        from matplotlib import pyplot as plt

        backend = matplotlib.get_backend()
        open_figures = plt.get_fignums()
        plot_history({'loss': [1.0, 0.5], 'val_loss': [1.2, 0.7]},
                     tmp_path / 'h.png')
        assert matplotlib.get_backend() == backend
        assert plt.get_fignums() == open_figures == []
