# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
How good a classifier is: metrics, temperature calibration, held-out
evaluation, the photutils baseline and the model-card figures.

The recipes (`astrodl_plugins.classification.recipe`) and the benchmark
use these on simulated sets ``(images, truth)`` whose images hold the
bands ``g, r, i`` in that order. `write_card_figures` remakes the shipped
cards' ROC curve and confusion matrices from a fixed-seed simulation
(``python benchmarks/gallery.py --cards`` remakes every card's figures).
"""

import time

import numpy as np

from . import network as net
from .network import softmax

__all__ = ['roc_auc', 'expected_calibration_error', 'reliability_curve',
           'confusion_matrix', 'softmax', 'mc_probabilities',
           'fit_temperature', 'mc_logits', 'calibrate_temperature',
           'evaluate_classifier', 'baseline_star_galaxy', 'roc_curve',
           'plot_auc', 'plot_reliability', 'plot_roc', 'plot_confusion',
           'write_card_figures', 'EVALUATED_BAND_SETS']

#: Band sets the held-out metrics are reported for.
EVALUATED_BAND_SETS = (('g', 'r', 'i'), ('r',), ('g',), ('i',))
SNR_EDGES = (5, 10, 20, 50, 100, 1000)
MORPHOLOGY_SNR_EDGES = (20, 50, 100, 300, 1000)

# -- metrics -------------------------------------------------------------------


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


def roc_curve(y_true, score):
    """
    False- and true-positive rates at every threshold of ``score``.

    Returns
    -------
    fpr, tpr : `~numpy.ndarray`
        From (0, 0) to (1, 1).
    """
    y_true = np.asarray(y_true, bool)
    order = np.argsort(-np.asarray(score, np.float64), kind='stable')
    hits = np.concatenate([[0], np.cumsum(y_true[order])])
    misses = np.arange(len(order) + 1) - hits
    return (misses / max(misses[-1], 1), hits / max(hits[-1], 1))


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


# -- calibration and held-out evaluation ---------------------------------------


def mc_logits(estimator, inputs, *, n_samples, seed, batch_size=256):
    """``(n, n_samples, n_classes)`` MC-dropout draws of the logits."""
    return estimator.mc_engine().sample(inputs, n_samples, seed=seed,
                                        batch_size=batch_size)


def _inputs(estimator, images, truth, present):
    arrays, npix = net.input_arrays(images, np.asarray(truth['psf_fwhm']))
    return net.scaled_inputs(arrays, npix, present, estimator.scaling)


def calibrate_temperature(estimator, images, truth, *, n_samples=30, seed=0):
    """
    Fit ``estimator.temperature_`` on a validation set with random band
    subsets (the training mixture); returns ``(temperature, ece_before,
    ece_after)``.
    """
    present = net.random_band_subsets(np.random.default_rng(seed),
                                      len(images))
    logits = mc_logits(estimator, _inputs(estimator, images, truth, present),
                       n_samples=n_samples, seed=seed)
    y = np.asarray(truth['label'])
    temperature = fit_temperature(logits, y)
    before = expected_calibration_error(mc_probabilities(logits, 1.0), y)
    after = expected_calibration_error(mc_probabilities(logits, temperature),
                                       y)
    estimator.temperature_ = temperature
    return temperature, before, after


def _bins(edges, snr):
    return [(lo, hi, (snr >= lo) & (snr < hi))
            for lo, hi in zip(edges[:-1], edges[1:])]


def _auc_by_snr(y, galaxy_score, snr, edges):
    """AUC (galaxies positive) overall, at S/N > 20 and per S/N bin."""
    return {'auc': roc_auc(y == 1, galaxy_score),
            'auc_snr_gt_20': roc_auc(y[snr > 20] == 1,
                                     galaxy_score[snr > 20]),
            'by_snr': [{'snr_min': lo, 'snr_max': hi,
                        'auc': roc_auc(y[select] == 1, galaxy_score[select])}
                       for lo, hi, select in _bins(edges, snr)]}


def evaluate_classifier(estimator, images, truth, *, band_sets=None,
                        n_samples=50, seed=0):
    """
    Held-out metrics of a classifier for each band set.

    Returns a dict keyed by the band set (``'gri'``, ``'r'``, ...) with
    accuracy, expected calibration error before (temperature 1) and after
    calibration, the confusion matrix, accuracy per S/N bin and, for two
    classes, the ROC AUC (overall, at S/N > 20, per S/N bin). The MC
    probabilities of each band set are returned under ``'_probabilities'``
    for the figures.
    """
    band_sets = band_sets or EVALUATED_BAND_SETS
    y = np.asarray(truth['label'])
    snr = np.asarray(truth['snr'])
    classes = estimator.classes
    binary = len(classes) == 2
    edges = SNR_EDGES if binary else MORPHOLOGY_SNR_EDGES
    out = {'n_test': len(y), 'n_samples': n_samples}
    probabilities = {}
    for bands in band_sets:
        key = ''.join(bands)
        start = time.perf_counter()
        logits = mc_logits(estimator, _inputs(
            estimator, images, truth, net.presence(bands, len(images))),
            n_samples=n_samples, seed=seed)
        seconds = (time.perf_counter() - start) / len(y)
        p = mc_probabilities(logits, estimator.temperature_)
        probabilities[key] = p
        pred = p.argmax(1)
        result = {
            'accuracy': float(np.mean(pred == y)),
            'ece_uncalibrated': expected_calibration_error(
                mc_probabilities(logits, 1.0), y),
            'ece': expected_calibration_error(p, y),
            'confusion': confusion_matrix(y, pred, len(classes)).tolist(),
            'seconds_per_source': seconds,
            'by_snr': [{'snr_min': lo, 'snr_max': hi,
                        'n_sources': int(select.sum()),
                        'accuracy': float(np.mean(pred[select]
                                                  == y[select]))}
                       for lo, hi, select in _bins(edges, snr)],
        }
        if binary:
            aucs = _auc_by_snr(y, p[:, 1], snr, edges)
            result['auc'] = aucs['auc']
            result['auc_snr_gt_20'] = aucs['auc_snr_gt_20']
            for row, auc_row in zip(result['by_snr'], aucs['by_snr']):
                row['auc'] = auc_row['auc']
        out[key] = result
    out['_probabilities'] = probabilities
    return out


def baseline_star_galaxy(images, truth, band='r', psf_beta=None):
    """
    AUC of the photutils concentration baseline, overall and per S/N.

    ``psf_beta=None`` gives the baseline the true Moffat beta of each stamp
    (more than the CNN is told); a number gives it that nominal beta, so
    that it knows the PSF FWHM only, as CLASS_STAR does.
    """
    from ..simulate.classes import BANDS, PSF_BAND_SCALE
    from .baseline import psf_concentration_score

    y = np.asarray(truth['label'])
    snr = np.asarray(truth['snr'])
    beta = np.asarray(truth['psf_beta']) if psf_beta is None else psf_beta
    score = psf_concentration_score(images[..., BANDS.index(band)],
                                    np.asarray(truth['psf_fwhm'])
                                    * PSF_BAND_SCALE[band], beta)
    # Galaxies are the positive class: less concentrated -> higher score.
    return _auc_by_snr(y, -np.nan_to_num(score, nan=0.0), snr, SNR_EDGES)


# -- model-card figures --------------------------------------------------------


def plot_auc(metrics, baseline, path):
    """ROC AUC against S/N: the CNN (gri, r) and the photutils baseline."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.6), layout='tight')
    ax = figure.add_subplot()
    for key, style in (('gri', 'o-'), ('r', 's-')):
        rows = metrics[key]['by_snr']
        mid = [np.sqrt(r['snr_min'] * r['snr_max']) for r in rows]
        ax.plot(mid, [r['auc'] for r in rows], style,
                label=f'CNN, bands {key}')
    rows = baseline['by_snr']
    ax.plot(mid, [r['auc'] for r in rows], 'k^--',
            label='photutils concentration (r, FWHM + beta)')
    if 'baseline_r_fwhm_only' in metrics:
        rows = metrics['baseline_r_fwhm_only']['by_snr']
        ax.plot(mid, [r['auc'] for r in rows], 'kv:',
                label='photutils concentration (r, FWHM only)')
    ax.set_xscale('log')
    _save(figure, path, 'S/N (r band)', 'ROC AUC (galaxy vs star)',
          'star-galaxy, held-out simulations')


def plot_reliability(probabilities, y, temperature, path, title):
    """Reliability diagram of each band set's probabilities."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 4), layout='tight')
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], 'k:', lw=1)
    for label, p in probabilities.items():
        conf, acc, count = reliability_curve(p, y)
        good = count > 20
        ax.plot(conf[good], acc[good], 'o-', ms=4,
                label=f'{label} (ECE {expected_calibration_error(p, y):.3f})')
    _save(figure, path, 'confidence (top-class probability)', 'accuracy',
          f'{title}: reliability (T = {temperature:.2f})')


def plot_roc(probabilities, y, path):
    """ROC curve (galaxies positive) of each band set's probabilities."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 4), layout='tight')
    ax = figure.add_subplot()
    for label, p in probabilities.items():
        fpr, tpr = roc_curve(y == 1, p[:, 1])
        ax.plot(fpr, tpr, label=f'bands {label} (AUC '
                f'{roc_auc(y == 1, p[:, 1]):.4f})')
    ax.plot([0, 1], [0, 1], 'k:', lw=1)
    ax.set_xscale('symlog', linthresh=0.01)
    ax.set_xlim(0, 1)
    _save(figure, path, 'false-positive rate (stars called galaxies)',
          'true-positive rate (galaxies)', 'star-galaxy: ROC, held-out')


def plot_confusion(matrix, classes, path, title):
    """Row-normalized confusion matrix (rows true, columns predicted)."""
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, np.float64)
    fraction = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = 2.2 + 0.75 * len(classes)
    figure = Figure(figsize=(size + 0.8, size), layout='constrained')
    ax = figure.add_subplot()
    image = ax.imshow(fraction, cmap='Blues', vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(fraction):
        ax.text(j, i, f'{value:.3f}\n({int(matrix[i, j])})', ha='center',
                va='center', fontsize=7,
                color='white' if value > 0.6 else 'black')
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha='right')
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.05, label='fraction of row')
    figure.savefig(path, dpi=80)


