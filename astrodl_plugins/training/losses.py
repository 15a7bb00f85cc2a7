# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Losses for networks that predict a mean and a variance per output."""

import keras
from keras import ops

__all__ = ['GaussianBetaNLL']


@keras.saving.register_keras_serializable(package='astrodl_plugins')
class GaussianBetaNLL(keras.losses.Loss):
    """
    Heteroscedastic Gaussian negative log-likelihood, beta-weighted.

    The network's output holds ``k`` means followed by ``k`` log-variances.
    Each term of the NLL is weighted by the (gradient-stopped) predicted
    variance to the power ``beta`` (Seitzer et al. 2022), which stops the
    variance head from starving the mean of gradient early in training.
    ``beta=0`` is the plain NLL.

    Parameters
    ----------
    beta : float, optional
        Weighting exponent in [0, 1].
    **kwargs
        Passed to `keras.losses.Loss`.
    """

    def __init__(self, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        """Per-sample loss."""
        k = ops.shape(y_true)[-1]
        mean = y_pred[..., :k]
        log_var = ops.clip(y_pred[..., k:], -12.0, 8.0)
        nll = 0.5 * (log_var + ops.square(y_true - mean) * ops.exp(-log_var))
        if self.beta:
            nll = nll * ops.stop_gradient(ops.exp(self.beta * log_var))
        return ops.mean(nll, axis=-1)

    def get_config(self):
        """Loss config, with ``beta``."""
        config = super().get_config()
        config['beta'] = self.beta
        return config
