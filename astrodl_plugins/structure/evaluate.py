# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Calibration and held-out metrics of a galaxy-structure estimator.

`calibrate_errors` fits the ``_err`` scales on a validation set;
`evaluate_structure` measures the model card's metrics on a test set.
Both take simulated stamps and their truth table (``sersic_n``,
``r_eff``, ``axis_ratio``, ``position_angle``, ``flux``, ``psf_fwhm``,
``snr``).
"""

import time

import numpy as np

from .network import OUTPUT_NAMES, stamp_snr

__all__ = ['calibrate_errors', 'evaluate_structure']

_SNR_BINS = (10, 20, 50, 100, 300, 1000)
_COVERAGE = 0.6827
# Bins of estimated S/N in which the _err scale is calibrated.
_CALIBRATION_EDGES = (0.0, 15.0, 30.0, 60.0, 120.0, 300.0, 1e30)


def _errors(table, truth):
    """Signed errors of each output (circular for the position angle)."""
    out = {}
    for name in OUTPUT_NAMES:
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
    attribute = 'error_scale_tta_' if tta else 'error_scale_'
    setattr(estimator, attribute, {})
    table = estimator.predict_stamps(stamps, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=n_samples, seed=seed,
                                     batch_size=batch_size, tta=tta)
    errors = _errors(table, truth)
    # The S/N the estimator will see: estimated from the stamp, not truth.
    snr_bin = np.digitize(stamp_snr(np.asarray(stamps, np.float32)),
                          _CALIBRATION_EDGES) - 1
    snr_bin = np.clip(snr_bin, 0, len(_CALIBRATION_EDGES) - 2)
    scales = {'snr_edges': list(_CALIBRATION_EDGES)}
    for name in OUTPUT_NAMES:
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
        for name in OUTPUT_NAMES:
            inside = np.abs(errors[name]) <= np.asarray(
                table[f'{name}_err'].value)
            chosen = pa if name == 'position_angle' else select
            result[f'coverage_68_{name}'] = _mean(inside, chosen)
        for name in OUTPUT_NAMES:
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
