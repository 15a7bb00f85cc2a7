# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipes that produce the shipped star-galaxy and galaxy-morphology
presets.

``astrodl train star-galaxy --n-train N --seed S --output DIR`` (and the
same for ``galaxy-morphology``) simulates the training (seed S),
validation (S + 1) and held-out test (S + 2) sets, fits with rotation/flip
and band-subset augmentation and early stopping, fits the temperature of
the probabilities on the validation set, measures the held-out metrics for
several band sets (and, for star-galaxy, the photutils concentration
baseline on the same sources), and saves the preset with its model card
and figures.
"""

import time
from pathlib import Path

import numpy as np

from ..core.store import check_output_directory
from ..simulate.sources import BANDS
from . import _network as net
from ._training import fixed_inputs, prepared_arrays
from .metrics import (
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    mc_probabilities,
    reliability_curve,
    roc_auc,
)

__all__ = ['train_star_galaxy', 'train_galaxy_morphology',
           'evaluate_classifier']

#: Band sets the held-out metrics are reported for.
EVALUATED_BAND_SETS = (('g', 'r', 'i'), ('r',), ('g',), ('i',))
_SNR_EDGES = (5, 10, 20, 50, 100, 1000)
_MORPHOLOGY_SNR_EDGES = (20, 50, 100, 300, 1000)


def mc_logits(estimator, inputs, *, n_samples, seed, batch_size=256):
    """``(n, n_samples, n_classes)`` MC-dropout draws of the logits."""
    return estimator._engine().sample(inputs, n_samples, seed=seed,
                                      batch_size=batch_size)


def _inputs(estimator, images, truth, bands):
    arrays, npix = prepared_arrays(images, np.asarray(truth['psf_fwhm']))
    return fixed_inputs(arrays, npix, net.presence(bands, len(images)),
                        estimator.scaling)


def calibrate_temperature(estimator, images, truth, *, n_samples=30, seed=0):
    """
    Fit ``estimator.temperature_`` on a validation set with random band
    subsets (the training mixture); returns ``(temperature, ece_before,
    ece_after)``.
    """
    arrays, npix = prepared_arrays(images, np.asarray(truth['psf_fwhm']))
    present = net.random_band_subsets(np.random.default_rng(seed),
                                      len(images))
    logits = mc_logits(estimator, fixed_inputs(arrays, npix, present,
                                               estimator.scaling),
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
    edges = _SNR_EDGES if binary else _MORPHOLOGY_SNR_EDGES
    out = {'n_test': len(y), 'n_samples': n_samples}
    probabilities = {}
    for bands in band_sets:
        key = ''.join(bands)
        start = time.perf_counter()
        logits = mc_logits(estimator, _inputs(estimator, images, truth,
                                              bands),
                           n_samples=n_samples, seed=seed)
        seconds = (time.perf_counter() - start) / len(y)
        p = mc_probabilities(logits, estimator.temperature_)
        p_raw = mc_probabilities(logits, 1.0)
        probabilities[key] = p
        pred = p.argmax(1)
        result = {
            'accuracy': float(np.mean(pred == y)),
            'ece_uncalibrated': expected_calibration_error(p_raw, y),
            'ece': expected_calibration_error(p, y),
            'confusion': confusion_matrix(y, pred, len(classes)).tolist(),
            'seconds_per_source': seconds,
            'by_snr': [],
        }
        if binary:
            result['auc'] = roc_auc(y == 1, p[:, 1])
            result['auc_snr_gt_20'] = roc_auc(y[snr > 20] == 1,
                                              p[snr > 20, 1])
        for lo, hi, select in _bins(edges, snr):
            row = {'snr_min': lo, 'snr_max': hi,
                   'n_sources': int(select.sum()),
                   'accuracy': float(np.mean(pred[select] == y[select]))}
            if binary:
                row['auc'] = roc_auc(y[select] == 1, p[select, 1])
            result['by_snr'].append(row)
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
    from .baseline import psf_concentration_score

    y = np.asarray(truth['label'])
    snr = np.asarray(truth['snr'])
    beta = np.asarray(truth['psf_beta']) if psf_beta is None else psf_beta
    score = psf_concentration_score(images[..., BANDS.index(band)],
                                    np.asarray(truth['psf_fwhm'])
                                    * _band_scale(band), beta)
    # Galaxies are the positive class: less concentrated -> higher score.
    galaxy_score = -np.nan_to_num(score, nan=0.0)
    out = {'auc': roc_auc(y == 1, galaxy_score),
           'auc_snr_gt_20': roc_auc(y[snr > 20] == 1,
                                    galaxy_score[snr > 20]),
           'by_snr': []}
    for lo, hi, select in _bins(_SNR_EDGES, snr):
        out['by_snr'].append({'snr_min': lo, 'snr_max': hi,
                              'auc': roc_auc(y[select] == 1,
                                             galaxy_score[select])})
    return out


def _band_scale(band):
    from ..simulate.sources import PSF_BAND_SCALE

    return PSF_BAND_SCALE[band]


def _plot_auc(metrics, baseline, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
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
    ax.set_xlabel('S/N (r band)')
    ax.set_ylabel('ROC AUC (galaxy vs star)')
    ax.set_title('star-galaxy, held-out simulations')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(probabilities, y, temperature, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], 'k:', lw=1)
    for label, p in probabilities.items():
        conf, acc, count = reliability_curve(p, y)
        good = count > 20
        ax.plot(conf[good], acc[good], 'o-', ms=4,
                label=f'{label} (ECE {expected_calibration_error(p, y):.3f})')
    ax.set_xlabel('confidence (top-class probability)')
    ax.set_ylabel('accuracy')
    ax.set_title(f'{title}: reliability (T = {temperature:.2f})')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _simulator(name):
    from ..simulate import sources

    return {'star-galaxy': sources.simulate_star_galaxy_stamps,
            'galaxy-morphology': sources.simulate_morphology_stamps}[name]


def _estimator_class(name):
    from .morphology import GalaxyMorphology
    from .star_galaxy import StarGalaxyClassifier

    return {'star-galaxy': StarGalaxyClassifier,
            'galaxy-morphology': GalaxyMorphology}[name]


_REFERENCES = {
    'star-galaxy': 'Kim & Brunner 2017, MNRAS 464, 4463',
    'galaxy-morphology': 'Huertas-Company et al. 2015, ApJS 221, 8; '
                         'Dieleman et al. 2015, MNRAS 450, 1441',
}


def train_classifier(name, *, n_train, seed=1, output, n_validation=8_000,
                     n_test=10_000, epochs=15, patience=3, refine_epochs=0,
                     refine_learning_rate=3e-4, cache_dir=None,
                     overwrite=False, verbose=2):
    """
    Simulate, train, calibrate, evaluate and save a classifier preset.

    Parameters
    ----------
    name : {'star-galaxy', 'galaxy-morphology'}
        Which classifier.
    n_train : int
        Training stamps (seed ``seed``).
    seed : int, optional
        Training set ``seed``, validation ``seed + 1``, held-out test
        ``seed + 2``; also the weights, augmentation and band subsets.
    output : path-like
        Directory of the saved preset.
    n_validation, n_test : int, optional
        Sizes of the validation and held-out test sets.
    epochs, patience : int, optional
        Maximum epochs (cosine decay from 1e-3) and early-stopping patience.
    refine_epochs : int, optional
        Epochs of a second stage that continues from the best weights with
        a new cosine decay from ``refine_learning_rate`` (0: none).
    refine_learning_rate : float, optional
        Initial learning rate of the second stage.
    cache_dir : path-like, optional
        Keep the simulated sets there and reuse them.
    overwrite : bool, optional
        Replace an existing output directory.
    verbose : int, optional
        Keras verbosity.

    Returns
    -------
    estimator : `~astrodl_plugins.classification.SourceClassifier`
    """
    from ..training.datasets import cached_simulation

    output = check_output_directory(output, overwrite)
    simulator = _simulator(name)

    def simulate(n, s):
        return cached_simulation(simulator, n, s, cache_dir=cache_dir)

    train = simulate(n_train, seed)
    validation = simulate(n_validation, seed + 1)
    test = simulate(n_test, seed + 2)
    start = time.perf_counter()
    estimator = _fit_on(_estimator_class(name)(), train, validation,
                        epochs=epochs, patience=patience, seed=seed,
                        verbose=verbose)
    if refine_epochs:
        refine(estimator, train, validation, epochs=refine_epochs,
               learning_rate=refine_learning_rate, seed=seed,
               verbose=verbose)
    seconds = time.perf_counter() - start
    return finish_classifier(
        estimator, validation, test, seed=seed, n_train=n_train,
        output=output, overwrite=overwrite, training_seconds=seconds,
        epochs=epochs, refine_epochs=refine_epochs)


def _fit_on(estimator, train, validation, **kwargs):
    """``estimator.fit`` on simulated ``(images, truth)`` sets, all bands."""
    return estimator.fit(
        train[0], train[1]['label'], psf_fwhm=train[1]['psf_fwhm'],
        bands=BANDS, validation_data=(validation[0], validation[1]['label'],
                                      validation[1]['psf_fwhm']), **kwargs)


def refine(estimator, train, validation, *, epochs, learning_rate, seed,
           verbose=2):
    """Second training stage from the current weights; histories joined."""
    stage1 = estimator.history_
    _fit_on(estimator, train, validation, epochs=epochs, patience=epochs,
            learning_rate=learning_rate, seed=seed, verbose=verbose)
    estimator.history_ = {key: stage1[key] + estimator.history_[key]
                          for key in stage1}
    estimator.history_['stage1_epochs'] = len(stage1['loss'])
    return estimator


def finish_classifier(estimator, validation, test, *, seed, n_train, output,
                      overwrite=False, training_seconds=None, epochs=15,
                      refine_epochs=0):
    """Calibrate, evaluate, write the model card and save the preset."""
    from ..training.fit import plot_history

    name = estimator.name
    temperature, ece_val_before, ece_val_after = calibrate_temperature(
        estimator, *validation, seed=seed)
    metrics = evaluate_classifier(estimator, *test, seed=seed)
    probabilities = metrics.pop('_probabilities')
    y = np.asarray(test[1]['label'])
    tables, figures = [], {}
    history = estimator.history_
    card = {
        'title': name,
        'summary': estimator.description,
        'reference': _REFERENCES[name],
        'command': (f'astrodl train {name} --n-train {n_train} --seed '
                    f'{seed} --epochs {epochs} --refine-epochs '
                    f'{refine_epochs} --output DIR'),
        'seed': seed,
        'training_data': {
            'simulator': f'astrodl_plugins.simulate.{_simulator(name).__name__}',
            'bands': ', '.join(BANDS) + ' (random subsets in training)',
            'n_train': n_train, 'train_seed': seed,
            'n_validation': len(validation[0]), 'validation_seed': seed + 1,
            'n_test': len(test[0]), 'test_seed': seed + 2,
            'stamp_size': estimator.stamp_size,
        },
        'valid_ranges': {key: list(value) for key, value
                         in estimator.ranges.items()},
        'training': {
            'epochs_run': len(history['loss']),
            'stage1_epochs': history.get('stage1_epochs',
                                         len(history['loss'])),
            'best_val_loss': float(np.min(history['val_loss'])),
            'seconds': training_seconds,
        },
        'calibration': {
            'temperature': temperature,
            'validation_ece_before': ece_val_before,
            'validation_ece_after': ece_val_after,
        },
    }
    summary = []
    for key, result in metrics.items():
        if not isinstance(result, dict):
            continue
        row = [key, result['accuracy'], result['ece_uncalibrated'],
               result['ece'], result['seconds_per_source'] * 1e3]
        if 'auc' in result:
            row += [result['auc'], result['auc_snr_gt_20']]
        summary.append(row)
    header = ['bands', 'accuracy', 'ECE (T=1)', 'ECE (calibrated)',
              'ms/source (T=50)']
    if len(estimator.classes) == 2:
        header += ['AUC', 'AUC S/N>20']
    tables.append({'title': 'Held-out metrics per band set', 'header': header,
                   'rows': summary})
    matrix = metrics['gri']['confusion']
    tables.append({'title': 'Confusion matrix, bands gri (rows: true, '
                            'columns: predicted)',
                   'header': ['true \\ predicted', *estimator.classes],
                   'rows': [[c, *row] for c, row in zip(estimator.classes,
                                                        matrix)]})
    by_snr_header = ['S/N', 'n', 'accuracy gri', 'accuracy r']
    rows = []
    for a, b in zip(metrics['gri']['by_snr'], metrics['r']['by_snr']):
        row = [f"{a['snr_min']}-{a['snr_max']}", a['n_sources'],
               a['accuracy'], b['accuracy']]
        if 'auc' in a:
            row += [a['auc'], b['auc']]
        rows.append(row)
    if len(estimator.classes) == 2:
        by_snr_header += ['AUC gri', 'AUC r']
        baseline = baseline_star_galaxy(*test)
        nominal = baseline_star_galaxy(*test, psf_beta=3.5)
        metrics['baseline_r'] = baseline
        metrics['baseline_r_fwhm_only'] = nominal
        by_snr_header += ['AUC photutils (r, FWHM only)',
                          'AUC photutils (r, FWHM + true beta)']
        for row, base, nom in zip(rows, baseline['by_snr'],
                                  nominal['by_snr']):
            row += [nom['auc'], base['auc']]
    tables.append({'title': 'Held-out metrics by S/N (reference band)',
                   'header': by_snr_header, 'rows': rows})
    card['metrics'] = metrics
    card['tables'] = tables
    estimator.card_ = card
    figures['reliability.png'] = ('Reliability diagram on the held-out set '
                                  '(calibrated probabilities).')
    if 'baseline_r' in metrics:
        figures['auc_vs_snr.png'] = ('ROC AUC against S/N: the CNN with '
                                     'three bands and with r alone, and '
                                     'the photutils concentration baseline.')
    card['figures'] = figures
    directory = Path(estimator.save(output, overwrite=overwrite))
    plot_history(history, directory / 'history.png', title=name)
    _plot_reliability({k: probabilities[k] for k in ('gri', 'r')}, y,
                      estimator.temperature_, directory / 'reliability.png',
                      name)
    if 'baseline_r' in metrics:
        _plot_auc(metrics, metrics['baseline_r'], directory / 'auc_vs_snr.png')
    return estimator


def train_star_galaxy(*, n_train=40_000, seed=1, output, **kwargs):
    """Train the star-galaxy preset (see `train_classifier`)."""
    return train_classifier('star-galaxy', n_train=n_train, seed=seed,
                            output=output, **kwargs)


def train_galaxy_morphology(*, n_train=40_000, seed=1, output, **kwargs):
    """Train the galaxy-morphology preset (see `train_classifier`)."""
    return train_classifier('galaxy-morphology', n_train=n_train, seed=seed,
                            output=output, **kwargs)
