# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
How familiar an input looks to a network: an out-of-distribution score.

The score is a Mahalanobis distance in the network's own feature space
(the trunk's output, which the MC-dropout head reads), to the features of
the simulated training data (Lee et al. 2018): class-conditional means
with a shared covariance in the leading principal components, plus the
isotropic residual outside them. It is scaled so that 1 is the
``quantile`` of held-out simulations: a row above 1 is less familiar than
99 % (by default) of the data the model was trained on, and is flagged
``UNFAMILIAR``. MC-dropout spread alone does not flag far-out inputs
reliably; this does not depend on it.
"""

import numpy as np

__all__ = ['Familiarity']


class Familiarity:
    """
    Distance of network features to the training features' distribution.

    Build it with `fit`; `score` gives 1 at the calibration quantile.

    Parameters
    ----------
    mean : array
        ``(d,)`` mean feature vector.
    components : array
        ``(k, d)`` leading principal axes.
    centres : array
        ``(c, k)`` class centres in the principal space (one for
        regression).
    variance : array
        ``(k,)`` within-class variance along each axis.
    residual_variance : float
        Mean variance per dimension outside the ``k`` axes.
    threshold : float
        Raw distance at the calibration quantile.
    quantile : float
        The calibration quantile of the held-out simulations.
    """

    def __init__(self, mean, components, centres, variance,
                 residual_variance, threshold=1.0, quantile=0.99):
        self.mean = np.asarray(mean, np.float64)
        self.components = np.asarray(components, np.float64)
        self.centres = np.asarray(centres, np.float64)
        self.variance = np.asarray(variance, np.float64)
        self.residual_variance = float(residual_variance)
        self.threshold = float(threshold)
        self.quantile = float(quantile)

    @classmethod
    def fit(cls, features, labels=None, held_out=None, *, n_components=32,
            quantile=0.99):
        """
        Fit on training features; calibrate on held-out features.

        Parameters
        ----------
        features : array
            ``(n, d)`` features of simulated training-like inputs.
        labels : array, optional
            Class of each row (classifiers): one centre per class.
        held_out : array, optional
            ``(m, d)`` features of other simulated inputs, for the
            threshold (default: ``features``).
        n_components : int, optional
            Principal axes kept (at most ``d``).
        quantile : float, optional
            Fraction of held-out inputs scored at most 1.

        Returns
        -------
        familiarity : `Familiarity`
        """
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or len(features) < 2:
            msg = ('features must be (n, d) with n >= 2, got shape '
                   f'{features.shape}')
            raise ValueError(msg)
        labels = (np.zeros(len(features), int) if labels is None
                  else np.asarray(labels))
        mean = features.mean(axis=0)
        centred = features - mean
        k = int(min(n_components, features.shape[1]))
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        components = axes[:k]
        projected = centred @ components.T
        classes, index = np.unique(labels, return_inverse=True)
        centres = np.stack([projected[index == i].mean(axis=0)
                            for i in range(len(classes))])
        within = projected - centres[index]
        variance = within.var(axis=0)
        variance = variance + 1e-6 * max(variance.max(), 1e-12)
        residual = _residual(centred, projected, components)
        n_rest = max(features.shape[1] - k, 1)
        residual_variance = max(residual.mean() / n_rest, 1e-12)
        familiarity = cls(mean, components, centres, variance,
                          residual_variance, 1.0, quantile)
        calibration = features if held_out is None else held_out
        familiarity.threshold = float(np.quantile(
            familiarity.distance(calibration), quantile))
        return familiarity

    def distance(self, features):
        """Raw distance of each row (root of the mean squared z-score)."""
        features = np.asarray(features, np.float64)
        centred = features - self.mean
        projected = centred @ self.components.T
        inside = np.min(np.sum((projected[:, None, :] - self.centres[None])
                               ** 2 / self.variance, axis=-1), axis=1)
        outside = (_residual(centred, projected, self.components)
                   / self.residual_variance)
        n_dims = self.mean.size
        return np.sqrt((inside + outside) / n_dims)

    def score(self, features):
        """Distance in units of the threshold: above 1 is unfamiliar."""
        return self.distance(features) / self.threshold

    def to_dict(self):
        """
        JSON-serializable state, at full precision (a rounded state gives
        other scores than the fitted one: the residual is small).
        """
        return {'mean': np.asarray(self.mean, np.float64).tolist(),
                'components': np.asarray(self.components,
                                         np.float64).tolist(),
                'centres': np.asarray(self.centres, np.float64).tolist(),
                'variance': np.asarray(self.variance, np.float64).tolist(),
                'residual_variance': self.residual_variance,
                'threshold': self.threshold, 'quantile': self.quantile}

    @classmethod
    def from_dict(cls, state):
        """Rebuild from `to_dict`."""
        return cls(**state)


def _residual(centred, projected, components):
    """Squared norm of the part of each row outside the kept components."""
    return np.sum((centred - projected @ components) ** 2, axis=1)
