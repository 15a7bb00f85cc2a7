# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training recipe of the ``deblender`` preset (``astrodl train deblender``)."""

import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ['train_deblender', 'finish_deblender', 'tune_threshold']


def _stamp_heatmaps(truth, size):
    """Heat-map targets of the stamps: every member inside each stamp."""
    from ._network import heatmap

    out = np.empty((len(truth), size, size, 1), np.float32)
    xs = np.column_stack([np.asarray(truth['x']),
                          np.asarray(truth['others_x'])])
    ys = np.column_stack([np.asarray(truth['y']),
                          np.asarray(truth['others_y'])])
    for i in range(len(truth)):
        out[i, ..., 0] = heatmap(xs[i], ys[i], (size, size))
    return out


def _dihedral_pair(inputs, targets, rng):
    """The same random rotation/flip of inputs and (image) targets."""
    from ..training.augment import random_dihedral

    n_in = inputs.shape[-1]
    both, _, _ = random_dihedral(np.concatenate([inputs, targets], -1), rng)
    return both[..., :n_in], both[..., n_in:]


def train_detector(estimator, train, validation, *, epochs, seed,
                   verbose=2):
    """Fit the centre detector on blend stamps; returns its history."""
    import keras

    from ..training.fit import fit_network
    from ._network import build_detector, detector_inputs

    def arrays(split):
        stamps, _, truth = split
        sigma = np.asarray(truth['noise_sigma'])[:, None, None]
        return (detector_inputs(stamps, sigma)[..., None],
                _stamp_heatmaps(truth, stamps.shape[1]))

    def prepare(inputs, targets, rng):
        x, y = _dihedral_pair(inputs[0], targets, rng)
        return [x], y

    x_train, y_train = arrays(train)
    x_val, y_val = arrays(validation)
    estimator.detector_ = build_detector(tuple(estimator.detector_widths))
    def loss(y_true, y_pred):
        # Centres are a few pixels in thousands: weight them up.
        bce = keras.ops.binary_crossentropy(y_true, y_pred, from_logits=True)
        weight = 1.0 + 20.0 * y_true
        return keras.ops.mean(weight * bce)

    return fit_network(estimator.detector_, ([x_train], y_train),
                       ([x_val], y_val), loss=loss, epochs=epochs,
                       batch_size=64, learning_rate=3e-3, patience=4,
                       seed=seed, prepare=prepare, verbose=verbose)


def _extractor_arrays(split, rng, jitter):
    """Extractor inputs (marker jittered by ``jitter`` px) and targets."""
    from ._network import extractor_inputs

    stamps, models, truth = split
    x = np.asarray(truth['x']) + rng.normal(0, jitter, len(truth))
    y = np.asarray(truth['y']) + rng.normal(0, jitter, len(truth))
    inputs, scale = extractor_inputs(stamps, np.asarray(truth['noise_sigma']),
                                     x, y)
    targets = (models / scale[:, None, None])[..., None].astype(np.float32)
    return inputs, targets


def train_extractor(estimator, train, validation, *, epochs, seed,
                    verbose=2):
    """Fit the per-source extractor on blend stamps; returns its history."""
    import keras

    from ..training.fit import fit_network
    from ._network import build_extractor

    rng = np.random.default_rng(seed)
    # Markers are jittered by the detector's typical centring error.
    x_train, y_train = _extractor_arrays(train, rng, 0.3)
    x_val, y_val = _extractor_arrays(validation, rng, 0.3)
    size = estimator.stamp_size

    def prepare(inputs, targets, batch_rng):
        x, y = _dihedral_pair(inputs[0], targets, batch_rng)
        return [x], y.reshape(len(y), size * size)

    def prepare_validation(inputs, targets, batch_rng):
        return inputs, targets.reshape(len(targets), size * size)

    estimator.model_ = build_extractor(size, tuple(estimator.widths),
                                       estimator.dropout)
    return fit_network(estimator.model_, ([x_train], y_train),
                       ([x_val], y_val), loss=keras.losses.MeanSquaredError(),
                       epochs=epochs, batch_size=64, learning_rate=2e-3,
                       patience=4, seed=seed, prepare=prepare,
                       prepare_validation=prepare_validation,
                       verbose=verbose)


