# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Calibration and held-out metrics of the transit vetter, and the
injection-recovery measure shared with the benchmark.
"""

import numpy as np

from ..classification.evaluate import (
    expected_calibration_error,
    fit_temperature,
    mc_logits,
    mc_probabilities,
    reliability_curve,
    roc_auc,
    roc_curve,
)

__all__ = ['vetter_inputs', 'calibrate_vetter', 'evaluate_vetter',
           'precision_recall', 'recall_at_precision', 'threshold_at_fpr',
           'plot_curves', 'plot_reliability']

#: S/N bins of the held-out table.
SNR_EDGES = (6, 10, 20, 50, np.inf)


def vetter_inputs(data):
    """Network inputs of ``(global, local, scalars, truth)`` candidates."""
    g, loc, sc, _ = data
    g = np.asarray(g, np.float32)
    return [g[..., None] if g.ndim == 2 else g, np.asarray(loc, np.float32),
            np.asarray(sc, np.float32)]


def _labels(estimator, truth):
    return (np.asarray(truth['label']) == estimator.classes[0]).astype(int)


def calibrate_vetter(estimator, validation, *, n_samples=30, seed=0):
    """
    Fit ``temperature_`` on validation candidates; record their class
    fractions as ``training_prior_``.

    Returns
    -------
    dict
        ``temperature``, ``validation_ece_before``, ``validation_ece_after``.
    """
    logits = mc_logits(estimator, vetter_inputs(validation),
                       n_samples=n_samples, seed=seed)
    # Class index 0 is 'planet'.
    y = 1 - _labels(estimator, validation[3])
    temperature = fit_temperature(logits, y)
    before = expected_calibration_error(mc_probabilities(logits, 1.0), y)
    after = expected_calibration_error(mc_probabilities(logits, temperature),
                                       y)
    estimator.temperature_ = temperature
    fraction = float(np.mean(y == 0))
    estimator.training_prior_ = [fraction, 1.0 - fraction]
    return {'temperature': temperature, 'validation_ece_before': before,
            'validation_ece_after': after,
            'validation_planet_fraction': fraction}


def precision_recall(positive, score):
    """Precision and recall at every threshold of ``score`` (descending)."""
    positive = np.asarray(positive, bool)
    order = np.argsort(-np.asarray(score, np.float64), kind='stable')
    hits = np.cumsum(positive[order])
    n = np.arange(1, len(order) + 1)
    return hits / n, hits / max(positive.sum(), 1)


def recall_at_precision(positive, score, precision=0.99):
    """Highest recall at which the precision is at least ``precision``."""
    p, r = precision_recall(positive, score)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def threshold_at_fpr(negative_scores, fpr=0.01):
    """Score above which a fraction ``fpr`` of the negatives lie."""
    negative_scores = np.sort(np.asarray(negative_scores, np.float64))
    if not negative_scores.size:
        return -np.inf
    k = int(np.floor((1 - fpr) * len(negative_scores)))
    k = min(k, len(negative_scores) - 1)
    return float(negative_scores[k])


def evaluate_vetter(estimator, test, *, n_samples=30, seed=0):
    """
    Held-out metrics of ``p_planet`` on simulated candidates.

    Returns
    -------
    metrics : dict
        ``auc``, ``recall_at_precision_0.99``, ``ece``, ``accuracy``,
        rejection of each kind of false positive (``p_planet < 0.5``),
        recall by S/N; ``_scores`` holds ``(p_planet, truth)`` for the
        figures.
    tables : list of dict
        The card's tables.
    """
    logits = mc_logits(estimator, vetter_inputs(test), n_samples=n_samples,
                       seed=seed + 7)
    temperature = getattr(estimator, 'temperature_', 1.0)
    probabilities = mc_probabilities(logits, temperature)
    truth = test[3]
    planet = _labels(estimator, truth).astype(bool)
    p = probabilities[:, 0]
    y = 1 - planet.astype(int)
    kinds = np.asarray(truth['kind'])
    metrics = {
        'n_candidates': int(len(p)), 'n_planets': int(planet.sum()),
        'auc': roc_auc(planet, p),
        'recall_at_precision_0.99': recall_at_precision(planet, p, 0.99),
        'ece': expected_calibration_error(probabilities, y),
        'accuracy': float(np.mean((p >= 0.5) == planet)),
        'recall_at_0.5': float(np.mean(p[planet] >= 0.5)),
    }
    rows = []
    for kind in ('planet', 'eb', 'beb', 'variable', 'noise'):
        sel = kinds == kind
        if not sel.any():
            continue
        if kind == 'planet':
            rate = float(np.mean(p[sel] >= 0.5))
            label = 'recall (p_planet >= 0.5)'
        else:
            rate = float(np.mean(p[sel] < 0.5))
            label = 'rejected (p_planet < 0.5)'
            metrics[f'rejected_{kind}'] = rate
            metrics[f'auc_planet_vs_{kind}'] = roc_auc(
                planet[planet | sel], p[planet | sel])
        rows.append([kind, int(sel.sum()), label, f'{rate:.3f}'])
    snr = np.asarray(truth['snr'], np.float64)
    by_snr = []
    for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:]):
        sel = (snr >= lo) & (snr < hi)
        negatives = sel & ~planet
        by_snr.append([f'{lo:g}-{hi:g}', int((sel & planet).sum()),
                       f'{np.mean(p[sel & planet] >= 0.5):.3f}'
                       if (sel & planet).any() else '',
                       int(negatives.sum()),
                       f'{roc_auc(planet[sel], p[sel]):.4f}'
                       if (sel & planet).any() and negatives.any() else ''])
    tables = [{'title': 'Held-out candidates by kind', 'header':
               ['kind', 'n', 'measure', 'value'], 'rows': rows},
              {'title': 'Held-out candidates by S/N', 'header':
               ['S/N', 'planets', 'recall at 0.5', 'false positives', 'AUC'],
               'rows': by_snr}]
    metrics['_scores'] = (p, truth)
    return metrics, tables


def plot_curves(p_planet, truth, path):
    """ROC and precision-recall curves of ``p_planet``."""
    import matplotlib.pyplot as plt

    planet = np.asarray(truth['label']) == 'planet'
    fpr, tpr = roc_curve(planet, p_planet)
    precision, recall = precision_recall(planet, p_planet)
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.6))
    left.plot(fpr, tpr)
    left.set(xscale='log', xlim=(1e-4, 1), xlabel='false-positive rate',
             ylabel='true-positive rate',
             title=f'ROC, AUC {roc_auc(planet, p_planet):.4f}')
    right.plot(recall, precision)
    right.set(xlabel='recall', ylabel='precision', ylim=(0.5, 1.01),
              title='precision-recall')
    for ax in (left, right):
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_reliability(p_planet, truth, path):
    """Reliability diagram of ``p_planet`` (top-class confidence)."""
    import matplotlib.pyplot as plt

    planet = np.asarray(truth['label']) == 'planet'
    probabilities = np.stack([p_planet, 1 - p_planet], axis=1)
    conf, acc, count = reliability_curve(probabilities,
                                         (~planet).astype(int))
    figure, ax = plt.subplots(figsize=(4, 3.6))
    ax.plot([0.5, 1], [0.5, 1], color='grey', lw=1)
    ax.plot(conf, acc, 'o-')
    ax.set(xlabel='confidence', ylabel='accuracy',
           title='p_planet reliability (held out)')
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
