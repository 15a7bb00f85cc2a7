# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipe that produces the shipped galaxy-structure preset.

``astrodl train galaxy-structure --n-train N --seed S --output DIR`` runs
`train_galaxy_structure`: simulate (seed S), validation (S + 1) and
held-out test (S + 2) sets; fit with augmentation and early stopping;
calibrate the ``_err`` scale on the validation set; measure the held-out
metrics; save the estimator with its model card and history plot.
"""

import time
from pathlib import Path

import numpy as np

from ..core.store import check_output_directory

__all__ = ['train_galaxy_structure', 'calibrate_errors', 'evaluate_structure']

_OUTPUTS = ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux')
_SNR_BINS = (10, 20, 50, 100, 300, 1000)
_COVERAGE = 0.6827
# Bins of estimated S/N in which the _err scale is calibrated.
_CALIBRATION_EDGES = (0.0, 15.0, 30.0, 60.0, 120.0, 300.0, 1e30)


def _errors(table, truth):
    """Signed errors of each output (circular for the position angle)."""
    out = {}
    for name in _OUTPUTS:
        pred = np.asarray(table[name].value, np.float64)
        true = np.asarray(truth[name], np.float64)
        if name == 'position_angle':
            out[name] = (pred - true + 90.0) % 180.0 - 90.0
        else:
            out[name] = pred - true
    return out


def calibrate_errors(estimator, stamps, truth, *, n_samples=50, seed=0,
                     batch_size=256, tta=False):
    """
    Fit scales so that ``|error| <= _err`` for 68.27 % of sources.

    One scale per output and per bin of the S/N estimated from the stamp
    (the network's own variance is too wide at high S/N and too narrow at
    low S/N without it).

    Sets ``estimator.error_scale_`` (``error_scale_tta_`` with
    ``tta=True``, for test-time augmentation) from a held-out (validation)
    set and returns the scales.
    """
    from .galaxy_structure import _snr

    attribute = 'error_scale_tta_' if tta else 'error_scale_'
    setattr(estimator, attribute, {})
    table = estimator.predict_stamps(stamps, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=n_samples, seed=seed,
                                     batch_size=batch_size, tta=tta)
    errors = _errors(table, truth)
    # The S/N the estimator will see: estimated from the stamp, not truth.
    snr_bin = np.digitize(_snr(np.asarray(stamps, np.float32), None),
                          _CALIBRATION_EDGES) - 1
    snr_bin = np.clip(snr_bin, 0, len(_CALIBRATION_EDGES) - 2)
    scales = {'snr_edges': list(_CALIBRATION_EDGES)}
    for name in _OUTPUTS:
        z = np.abs(errors[name]) / np.asarray(table[f'{name}_err'].value)
        round_shape = (name == 'position_angle') & (
            np.asarray(truth['axis_ratio']) >= 0.9)
        scales[name] = [
            float(np.nanquantile(z[(snr_bin == i) & ~round_shape], _COVERAGE))
            if np.sum((snr_bin == i) & ~round_shape) >= 20 else 1.0
            for i in range(len(_CALIBRATION_EDGES) - 1)]
    setattr(estimator, attribute, scales)
    return scales


def evaluate_structure(estimator, stamps, truth, *, n_samples=50, seed=0,
                       batch_size=256, tta=False):
    """
    Held-out metrics of a galaxy-structure estimator on simulated stamps.

    Returns
    -------
    metrics : dict
        ``snr_gt_50``: median relative errors of ``r_eff``, ``sersic_n``
        and ``flux``, median absolute errors of ``axis_ratio`` and of
        ``position_angle`` (q < 0.7), and 68 % interval coverage of each
        output; ``coverage_all``; ``by_snr``: the same medians per S/N
        bin; the median epistemic and aleatoric parts of each ``_err``
        (before calibration).
    """
    start = time.perf_counter()
    table = estimator.predict_stamps(stamps, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=n_samples, seed=seed,
                                     batch_size=batch_size,
                                     uncertainty_parts=True, tta=tta)
    seconds = time.perf_counter() - start
    errors = _errors(table, truth)
    snr = np.asarray(truth['snr'])
    q = np.asarray(truth['axis_ratio'])

    def medians(select):
        pa = select & (q < 0.7)
        result = {
            'n_sources': int(select.sum()),
            'median_abs_rel_err_r_eff': _median(np.abs(errors['r_eff'])
                                                / truth['r_eff'], select),
            'median_abs_rel_err_sersic_n': _median(
                np.abs(errors['sersic_n']) / truth['sersic_n'], select),
            'median_abs_err_axis_ratio': _median(
                np.abs(errors['axis_ratio']), select),
            'median_abs_err_position_angle_deg_q_lt_0.7': _median(
                np.abs(errors['position_angle']), pa),
            'median_abs_rel_err_flux': _median(
                np.abs(errors['flux']) / truth['flux'], select),
        }
        for name in _OUTPUTS:
            inside = np.abs(errors[name]) <= np.asarray(
                table[f'{name}_err'].value)
            chosen = pa if name == 'position_angle' else select
            result[f'coverage_68_{name}'] = _mean(inside, chosen)
        for name in _OUTPUTS:
            chosen = pa if name == 'position_angle' else select
            scale = (np.asarray(truth[name]) if name in ('sersic_n', 'r_eff',
                                                        'flux') else 1.0)
            for part in ('epistemic', 'aleatoric'):
                key = f'median_{part}_err_{name}'
                if name in ('sersic_n', 'r_eff', 'flux'):
                    key = f'median_relative_{part}_err_{name}'
                result[key] = _median(
                    table[f'{name}_err_{part}'].value / scale, chosen)
        return result

    everything = np.ones(len(snr), bool)
    bins = [{'snr_min': lo, 'snr_max': hi,
             **medians((snr >= lo) & (snr < hi))}
            for lo, hi in zip(_SNR_BINS[:-1], _SNR_BINS[1:])]
    return {
        'n_test': len(snr),
        'n_samples': n_samples,
        'seconds_per_galaxy': seconds / len(snr),
        'snr_gt_50': medians(snr > 50),
        'all': medians(everything),
        'by_snr': bins,
        'flag_fraction': float(np.mean(np.asarray(table['flag']) != 0)),
    }


def _median(values, select):
    values = np.asarray(values, np.float64)[select]
    return float(np.nanmedian(values)) if values.size else float('nan')


def _mean(values, select):
    values = np.asarray(values, np.float64)[select]
    return float(np.mean(values)) if values.size else float('nan')


def finish_galaxy_structure(estimator, validation, test, *, seed, command,
                            n_train, output, overwrite=False,
                            training_seconds=None):
    """Calibrate, evaluate, write the model card and save the preset."""
    from ..simulate.stamps import GALAXY_STRUCTURE_RANGES
    from ..training.fit import plot_history

    scales = calibrate_errors(estimator, *validation, seed=seed)
    scales_tta = calibrate_errors(estimator, *validation, seed=seed,
                                  n_samples=10, tta=True)
    metrics = evaluate_structure(estimator, *test, seed=seed)
    metrics_tta = evaluate_structure(estimator, *test, seed=seed,
                                     n_samples=10, tta=True)
    history = estimator.history_
    estimator.card_ = {
        'title': 'galaxy-structure',
        'summary': estimator.description,
        'reference': 'Tuccillo et al. 2018, MNRAS 475, 894',
        'command': command,
        'seed': seed,
        'training_data': {
            'simulator': 'astrodl_plugins.simulate.simulate_galaxy_stamps '
                         '(GalSim Sersic * Moffat PSF, sky + Poisson + read '
                         'noise, 30 % with a neighbour)',
            'n_train': n_train, 'train_seed': seed,
            'n_validation': len(validation[0]), 'validation_seed': seed + 1,
            'n_test': len(test[0]), 'test_seed': seed + 2,
            'stamp_size': estimator.stamp_size,
        },
        'valid_ranges': {key: list(value) for key, value
                         in GALAXY_STRUCTURE_RANGES.items()},
        'conventions': {
            'r_eff': 'half-light radius along the semi-major axis',
            'position_angle': 'deg; east of north with a celestial WCS, '
                              'else counter-clockwise from +x',
        },
        'training': {
            'epochs_run': len(history['loss']),
            'stage1_epochs': history.get('stage1_epochs',
                                         len(history['loss'])),
            'final_val_loss': float(history['val_loss'][-1]),
            'best_val_loss': float(np.min(history['val_loss'])),
            'seconds': training_seconds,
        },
        'error_scale': scales,
        'error_scale_tta': scales_tta,
        'metrics': metrics,
        'metrics_tta': metrics_tta,
    }
    directory = estimator.save(output, overwrite=overwrite)
    plot_history(history, Path(directory) / 'history.png',
                 title='galaxy-structure')
    return estimator


def train_galaxy_structure(*, n_train=100_000, seed=1, output,
                           n_validation=12_000, n_test=10_000, epochs=24,
                           refine_epochs=8, refine_learning_rate=3e-4,
                           cache_dir=None, overwrite=False, verbose=2):
    """
    Simulate, train, calibrate, evaluate and save galaxy-structure.

    Parameters
    ----------
    n_train : int, optional
        Training stamps (seed ``seed``).
    seed : int, optional
        Seed of everything: training set ``seed``, validation ``seed + 1``,
        held-out test ``seed + 2``, weights and augmentation ``seed``.
    output : path-like
        Directory of the saved preset.
    n_validation, n_test : int, optional
        Sizes of the validation and held-out test sets.
    epochs : int, optional
        Maximum epochs of stage 1 (learning rate 1e-3, cosine decay, early
        stopping with patience 5; the best weights are kept).
    refine_epochs : int, optional
        Epochs of stage 2, which continues from the best stage-1 weights
        with a new cosine decay from ``refine_learning_rate`` (the
        validation loss of stage 1 is noisy at its high learning rate, so
        its early stopping can fire while the model still improves).
    refine_learning_rate : float, optional
        Initial learning rate of stage 2.
    cache_dir : path-like, optional
        Keep the simulated sets there and reuse them.
    overwrite : bool, optional
        Replace an existing output directory.
    verbose : int, optional
        Keras verbosity.

    Returns
    -------
    estimator : `~astrodl_plugins.structure.GalaxyStructure`
    """
    from ..simulate.stamps import simulate_galaxy_stamps
    from ..training.datasets import cached_simulation
    from .galaxy_structure import GalaxyStructure

    output = check_output_directory(output, overwrite)

    def simulate(n, s):
        return cached_simulation(simulate_galaxy_stamps, n, s,
                                 cache_dir=cache_dir)

    train = simulate(n_train, seed)
    validation = simulate(n_validation, seed + 1)
    test = simulate(n_test, seed + 2)
    start = time.perf_counter()
    estimator = GalaxyStructure().fit(*train, validation_data=validation,
                                      epochs=epochs, seed=seed,
                                      verbose=verbose)
    stage1 = estimator.history_
    if refine_epochs:
        estimator.fit(*train, validation_data=validation,
                      epochs=refine_epochs,
                      learning_rate=refine_learning_rate,
                      patience=refine_epochs, seed=seed, verbose=verbose)
        estimator.history_ = {key: stage1[key] + estimator.history_[key]
                              for key in stage1}
        estimator.history_['stage1_epochs'] = len(stage1['loss'])
    seconds = time.perf_counter() - start
    command = (f'astrodl train galaxy-structure --n-train {n_train} '
               f'--seed {seed} --epochs {epochs} --refine-epochs '
               f'{refine_epochs} --output DIR')
    return finish_galaxy_structure(
        estimator, validation, test, seed=seed, command=command,
        n_train=n_train, output=output, overwrite=overwrite,
        training_seconds=seconds)