def train_deblender(*, n_train=12000, n_validation=2000, seed=1,
                    epochs=12, detector_epochs=10, output=None,
                    cache_dir=None, overwrite=False, n_fields=4, verbose=2):
    """
    Train the ``deblender`` preset from simulated blends.

    Parameters
    ----------
    n_train, n_validation : int, optional
        Training and validation blends (each of 2-4 members, plus 15 %
        isolated sources); the validation set uses ``seed + 1``.
    seed : int, optional
        Seed of the training set, weights and augmentation.
    epochs, detector_epochs : int, optional
        Maximum epochs of the extractor and the detector (early stopping
        on the validation loss).
    output : path-like, optional
        Save the preset there (refused if it exists and is not empty,
        unless ``overwrite``).
    cache_dir : path-like, optional
        Cache of the simulations.
    n_fields : int, optional
        1024 x 1024 blend fields for the calibration of ``flux_err``
        (seeds ``1000 * (seed + 1) + k``) and as many for the held-out
        test against photutils (seeds ``1000 * (seed + 2) + k``).

    Returns
    -------
    estimator : `~astrodl_plugins.deblending.Deblender`
    """
    from ..core.store import check_output_directory
    from ..simulate import simulate_blend_stamps
    from ..training.datasets import cached_simulation
    from .deblender import Deblender

    if output is not None:
        check_output_directory(output, overwrite)
    def simulate(n, s):
        # 15 % isolated sources, so that the detector learns not to split.
        return cached_simulation(simulate_blend_stamps, n, s,
                                 cache_dir=cache_dir, single_fraction=0.15)

    train = simulate(n_train, seed)
    validation = simulate(n_validation, seed + 1)
    estimator = Deblender()
    detector_history = train_detector(estimator, train, validation,
                                      epochs=detector_epochs, seed=seed,
                                      verbose=verbose)
    history = train_extractor(estimator, train, validation, epochs=epochs,
                              seed=seed, verbose=verbose)
    estimator.history_ = {'detector': detector_history,
                           'extractor': history}
    estimator.card_ = {
        'command': (f'astrodl train deblender --n-train {n_train} --seed '
                    f'{seed} --epochs {epochs} --output DIR'),
        'seed': seed,
        'training_data': {'blends': n_train, 'validation_blends':
                          n_validation, 'member_stamps': len(train[0])},
    }
    return finish_deblender(estimator, seed=seed, n_fields=n_fields,
                            output=output, overwrite=overwrite)


def tune_threshold(estimator, seeds, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7,
                                                 0.8)):
    """
    The detector threshold, chosen on validation blend fields: the lowest
    (most complete) one whose over-splitting is no worse than photutils'
    on the same fields; if none is, the one that over-splits least.

    Returns
    -------
    threshold : float
    sweep : list of dict
        ``threshold``, ``recall``, ``over_splitting`` and photutils'.
    """
    from .evaluate import evaluate_fields

    sweep = []
    for threshold in thresholds:
        estimator.threshold_ = threshold
        result = evaluate_fields(estimator, seeds, n_samples=0)
        ours, theirs = result['ours'][-1], result['photutils'][-1]
        sweep.append({'threshold': threshold,
                      'recall': float(ours['recall']),
                      'over_splitting': float(ours['over_splitting']),
                      'recall_photutils': float(theirs['recall']),
                      'over_splitting_photutils': float(
                          theirs['over_splitting'])})
    good = [row for row in sweep
            if row['over_splitting'] <= row['over_splitting_photutils']]
    best = (min(good, key=lambda row: row['threshold']) if good
            else min(sweep, key=lambda row: row['over_splitting']))
    return best['threshold'], sweep


