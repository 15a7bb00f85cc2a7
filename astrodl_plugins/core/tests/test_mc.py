# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of MC dropout: the MCDropout layer and the fast seeded engine."""

import keras
import numpy as np
import pytest

from astrodl_plugins.core.mc import MCDropout, MCDropoutEngine
from astrodl_plugins.core.store import load_keras_model

N_OBJECTS = 6
N_OUT = 3


def build_model(dropout=True, rate=0.5):
    """Tiny functional model: conv trunk, BN, MC head with a second input."""
    from keras import layers

    keras.utils.set_random_seed(1)
    image = keras.Input((8, 8, 1), name='image')
    aux = keras.Input((1,), name='aux')
    x = layers.Conv2D(4, 3, name='conv')(image)
    x = layers.BatchNormalization(name='bn')(x)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(16, activation='relu', name='dense0')(x)
    if dropout:
        x = MCDropout(rate, name='mc0')(x)
    x = layers.Concatenate(name='concat')([x, aux])
    x = layers.Dense(16, activation='relu', name='dense1')(x)
    if dropout:
        x = MCDropout(rate, name='mc1')(x)
    out = layers.Dense(N_OUT, name='out')(x)
    model = keras.Model([image, aux], out)
    # Non-trivial moving statistics, so that any update would show.
    bn = model.get_layer('bn')
    bn.moving_mean.assign(np.full(4, 0.3, np.float32))
    bn.moving_variance.assign(np.full(4, 2.0, np.float32))
    return model


def make_inputs(n=N_OBJECTS, seed=0):
    rng = np.random.default_rng(seed)
    # Offset and scale far from the moving statistics: a BN layer that ran
    # in training mode would both change its output and update its state.
    image = (5.0 + 3.0 * rng.standard_normal((n, 8, 8, 1))).astype(np.float32)
    aux = rng.uniform(0.5, 2.0, (n, 1)).astype(np.float32)
    return [image, aux]


def bn_state(model):
    return [(layer.moving_mean.numpy().copy(),
             layer.moving_variance.numpy().copy())
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def deterministic_call(model, inputs):
    """The model with dropout off and training=False."""
    layers = [layer for layer in model.layers if isinstance(layer, MCDropout)]
    for layer in layers:
        layer.mc_enabled = False
    try:
        return keras.ops.convert_to_numpy(model(inputs, training=False))
    finally:
        for layer in layers:
            layer.mc_enabled = True


@pytest.fixture(scope='module')
def model():
    return build_model()


@pytest.fixture(scope='module')
def engine(model):
    return MCDropoutEngine(model)


@pytest.fixture(scope='module')
def inputs():
    return make_inputs()


class TestMCDropout:
    def test_active_at_inference(self):
        layer = MCDropout(0.5, seed=3)
        x = np.ones((4, 100), np.float32)
        out = keras.ops.convert_to_numpy(layer(x, training=False))
        assert set(np.unique(out)) == {0.0, 2.0}

    def test_mc_enabled_off(self):
        layer = MCDropout(0.5, seed=3)
        layer.mc_enabled = False
        x = np.ones((4, 100), np.float32)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(layer(x)), x)

    def test_reseed_reproducible(self):
        layer = MCDropout(0.5)
        x = np.ones((2, 50), np.float32)
        layer.reseed(11)
        first = keras.ops.convert_to_numpy(layer(x))
        layer.reseed(11)
        second = keras.ops.convert_to_numpy(layer(x))
        layer.reseed(12)
        third = keras.ops.convert_to_numpy(layer(x))
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first, third)

    @pytest.mark.parametrize('rate', [-0.1, 1.0, 1.5])
    def test_rate_validation(self, rate):
        with pytest.raises(ValueError, match=r'rate must be in \[0, 1\)'):
            MCDropout(rate)

    def test_config_round_trip(self):
        layer = MCDropout(0.25, seed=5, name='drop')
        clone = MCDropout.from_config(layer.get_config())
        assert clone.rate == 0.25
        assert clone.seed == 5
        assert clone.name == 'drop'


