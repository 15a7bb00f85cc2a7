# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tiny 1-D estimators: the mean level (and spread) of a series."""

import keras
import numpy as np

from astrodl_plugins.core.series import SeriesEstimator
from astrodl_plugins.training.losses import GaussianBetaNLL
from astrodl_plugins.training.mixin import TrainableMixin, TrainingTask

from .networks import build_series_network, clipped_log_var, gaussian_draws

__all__ = ['TinySeries', 'TinySeriesPair', 'make_tiny_series']


class TinySeries(TrainableMixin, SeriesEstimator):
    """
    Mean level of a 1-D series from a tiny dense network.

    The good values are resampled onto ``length`` points and scaled by
    their largest absolute value. ``context.aux['n_points']`` (good values)
    is range-checked against the card's ``valid_ranges``.

    Parameters
    ----------
    length : int
        Points of the network's input.
    dense : int
        Units of the dense layers.
    dropout : float
        MC-dropout rate.
    """

    name = 'tiny-series'
    task = 'regression'
    version = '0.1'
    description = 'mean level of a series (test estimator)'
    output_names = ('level',)
    min_points = 3
    range_margins = {'n_points': (0.0, None)}

    def __init__(self, length=24, dense=16, dropout=0.2):
        self.length = length
        self.dense = dense
        self.dropout = dropout

    def _resample(self, values, mask=None):
        """Good values on ``length`` points, scaled; and the scales."""
        rows, scales = [], []
        for i, row in enumerate(values):
            good = np.asarray(row, np.float64)
            if mask is not None:
                good = good[~mask[i]]
            grid = np.linspace(0.0, 1.0, self.length)
            resampled = np.interp(grid, np.linspace(0.0, 1.0, len(good)),
                                  good)
            scale = max(np.abs(good).max(), 1e-6)
            rows.append(resampled / scale)
            scales.append(scale)
        return (np.array(rows, np.float32).reshape(-1, self.length),
                np.array(scales))

    def _prepare(self, series, context):
        features, scales = self._resample([s.values for s in series],
                                          [s.mask for s in series])
        context.aux['scale'] = scales
        context.aux['n_points'] = np.array(
            [np.count_nonzero(~s.mask) for s in series], np.float64)
        return [features]

    def _decode(self, raw, context, rng):
        scale = context.aux['scale'][:, None]
        level = scale * raw[..., 0]
        variance = scale ** 2 * np.exp(clipped_log_var(raw[..., 1]))
        return gaussian_draws({'level': level}, {'level': variance}, rng)

    def _training_data(self, values, labels):
        values = np.asarray(values, np.float32)
        return values, np.asarray(labels['level'], np.float64)

    def _task(self, network, target, train, validation, build):
        def encode(values, level):
            features, scales = self._resample(values)
            return [features], (target(values, level) / scales)[:, None]

        return TrainingTask(network, build, encode(*train),
                            encode(*validation), loss=GaussianBetaNLL(0.0),
                            epochs=2, batch_size=16, patience=2,
                            learning_rate=1e-2)

    def _training_tasks(self, train, validation, *, new, augment, seed):
        return [self._task('model', lambda values, level: level, train,
                           validation, self.build)]

    def build(self):
        """A new (untrained) ``model`` network."""
        return build_series_network(self.length, self.dense, self.dropout)


class TinySeriesPair(TinySeries):
    """
    `TinySeries` with a second network, ``other``: the ``spread`` column
    (one deterministic pass).
    """

    name = 'tiny-series-pair'
    networks = ('model', 'other')

    def build_other(self):
        """A new (untrained) ``other`` network."""
        return build_series_network(self.length, self.dense, self.dropout,
                                    name='tiny_spread')

    def _extra_columns(self, columns, draws, context):
        raw = self.mc_engine('other').sample(context.inputs, 0,
                                             seed=context.seed)
        spread = np.full(len(context.usable), np.nan)
        spread[context.usable] = context.aux['scale'] * np.abs(raw[:, 0, 0])
        return {**columns, 'spread': spread}

    def _training_tasks(self, train, validation, *, new, augment, seed):
        def spread(values, level):
            return values.std(axis=1)

        return [*super()._training_tasks(train, validation, new=new,
                                         augment=augment, seed=seed),
                self._task('other', spread, train, validation,
                           self.build_other)]


def make_tiny_series(cls=TinySeries, seed=0, **params):
    """An untrained tiny series estimator (one or two networks)."""
    keras.utils.set_random_seed(seed)
    estimator = cls(**params)
    estimator.model_ = estimator.build()
    if 'other' in cls.networks:
        estimator.other_ = estimator.build_other()
    estimator.card_ = {'valid_ranges': {'n_points': [4, 1000]}}
    return estimator