def finish_deblender(estimator, *, seed, n_fields=4, output=None,
                     overwrite=False, n_samples=20):
    """
    Calibrate ``flux_err``, measure the held-out metrics against
    photutils, write the model card and save the preset.
    """
    from ..simulate import BLEND_RANGES
    from .evaluate import evaluate_fields

    validation_seeds = [1000 * (seed + 1) + k for k in range(n_fields)]
    # Uncalibrated errors until the scale is fitted below.
    estimator.flux_error_scale_ = 1.0
    estimator.threshold_, sweep = tune_threshold(estimator, validation_seeds)
    calibration = evaluate_fields(estimator, validation_seeds,
                                  n_samples=n_samples)
    z = calibration['z']
    z = z[np.isfinite(z)]
    scale = float(np.quantile(np.abs(z), 0.683)) if z.size else 1.0
    estimator.flux_error_scale_ = scale
    test = evaluate_fields(estimator,
                           [1000 * (seed + 2) + k for k in range(n_fields)],
                           n_samples=n_samples)
    ours, theirs = test['ours'], test['photutils']
    header = ['separation (r_eff)', 'true sources', 'recall', 'recall (photutils)',
              'over-splitting', 'over-splitting (photutils)',
              'median |dF|/F', 'median |dF|/F (photutils)', 'flux coverage 68 %']
    rows = []
    for a, b in zip(ours, theirs):
        name = (f"{a['separation_min']:g}-{a['separation_max']:g}"
                if np.isfinite(a['separation_max'])
                else f">= {a['separation_min']:g}")
        if a['separation_min'] == 0 and not np.isfinite(a['separation_max']):
            name = 'all'
        rows.append([name, int(a['n_true']), float(a['recall']),
                     float(b['recall']), float(a['over_splitting']),
                     float(b['over_splitting']),
                     float(a['flux_error_median']),
                     float(b['flux_error_median']),
                     float(a['coverage_68'])])
    total_a, total_b = ours[-1], theirs[-1]
    card = dict(getattr(estimator, 'card_', {}))
    card.update({
        'title': 'deblender',
        'summary': estimator.description,
        'reference': 'Boucaud et al. 2020, MNRAS 491, 2481',
        'valid_ranges': {key: (list(value) if isinstance(value, tuple)
                               else value)
                         for key, value in BLEND_RANGES.items()},
        'conventions': {
            'flux': 'data units; the data inside the parent segment shared '
                    'in proportion to the models, plus the model wings '
                    'beyond it',
            'separation': 'to the nearest other member, in the larger '
                          'r_eff (stars: half the PSF FWHM)',
            'detection': 'photutils detect_sources on the image smoothed '
                         'by a 3-pixel FWHM Gaussian, 1.5 sigma, 5 pixels',
        },
        'error_scale': {'flux': scale},
        'metrics': {'all': {
            'recall': float(total_a['recall']),
            'recall_photutils': float(total_b['recall']),
            'over_splitting': float(total_a['over_splitting']),
            'over_splitting_photutils': float(total_b['over_splitting']),
            'flux_error_median': float(total_a['flux_error_median']),
            'flux_error_median_photutils': float(
                total_b['flux_error_median']),
            'flux_coverage_68': float(total_a['coverage_68']),
            'threshold': float(estimator.threshold_),
            'seconds': test['seconds']['ours'],
            'seconds_photutils': test['seconds']['photutils'],
            'n_fields': test['n_fields'], 'n_sources': test['n_sources'],
            'n_samples': n_samples}},
        'tables': [{'title': f"Held-out blend fields ({test['n_fields']} "
                             f"of 1024 x 1024 pixels, {test['n_sources']} "
                             'sources), against photutils deblend_sources '
                             'on the same detection',
                    'header': header, 'rows': rows},
                   {'title': 'Detector threshold, chosen on validation '
                             'fields (the lowest whose over-splitting is no '
                             "worse than photutils')",
                    'header': ['threshold', 'recall', 'over-splitting',
                               'recall (photutils)',
                               'over-splitting (photutils)'],
                    'rows': [[row['threshold'], row['recall'],
                              row['over_splitting'], row['recall_photutils'],
                              row['over_splitting_photutils']]
                             for row in sweep]}],
    })
    estimator.card_ = card
    if output is not None:
        from ..training.fit import plot_history

        with tempfile.TemporaryDirectory() as scratch:
            history = getattr(estimator, 'history_', {}).get('extractor')
            figures = {}
            if history:
                plot_history(history, Path(scratch) / 'history.png',
                             title='deblender extractor')
                figures['history.png'] = 'Training history of the extractor.'
            _plot_example(estimator, Path(scratch) / 'example.png',
                          seed=1000 * (seed + 2))
            figures['example.png'] = (
                'A held-out blend field: data, photutils children, ours, '
                'and the data minus our models.')
            estimator.card_['figures'] = figures
            estimator.save(output, overwrite=overwrite)
            for name in figures:
                shutil.copy(Path(scratch) / name, Path(output) / name)
    return estimator


def _plot_example(estimator, path, seed):
    """Four panels of a 224-pixel held-out field (four blends)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from astropy.visualization import simple_norm

    from ..simulate import simulate_blend_field
    from .evaluate import detect, photutils_deblend

    image, truth, sigma = simulate_blend_field(seed=seed, shape=(224, 224))
    segm, convolved = detect(image, sigma)
    _, _, _, _, theirs = photutils_deblend(image, convolved, segm)
    result = estimator.deblend(image, segm, 5, n_samples=0, seed=0)
    residual = image - result.model_image(image.shape)
    norm = simple_norm(image, 'asinh', percent=99.5)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    panels = [(image, 'data', norm), (theirs, 'photutils deblend_sources',
                                      None),
              (result.segmentation_image, 'deblender', None),
              (residual, 'data - models', norm)]
    for ax, (panel, title, pnorm) in zip(axes, panels):
        if hasattr(panel, 'make_cmap'):
            ax.imshow(panel.data, origin='lower', interpolation='nearest',
                      cmap=panel.make_cmap(seed=1))
        else:
            ax.imshow(panel, origin='lower', cmap='gray', norm=pnorm)
        ax.plot(truth['x'], truth['y'], 'r+', ms=6)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
