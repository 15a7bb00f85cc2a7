# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Classification metrics used by the model cards and benchmarks."""

import numpy as np

__all__ = ['roc_auc', 'expected_calibration_error', 'reliability_curve',
           'confusion_matrix', 'softmax', 'mc_probabilities',
           'fit_temperature']


def roc_auc(y_true, score):
    """
    Area under the ROC curve (Mann-Whitney U, ties counted half).

    Parameters
    ----------
    y_true : array of bool or 0/1
        Positive class membership.
    score : array
        Higher means more likely positive.

    Returns
    -------
    auc : float
        NaN when one class is absent.
    """
    y_true = np.asarray(y_true, bool)
    score = np.asarray(score, np.float64)
    n_pos, n_neg = y_true.sum(), (~y_true).sum()
    if n_pos == 0 or n_neg == 0:
        return np.nan
    # Average ranks (1-based), ties sharing the mean of their ranks.
    _, inverse, counts = np.unique(score, return_inverse=True,
                                   return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2)
                 / (n_pos * n_neg))


def reliability_curve(probabilities, y_true, n_bins=15):
    """
    Confidence against accuracy in bins of the top-class probability.

    Parameters
    ----------
    probabilities : array
        ``(n, n_classes)``.
    y_true : array of int
        True class indices.
    n_bins : int, optional
        Equal-width confidence bins on [0, 1].

    Returns
    -------
    confidence, accuracy, count : `~numpy.ndarray`
        Per bin (NaN where empty).
    """
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid='ignore'):
        mean_conf = np.bincount(index, confidence, n_bins) / count
        accuracy = np.bincount(index, correct, n_bins) / count
    return mean_conf, accuracy, count


def expected_calibration_error(probabilities, y_true, n_bins=15):
    """
    Expected calibration error (Guo et al. 2017) of the top-class
    probability, with ``n_bins`` equal-width bins.
    """
    conf, acc, count = reliability_curve(probabilities, y_true, n_bins)
    good = count > 0
    return float(np.sum(count[good] * np.abs(conf[good] - acc[good]))
                 / count.sum())


def confusion_matrix(y_true, y_pred, n_classes):
    """``(n_classes, n_classes)`` counts: rows true, columns predicted."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def softmax(logits, temperature=1.0):
    """Softmax of ``logits / temperature`` along the last axis."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def mc_probabilities(logits, temperature=1.0):
    """MC-dropout mean of the softmax of ``logits / temperature``.

    ``logits`` has shape ``(n, T, n_classes)``.
    """
    return softmax(logits, temperature).mean(1)


def fit_temperature(logits, y_true, grid=None):
    """
    Temperature minimizing the negative log-likelihood of the MC-mean
    probabilities (Guo et al. 2017, applied to every MC draw).

    Parameters
    ----------
    logits : array
        ``(n, T, n_classes)`` MC-dropout draws of the logits.
    y_true : array of int
        True classes.
    grid : array, optional
        Temperatures tried (default 0.3-5, log-spaced, then refined).

    Returns
    -------
    temperature : float
    """
    y_true = np.asarray(y_true)

    def nll(t):
        p = mc_probabilities(logits, t)[np.arange(len(y_true)), y_true]
        return -np.mean(np.log(np.clip(p, 1e-12, None)))

    grid = np.geomspace(0.3, 5.0, 41) if grid is None else np.asarray(grid)
    best = grid[np.argmin([nll(t) for t in grid])]
    fine = best * np.geomspace(0.93, 1.075, 21)
    return float(fine[np.argmin([nll(t) for t in fine])])