class TestMCDropoutEngine:
    def test_splits(self, engine):
        assert engine.split is True
        assert len(engine.dropout_layers) == 2
        trunk, trunk_index = engine.trunk
        # Only the image feeds the deterministic part; aux joins the head.
        assert trunk_index == [0]
        assert engine.head_extra == [1]

    def test_shape(self, engine, inputs):
        draws = engine.sample(inputs, 7, seed=0)
        assert draws.shape == (N_OBJECTS, 7, N_OUT)
        assert np.isfinite(draws).all()

    def test_same_seed_identical(self, engine, inputs):
        first = engine.sample(inputs, 20, seed=42)
        second = engine.sample(inputs, 20, seed=42)
        np.testing.assert_array_equal(first, second)

    def test_different_seeds_differ(self, engine, inputs):
        first = engine.sample(inputs, 20, seed=1)
        second = engine.sample(inputs, 20, seed=2)
        assert not np.allclose(first, second)

    def test_masks_independent_across_draws(self, engine, inputs):
        draws = engine.sample(inputs, 20, seed=3)
        # Each object's T draws differ from one another.
        assert (np.ptp(draws, axis=1) > 0).all()
        for i in range(N_OBJECTS):
            n_unique = len(np.unique(draws[i].round(6), axis=0))
            assert n_unique >= 15
        # Different objects do not share one mask sequence: the dropped
        # pattern differs, so the draw-to-draw changes are not parallel.
        deviation = draws - draws.mean(axis=1, keepdims=True)
        corr = np.corrcoef(deviation[:, :, 0])
        off_diagonal = corr[~np.eye(N_OBJECTS, dtype=bool)]
        assert np.abs(off_diagonal).max() < 0.99

    def test_zero_samples_is_deterministic_pass(self, model, engine, inputs):
        draws = engine.sample(inputs, 0, seed=0)
        assert draws.shape == (N_OBJECTS, 1, N_OUT)
        expected = deterministic_call(model, inputs)
        np.testing.assert_allclose(draws[:, 0], expected, rtol=1e-5,
                                   atol=1e-6)
        # Dropout is back on afterwards.
        assert all(layer.mc_enabled for layer in engine.dropout_layers)
        again = engine.sample(inputs, 0, seed=99)
        np.testing.assert_array_equal(draws, again)

    def test_sampling_does_not_touch_batchnorm(self, model, inputs):
        # Key regression test: calling a Keras model with training=True to
        # get dropout samples would update (corrupt) BN's moving statistics.
        engine = MCDropoutEngine(model)
        before_original = bn_state(model)
        before_engine = bn_state(engine.model)
        assert before_engine
        for seed in range(3):
            engine.sample(inputs, 10, seed=seed, batch_size=2)
        engine.naive_sample(inputs, 3, seed=0)
        for before, after in [(before_original, bn_state(model)),
                              (before_engine, bn_state(engine.model))]:
            for (mean0, var0), (mean1, var1) in zip(before, after):
                np.testing.assert_array_equal(mean0, mean1)
                np.testing.assert_array_equal(var0, var1)
        np.testing.assert_allclose(before_original[0][0], 0.3)
        np.testing.assert_allclose(before_original[0][1], 2.0)

    def test_batchnorm_uses_moving_statistics(self, model, engine, inputs):
        # With dropout off, a single object gives the same output alone as
        # in a batch: true for moving statistics, false for batch ones.
        full = engine.sample(inputs, 0, seed=0)
        alone = engine.sample([x[:1] for x in inputs], 0, seed=0)
        np.testing.assert_allclose(alone[0], full[0], rtol=1e-5, atol=1e-6)

    def test_agrees_with_naive_sampling(self, engine, inputs):
        n = 400
        fast = engine.sample(inputs, n, seed=5)
        naive = engine.naive_sample(inputs, n, seed=6)
        assert naive.shape == fast.shape == (N_OBJECTS, n, N_OUT)
        fast_mean, naive_mean = fast.mean(1), naive.mean(1)
        fast_std, naive_std = fast.std(1), naive.std(1)
        scale = np.maximum(naive_std, 1e-3)
        # Rate 0.5 gives a wide predictive spread: a broken engine (one
        # mask per batch, dropout off, wrong rescaling) misses these by far.
        assert (naive_std > 0.05 * np.abs(naive_mean).max()).all()
        assert (np.abs(fast_mean - naive_mean) < 0.35 * scale).all()
        np.testing.assert_allclose(fast_std, naive_std, rtol=0.25)

    def test_batch_size_smaller_than_n(self, engine, inputs):
        first = engine.sample(inputs, 9, seed=4, batch_size=4)
        second = engine.sample(inputs, 9, seed=4, batch_size=4)
        assert first.shape == (N_OBJECTS, 9, N_OUT)
        np.testing.assert_array_equal(first, second)

    def test_identical_objects_get_independent_masks(self, engine):
        # Six copies of one object: any reuse of masks, between rows of a
        # batch or between batches, would give equal draws.
        inputs = [np.repeat(x[:1], N_OBJECTS, axis=0) for x in make_inputs()]
        draws = engine.sample(inputs, 8, seed=4, batch_size=2)
        for i in range(N_OBJECTS):
            for j in range(i):
                assert not np.allclose(draws[i], draws[j]), (i, j)

    def test_batch_size_one_deterministic_pass(self, engine, inputs):
        whole = engine.sample(inputs, 0, seed=0, batch_size=256)
        one = engine.sample(inputs, 0, seed=0, batch_size=1)
        np.testing.assert_allclose(one, whole, rtol=1e-5, atol=1e-6)

    def test_progress(self, engine, inputs):
        done = []
        engine.sample(inputs, 2, seed=0, batch_size=4, progress=done.append)
        assert done == [4, 2]

    def test_no_objects(self, engine):
        draws = engine.sample(make_inputs(0), 5, seed=0)
        assert draws.shape == (0, 5, N_OUT)

    def test_saved_and_reloaded(self, model, engine, inputs, tmp_path):
        path = tmp_path / 'model.keras'
        model.save(path)
        reloaded = load_keras_model(path)
        assert sum(isinstance(layer, MCDropout)
                   for layer in reloaded.layers) == 2
        other = MCDropoutEngine(reloaded)
        assert other.split is True
        np.testing.assert_allclose(other.sample(inputs, 15, seed=21),
                                   engine.sample(inputs, 15, seed=21),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(bn_state(reloaded)[0][0],
                                      bn_state(model)[0][0])

    def test_original_model_still_saves(self, tmp_path):
        model = build_model()
        engine = MCDropoutEngine(model)
        engine.sample(make_inputs(), 3, seed=0)
        path = tmp_path / 'after_engine.keras'
        model.save(path)
        reloaded = load_keras_model(path)
        inputs = make_inputs()
        np.testing.assert_allclose(deterministic_call(reloaded, inputs),
                                   deterministic_call(model, inputs),
                                   rtol=1e-6, atol=1e-7)

    def test_engine_copies_weights(self, inputs):
        model = build_model()
        engine = MCDropoutEngine(model)
        np.testing.assert_allclose(engine.sample(inputs, 0, seed=0)[:, 0],
                                   deterministic_call(model, inputs),
                                   rtol=1e-5, atol=1e-6)

    def test_model_without_dropout(self, inputs):
        model = build_model(dropout=False)
        engine = MCDropoutEngine(model)
        assert engine.split is False
        assert engine.dropout_layers == []
        draws = engine.sample(inputs, 5, seed=0)
        assert draws.shape == (N_OBJECTS, 5, N_OUT)
        for t in range(1, 5):
            np.testing.assert_array_equal(draws[:, t], draws[:, 0])
        np.testing.assert_allclose(
            draws[:, 0],
            keras.ops.convert_to_numpy(model(inputs, training=False)),
            rtol=1e-6, atol=1e-7)

    def test_subclassed_model_falls_back(self, inputs):
        class Wrapped(keras.Model):
            def __init__(self, inner, **kwargs):
                super().__init__(**kwargs)
                self.inner = inner

            def call(self, inputs, training=None):
                return self.inner(inputs, training=training)

        inner = build_model()
        wrapped = Wrapped(inner)
        engine = MCDropoutEngine(wrapped)
        assert engine.split is False
        assert len(engine.dropout_layers) == 2
        draws = engine.sample(inputs, 30, seed=0)
        assert draws.shape == (N_OBJECTS, 30, N_OUT)
        assert (np.ptp(draws, axis=1) > 0).all()
        np.testing.assert_array_equal(draws, engine.sample(inputs, 30, seed=0))
