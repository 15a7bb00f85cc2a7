# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GaussianBetaNLL on values worked out by hand."""

import keras
import numpy as np
import pytest

from astrodl_plugins.training.losses import GaussianBetaNLL

LOG4 = np.log(4.0)


def loss_value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(
        loss(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))))


class TestGaussianBetaNLL:
    # One sample, two outputs: means (1, 0), log-variances (0, log 4),
    # targets (1, 2). Terms 0.5 (log s2 + (y - m)^2 / s2): 0 and
    # 0.5 (log 4 + 1).
    y_true = [[1.0, 2.0]]
    y_pred = [[1.0, 0.0, 0.0, LOG4]]

    def test_plain_nll(self):
        expected = 0.5 * (0.0 + 0.5 * (LOG4 + 1.0))
        assert loss_value(GaussianBetaNLL(beta=0.0), self.y_true,
                          self.y_pred) == pytest.approx(expected, rel=1e-6)

    def test_beta_weighting(self):
        # Each term times variance ** beta: weights 1 and 4 ** 0.5 = 2.
        expected = 0.5 * (0.0 + 2.0 * 0.5 * (LOG4 + 1.0))
        assert loss_value(GaussianBetaNLL(beta=0.5), self.y_true,
                          self.y_pred) == pytest.approx(expected, rel=1e-6)

    def test_beta_one(self):
        expected = 0.5 * (4.0 * 0.5 * (LOG4 + 1.0))
        assert loss_value(GaussianBetaNLL(beta=1.0), self.y_true,
                          self.y_pred) == pytest.approx(expected, rel=1e-6)

    def test_default_beta(self):
        assert GaussianBetaNLL().beta == 0.5

    def test_mean_over_batch(self):
        y_true = [[0.0], [3.0]]
        y_pred = [[0.0, 0.0], [1.0, LOG4]]
        # Per sample: 0 and 0.5 (log 4 + 4 / 4).
        expected = 0.5 * (0.0 + 0.5 * (LOG4 + 1.0))
        assert loss_value(GaussianBetaNLL(0.0), y_true, y_pred) == \
            pytest.approx(expected, rel=1e-6)

    def test_log_variance_clipped(self):
        # log-variances are clipped to [-12, 8].
        high = loss_value(GaussianBetaNLL(0.0), [[0.0]], [[0.0, 20.0]])
        assert high == pytest.approx(0.5 * 8.0, rel=1e-6)
        low = loss_value(GaussianBetaNLL(0.0), [[1e-3]], [[0.0, -30.0]])
        expected = 0.5 * (-12.0 + 1e-6 * np.exp(12.0))
        assert low == pytest.approx(expected, rel=1e-4)

    def test_minimum_at_truth(self):
        loss = GaussianBetaNLL(0.0)
        # For a fixed error, the NLL is smallest when the variance is the
        # squared error.
        error = 0.5
        values = [loss_value(loss, [[error]], [[0.0, np.log(v)]])
                  for v in (0.1, error ** 2, 1.0)]
        assert values[1] < values[0] and values[1] < values[2]

    def test_config_round_trip(self):
        loss = GaussianBetaNLL(beta=0.25, name='nll')
        clone = GaussianBetaNLL.from_config(loss.get_config())
        assert clone.beta == 0.25
        assert clone.name == 'nll'

    def test_registered_for_saving(self):
        cls = keras.saving.get_registered_object(
            'astrodl_plugins>GaussianBetaNLL')
        assert cls is GaussianBetaNLL
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(GaussianBetaNLL(0.3)))
        assert isinstance(restored, GaussianBetaNLL)
        assert restored.beta == pytest.approx(0.3)

    @pytest.mark.skipif(keras.backend.backend() != 'tensorflow',
                        reason='gradient through tf.GradientTape')
    def test_weight_not_differentiated(self):
        import tensorflow as tf

        # At y = mean the term is 0.5 log s2 times the weight s2 ** beta;
        # with the weight's gradient stopped, d/d(log s2) = 0.5 * weight.
        y_pred = tf.Variable([[0.0, LOG4]])
        with tf.GradientTape() as tape:
            value = GaussianBetaNLL(0.5)(tf.constant([[0.0]]), y_pred)
        gradient = tape.gradient(value, y_pred).numpy()
        np.testing.assert_allclose(gradient, [[0.0, 0.5 * 2.0]], rtol=1e-6)
