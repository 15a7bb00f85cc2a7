# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The tiny Keras networks (MC dropout) and their draws."""

import keras
import numpy as np
from keras import layers

from astrodl_plugins.core.base import Draws
from astrodl_plugins.core.mc import MCDropout

__all__ = ['build_stamp_network', 'build_series_network',
           'build_segment_network', 'gaussian_draws', 'clipped_log_var']


def _mean_logvar_head(x, dense, dropout, n_out=4):
    x = layers.Dense(dense, activation='relu', name='dense1')(x)
    x = MCDropout(dropout, name='mc1')(x)
    return layers.Dense(n_out, name='out')(x)


def build_stamp_network(stamp_size, channels, widths, dense, dropout,
                        with_psf=True):
    """Conv blocks, MC dropout; 2 means and 2 log-variances."""
    image = keras.Input((stamp_size, stamp_size, channels), name='image')
    x = image
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding='same', activation='relu',
                          name=f'block{i}_conv')(x)
        x = layers.MaxPooling2D(2, name=f'block{i}_pool')(x)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(dense, activation='relu', name='dense0')(x)
    x = MCDropout(dropout, name='mc0')(x)
    inputs = [image]
    if with_psf:
        psf = keras.Input((1,), name='psf_fwhm')
        inputs.append(psf)
        x = layers.Concatenate(name='concat')([x, psf])
    out = _mean_logvar_head(x, dense, dropout)
    return keras.Model(inputs, out, name='tiny_stamp')


def build_series_network(length, dense, dropout, name='tiny_series'):
    """Dense layers with MC dropout; a mean and a log-variance."""
    series = keras.Input((length,), name='series')
    x = layers.Dense(dense, activation='relu', name='dense0')(series)
    x = MCDropout(dropout, name='mc0')(x)
    out = _mean_logvar_head(x, dense, dropout, n_out=2)
    return keras.Model(series, out, name=name)


def build_segment_network(stamp_size, dropout):
    """A conv layer, MC dropout; a flux correction and a log-variance."""
    image = keras.Input((stamp_size, stamp_size, 1), name='image')
    x = layers.Conv2D(4, 3, activation='relu', name='conv')(image)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(8, activation='relu', name='dense0')(x)
    x = MCDropout(dropout, name='mc0')(x)
    out = layers.Dense(2, name='out')(x)
    return keras.Model(image, out, name='tiny_segments')


def gaussian_draws(mean, variance, rng):
    """`Draws` with predictive draws = mean + N(0, variance)."""
    predictive = {key: value + rng.normal(size=value.shape)
                  * np.sqrt(variance[key]) for key, value in mean.items()}
    return Draws(mean, variance, predictive)


def clipped_log_var(raw):
    """Network log-variances clipped to [-8, 4]."""
    return np.clip(raw, -8.0, 4.0)