def write_card_figures(name, directory=None, *, n_stamps=2000, seed=3,
                       n_samples=20, estimator=None):
    """
    Simulate a held-out set and draw a classifier card's figures.

    ``confusion.png`` (bands g, r, i) for both presets; ``roc.png`` (g, r,
    i and r alone) for ``star-galaxy``. The default seed is the recipes'
    test seed (training seed 1 + 2).

    Parameters
    ----------
    name : {'star-galaxy', 'galaxy-morphology'}
        The preset.
    directory : path-like, optional
        Default: the shipped preset's directory.
    n_stamps, seed, n_samples : int, optional
        Size and seed of the simulated set; MC-dropout samples.
    estimator : optional
        Default: the shipped preset ``name``.

    Returns
    -------
    paths : list of `~pathlib.Path`
    """
    from pathlib import Path

    from .. import get_estimator
    from ..core.store import MODELS_DIR
    from ..simulate import classes

    # The recipes' simulators (`astrodl_plugins.classification.recipe`).
    simulators = {'star-galaxy': classes.simulate_star_galaxy_stamps,
                  'galaxy-morphology': classes.simulate_morphology_stamps}
    if name not in simulators:
        msg = f"name must be 'star-galaxy' or 'galaxy-morphology', not {name!r}"
        raise ValueError(msg)
    estimator = get_estimator(name) if estimator is None else estimator
    directory = Path(MODELS_DIR / name if directory is None else directory)
    images, truth = simulators[name](n_stamps, seed=seed)
    binary = len(estimator.classes) == 2
    band_sets = (('g', 'r', 'i'), ('r',)) if binary else (('g', 'r', 'i'),)
    metrics = evaluate_classifier(estimator, images, truth,
                                  band_sets=band_sets, n_samples=n_samples,
                                  seed=seed)
    y = np.asarray(truth['label'])
    paths = [directory / 'confusion.png']
    plot_confusion(metrics['gri']['confusion'], estimator.classes, paths[0],
                   f'{name}, bands gri, held-out simulations '
                   f'({n_stamps}, seed {seed})')
    if binary:
        paths.append(directory / 'roc.png')
        plot_roc(metrics['_probabilities'], y, paths[1])
    return paths


def _save(figure, path, xlabel, ylabel, title):
    """Labels, title, grid and legend of the figure's axes; save as PNG."""
    ax = figure.axes[0]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=110)
