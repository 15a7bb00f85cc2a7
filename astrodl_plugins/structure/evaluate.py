# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Calibration and held-out metrics of a galaxy-structure estimator.

`calibrate_errors` fits the ``_err`` scales on a validation set;
`evaluate_structure` measures the model card's metrics on a test set.
Both take simulated stamps and their truth table (``sersic_n``,
``r_eff``, ``axis_ratio``, ``position_angle``, ``flux``, ``psf_fwhm``,
``snr``). `plot_card_figures` draws the card's figures of a held-out set;
`write_card_figures` remakes them for the shipped preset from a
fixed-seed simulation (``python benchmarks/gallery.py --cards`` remakes
every card's figures).
"""

import time

import numpy as np

from .network import OUTPUT_NAMES, stamp_snr

__all__ = ['calibrate_errors', 'evaluate_structure', 'plot_card_figures',
           'write_card_figures']

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


# -- model-card figures --------------------------------------------------------

#: Outputs whose errors the figures show relative to the true value.
_RELATIVE = ('sersic_n', 'r_eff', 'flux')
_LABELS = {'sersic_n': 'n', 'r_eff': 'r_eff (pix)', 'axis_ratio': 'q',
           'position_angle': 'PA (deg)', 'flux': 'flux'}


def plot_card_figures(estimator, stamps, truth, directory, *, n_samples=20,
                      seed=0):
    """
    Draw ``pred_vs_true.png``, ``residual_vs_snr.png`` and
    ``coverage.png`` of a held-out set into ``directory``.

    Parameters
    ----------
    estimator : `~astrodl_plugins.structure.GalaxyStructure`
        Fitted or loaded.
    stamps, truth : array, `~astropy.table.Table`
        Simulated stamps and their truth
        (`~astrodl_plugins.simulate.simulate_galaxy_stamps`).
    directory : path-like
        Where the PNG files go.
    n_samples, seed : int, optional
        MC-dropout samples and their seed.

    Returns
    -------
    paths : list of `~pathlib.Path`
    """
    from pathlib import Path

    directory = Path(directory)
    table = estimator.predict_stamps(stamps, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=n_samples, seed=seed)
    errors = _errors(table, truth)
    snr = np.asarray(truth['snr'], np.float64)
    paths = [directory / name for name in (
        'pred_vs_true.png', 'residual_vs_snr.png', 'coverage.png')]
    _plot_pred_vs_true(table, truth, snr, paths[0])
    _plot_residuals(errors, truth, snr, paths[1])
    _plot_coverage(table, errors, truth, snr, paths[2])
    return paths


def _figure(n_columns=5, height=2.9):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.7 * n_columns, height), layout='constrained')
    return figure, figure.subplots(1, n_columns)


def _plot_pred_vs_true(table, truth, snr, path):
    figure, axes = _figure()
    for ax, name in zip(axes, OUTPUT_NAMES):
        true = np.asarray(truth[name], np.float64)
        pred = np.asarray(table[name].value, np.float64)
        points = ax.scatter(true, pred, c=np.log10(snr), s=2, cmap='viridis',
                            vmin=1, vmax=3, rasterized=True)
        low, high = np.nanmin(true), np.nanmax(true)
        ax.plot([low, high], [low, high], 'k:', lw=1)
        if name in ('r_eff', 'flux'):
            _log_axes(ax, 'xy')
        ax.set_xlabel(f'true {_LABELS[name]}')
        ax.set_ylabel(f'predicted {_LABELS[name]}')
    figure.colorbar(points, ax=axes[-1], label='log10 S/N')
    figure.suptitle(f'galaxy-structure: held-out simulations ({len(snr)} '
                    'galaxies)')
    figure.savefig(path, dpi=80)


def _log_axes(ax, axis='x'):
    """Log scale without the crowded minor-tick labels."""
    from matplotlib.ticker import NullFormatter

    for name in axis:
        getattr(ax, f'set_{name}scale')('log')
        getattr(ax, f'{name}axis').set_minor_formatter(NullFormatter())


def _bin_stats(snr, values, edges=_SNR_BINS):
    mid, rows = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = values[(snr >= lo) & (snr < hi) & np.isfinite(values)]
        if chosen.size >= 5:
            mid.append(np.sqrt(lo * hi))
            rows.append(np.percentile(chosen, [16, 50, 84]))
    return np.asarray(mid), np.asarray(rows).reshape(-1, 3)


def _plot_residuals(errors, truth, snr, path):
    figure, axes = _figure()
    for ax, name in zip(axes, OUTPUT_NAMES):
        residual = errors[name]
        label = f'delta {_LABELS[name]}'
        if name in _RELATIVE:
            residual = residual / np.asarray(truth[name], np.float64)
            label = f'delta {_LABELS[name].split()[0]} / true'
        ax.scatter(snr, residual, s=1, c='0.6', rasterized=True)
        mid, rows = _bin_stats(snr, residual)
        ax.plot(mid, rows[:, 1], 'o-', color='tab:red', ms=3)
        ax.fill_between(mid, rows[:, 0], rows[:, 2], color='tab:red',
                        alpha=0.25)
        ax.axhline(0, color='k', lw=0.8)
        spread = np.nanpercentile(np.abs(residual), 98)
        ax.set_ylim(-spread, spread)
        _log_axes(ax)
        ax.set_xlabel('S/N')
        ax.set_ylabel(label)
    figure.suptitle('galaxy-structure residuals against S/N (median, '
                    '16-84 %)')
    figure.savefig(path, dpi=80)


def _plot_coverage(table, errors, truth, snr, path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.6), layout='constrained')
    ax = figure.add_subplot()
    elongated = np.asarray(truth['axis_ratio']) < 0.7
    for name in OUTPUT_NAMES:
        inside = (np.abs(errors[name])
                  <= np.asarray(table[f'{name}_err'].value)).astype(float)
        chosen = elongated if name == 'position_angle' else np.ones_like(
            elongated)
        mid, rows = _bin_stats(snr[chosen], inside[chosen])
        fraction = [np.mean(inside[chosen & (snr >= lo) & (snr < hi)])
                    for lo, hi in zip(_SNR_BINS[:-1], _SNR_BINS[1:])
                    if np.sum(chosen & (snr >= lo) & (snr < hi)) >= 5]
        label = _LABELS[name] + (' (q < 0.7)' if name == 'position_angle'
                                 else '')
        ax.plot(mid, fraction, 'o-', ms=4, label=label)
    ax.axhspan(0.60, 0.76, color='0.85', label='target 0.60-0.76')
    ax.axhline(_COVERAGE, color='k', lw=0.8, ls=':')
    _log_axes(ax)
    ax.set_ylim(0.4, 0.9)
    ax.set_xlabel('S/N')
    ax.set_ylabel('fraction with |error| <= _err')
    ax.set_title('galaxy-structure: 68 % interval coverage')
    ax.legend(fontsize=7, ncol=2, loc='lower right')
    figure.savefig(path, dpi=80)


def write_card_figures(directory=None, *, n_stamps=2000, seed=3,
                       n_samples=20, estimator=None):
    """
    Simulate a held-out set and draw the card's figures.

    The default seed is the recipe's test seed (training seed 1 + 2).

    Parameters
    ----------
    directory : path-like, optional
        Default: the shipped preset's directory.
    n_stamps, seed : int, optional
        Size and seed of the `~astrodl_plugins.simulate.simulate_galaxy_stamps`
        set.
    n_samples : int, optional
        MC-dropout samples.
    estimator : `~astrodl_plugins.structure.GalaxyStructure`, optional
        Default: the shipped ``galaxy-structure`` preset.

    Returns
    -------
    paths : list of `~pathlib.Path`
    """
    from ..core.store import MODELS_DIR
    from ..simulate.structure import simulate_galaxy_stamps
    from .estimator import GalaxyStructure

    if estimator is None:
        estimator = GalaxyStructure.from_preset('galaxy-structure')
    directory = MODELS_DIR / 'galaxy-structure' if directory is None \
        else directory
    stamps, truth = simulate_galaxy_stamps(n_stamps, seed=seed)
    return plot_card_figures(estimator, stamps, truth, directory,
                             n_samples=n_samples, seed=seed)


def _median(values, select):
    values = np.asarray(values, np.float64)[select]
    return float(np.nanmedian(values)) if values.size else float('nan')


def _mean(values, select):
    values = np.asarray(values, np.float64)[select]
    return float(np.mean(values)) if values.size else float('nan')
