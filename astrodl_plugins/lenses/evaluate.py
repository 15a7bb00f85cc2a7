# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Held-out metrics and figures of the lens estimators (model cards and
benchmarks).

Finder metrics follow the Strong Lens Finding Challenge (Metcalf et al.
2019): the ROC AUC, ``TPR0`` (the fraction of lenses scored above every
non-lens) and ``TPR10`` (above all but the nine highest non-lenses), and
the completeness at a false-positive rate of 1 % for the cut of Lanusse et
al. (2018), Einstein radius above 1.4 arcsec and lensed-source S/N above
20; each class of non-lens is reported on its own.
"""

import time

import numpy as np

from ..classification import network as cnet
from ..classification.evaluate import (
    expected_calibration_error,
    fit_temperature,
    mc_logits,
    mc_probabilities,
    roc_auc,
    roc_curve,
)
from .network import finder_channels

__all__ = ['FINDER_BAND_SETS', 'ARC_PIXELS_VISIBLE', 'findable',
           'finder_inputs',
           'calibrate_finder_temperature', 'finder_scores', 'finder_metrics',
           'evaluate_finder', 'calibrate_parameter_errors',
           'evaluate_parameters', 'plot_roc', 'plot_negatives',
           'plot_parameters']

#: Band sets on which the finder is evaluated.
FINDER_BAND_SETS = {'gri': ('g', 'r', 'i'), 'r': ('r',)}
#: The cut of Lanusse et al. (2018): theta_E > 1.4 arcsec, S/N > 20.
DEEPLENS_CUT = {'theta_e_arcsec': 1.4, 'snr': 20.0}
#: Metcalf et al. (2019) counted a simulated lens as a lens only if its
#: lensed images had at least this many pixels above 1 sigma of the noise
#: (the simulator's ``arc_pixels``).
ARC_PIXELS_VISIBLE = 20
THETA_EDGES = (0.5, 1.0, 1.4, 2.0, 3.0)
SNR_EDGES = (5, 10, 20, 50, 200)


def findable(truth):
    """
    The stamps a finder can be asked to get right: every non-lens, and
    the lenses whose arcs are visible (``arc_pixels`` at least
    `ARC_PIXELS_VISIBLE`, Metcalf et al. 2019). Every stamp when the
    truth has no ``arc_pixels``.
    """
    label = np.asarray(truth['label'])
    if 'arc_pixels' not in truth.colnames:
        return np.ones(len(label), bool)
    return (label == 1) | (np.asarray(truth['arc_pixels'])
                           >= ARC_PIXELS_VISIBLE)


def finder_inputs(estimator, images, truth, present):
    """The finder's network inputs of simulated g, r, i stamps."""
    arrays, npix = cnet.input_arrays(images, np.asarray(truth['psf_fwhm']))
    x, conditions = cnet.scaled_inputs(arrays, npix, present,
                                       estimator.scaling)
    return [finder_channels(x, getattr(estimator, 'colour_residual', False)),
            conditions]


def calibrate_finder_temperature(estimator, images, truth, *, n_samples=30,
                                 seed=0):
    """
    Fit ``estimator.temperature_`` on a validation set with random band
    subsets (the training mixture) and keep its class fractions as
    ``estimator.training_prior_`` (what ``class_prior`` is relative to);
    returns ``(temperature, ece_before, ece_after)``.
    """
    present = cnet.random_band_subsets(np.random.default_rng(seed),
                                       len(images))
    logits = mc_logits(estimator, finder_inputs(estimator, images, truth,
                                                present),
                       n_samples=n_samples, seed=seed)
    y = np.asarray(truth['label'])
    temperature = fit_temperature(logits, y)
    before = expected_calibration_error(mc_probabilities(logits, 1.0), y)
    after = expected_calibration_error(mc_probabilities(logits, temperature),
                                       y)
    estimator.temperature_ = float(temperature)
    estimator.training_prior_ = [float(np.mean(y == k))
                                 for k in range(len(estimator.classes))]
    return float(temperature), before, after


def finder_scores(estimator, images, truth, bands, *, n_samples=20, seed=0,
                  batch_size=256):
    """
    ``p_lens`` (MC mean of the calibrated probabilities) of simulated
    stamps seen in ``bands`` (a subset of the simulated g, r, i), and the
    seconds per source.
    """
    present = cnet.presence(bands, len(images))
    inputs = finder_inputs(estimator, images, truth, present)
    start = time.perf_counter()
    logits = mc_logits(estimator, inputs, n_samples=n_samples, seed=seed,
                       batch_size=batch_size)
    seconds = (time.perf_counter() - start) / len(images)
    probabilities = mc_probabilities(logits,
                                     getattr(estimator, 'temperature_', 1.0))
    return probabilities[:, 0], seconds


def _tpr_beyond(scores, positive, rank):
    """Fraction of positives scored above the ``rank``-th best negative."""
    negatives = np.sort(scores[~positive])[::-1]
    if len(negatives) <= rank:
        return 1.0 if positive.any() else np.nan
    return _above(scores[positive], negatives[rank])


def _above(scores, threshold):
    """Fraction of ``scores`` above ``threshold`` (NaN when empty)."""
    return float(np.mean(scores > threshold)) if len(scores) else np.nan


def finder_metrics(p_lens, truth):
    """
    Metcalf and DeepLens metrics of ``p_lens`` against the truth.

    Returns
    -------
    metrics : dict
        ``auc``, ``tpr0``, ``tpr10``, ``threshold_fpr1`` (the score of the
        1 % false-positive rate), ``tpr_fpr1`` (all lenses) and
        ``tpr_fpr1_cut`` (the DeepLens cut), ``auc_cut``, the same
        ``_visible`` (lenses with visible arcs, `findable`), ``by_kind``
        (false-positive rate at that threshold and mean ``p_lens`` per
        class of non-lens), ``by_theta_e`` and ``by_snr`` (completeness).
    """
    p = np.asarray(p_lens, np.float64)
    lens = np.asarray(truth['label']) == 0
    kind = np.asarray(truth['kind'])
    theta = np.asarray(truth['theta_e_arcsec'], np.float64)
    snr = np.asarray(truth['snr'], np.float64)
    cut = lens & (theta > DEEPLENS_CUT['theta_e_arcsec']) & (
        snr > DEEPLENS_CUT['snr'])
    threshold = float(np.quantile(p[~lens], 0.99))
    out = {'n_lenses': int(lens.sum()), 'n_non_lenses': int((~lens).sum()),
           'auc': roc_auc(lens, p), 'tpr0': _tpr_beyond(p, lens, 0),
           'tpr10': _tpr_beyond(p, lens, 9), 'threshold_fpr1': threshold,
           'tpr_fpr1': _above(p[lens], threshold),
           'n_cut': int(cut.sum())}
    select = cut | ~lens
    out['auc_cut'] = roc_auc(cut[select], p[select])
    out['tpr_fpr1_cut'] = _above(p[cut], threshold)
    out['tpr0_cut'] = _tpr_beyond(p[select], cut[select], 0)
    out['tpr10_cut'] = _tpr_beyond(p[select], cut[select], 9)
    # Metcalf et al. (2019): lenses with invisible arcs are not lenses;
    # here they are left out.
    visible = findable(truth)
    out['n_visible'] = int(np.sum(lens & visible))
    out['auc_visible'] = roc_auc(lens[visible], p[visible])
    out['tpr0_visible'] = _tpr_beyond(p[visible], lens[visible], 0)
    out['tpr10_visible'] = _tpr_beyond(p[visible], lens[visible], 9)
    out['tpr_fpr1_visible'] = _above(p[lens & visible], threshold)
    out['by_kind'] = [
        {'kind': name, 'n': int(np.sum(kind == name)),
         'fpr_at_threshold': _above(p[kind == name], threshold),
         'mean_p_lens': float(np.mean(p[kind == name])),
         'auc_vs_lenses': roc_auc(lens[(kind == name) | lens],
                                  p[(kind == name) | lens])}
        for name in sorted(set(kind[~lens]))]
    out['by_theta_e'] = [
        {'min': lo, 'max': hi, 'n': int(np.sum(lens & (theta >= lo)
                                                & (theta < hi))),
         'tpr_fpr1': _above(p[lens & (theta >= lo) & (theta < hi)],
                            threshold)}
        for lo, hi in zip(THETA_EDGES[:-1], THETA_EDGES[1:])]
    out['by_snr'] = [
        {'min': lo, 'max': hi, 'n': int(np.sum(lens & (snr >= lo)
                                                & (snr < hi))),
         'tpr_fpr1': _above(p[lens & (snr >= lo) & (snr < hi)],
                            threshold)}
        for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:])]
    return out


def evaluate_finder(estimator, images, truth, *, seed=0, n_samples=20):
    """
    `finder_metrics` for each band set of `FINDER_BAND_SETS`, with the
    seconds per source; the scores are kept under ``'_scores'``.
    """
    metrics, scores = {}, {}
    for key, bands in FINDER_BAND_SETS.items():
        p, seconds = finder_scores(estimator, images, truth, bands,
                                   n_samples=n_samples, seed=seed)
        metrics[key] = finder_metrics(p, truth)
        metrics[key]['seconds_per_source'] = seconds
        metrics[key]['n_samples'] = n_samples
        scores[key] = p
    metrics['_scores'] = scores
    return metrics


# -- lens parameters -------------------------------------------------------


def _parameter_errors(estimator, images, truth, *, n_samples, seed):
    """Table of predictions (pixels) and the truth's matching values."""
    table = estimator.predict_stamps(images, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=n_samples, seed=seed)
    centre = (estimator.stamp_size - 1) / 2
    true = {'theta_e': np.asarray(truth['theta_e'], np.float64),
            'e1': np.asarray(truth['e1']), 'e2': np.asarray(truth['e2']),
            'gamma1': np.asarray(truth['gamma1']),
            'gamma2': np.asarray(truth['gamma2']),
            'x_centroid': centre + np.asarray(truth['x_lens']),
            'y_centroid': centre + np.asarray(truth['y_lens'])}
    return table, true


def calibrate_parameter_errors(estimator, images, truth, *, n_samples=30,
                               seed=0):
    """
    Set ``estimator.error_scale_`` so that ``value +- _err`` covers 68 %
    of a validation set of lenses (one factor per output); returns it.
    """
    estimator.error_scale_ = {}
    table, true = _parameter_errors(estimator, images, truth,
                                    n_samples=n_samples, seed=seed)
    scales = {}
    for name in estimator.output_names:
        value = np.asarray(getattr(table[name], 'value', table[name]))
        err = np.asarray(getattr(table[f'{name}_err'], 'value',
                                 table[f'{name}_err']))
        ratio = np.abs(value - true[name]) / err
        ratio = ratio[np.isfinite(ratio)]
        scales[name] = float(np.quantile(ratio, 0.6827)) if ratio.size else 1.0
    estimator.error_scale_ = scales
    return dict(scales)


def evaluate_parameters(estimator, images, truth, *, n_samples=50, seed=0):
    """
    Held-out errors and 68 % coverage of each lens parameter, overall, for
    the DeepLens cut and per S/N bin; ``theta_e`` errors are fractional.
    """
    start = time.perf_counter()
    table, true = _parameter_errors(estimator, images, truth,
                                    n_samples=n_samples, seed=seed)
    seconds = (time.perf_counter() - start) / len(images)
    snr = np.asarray(truth['snr'], np.float64)
    theta = np.asarray(truth['theta_e_arcsec'], np.float64)
    cut = (theta > DEEPLENS_CUT['theta_e_arcsec']) & (
        snr > DEEPLENS_CUT['snr'])

    def summary(select):
        out = {'n': int(select.sum())}
        for name in estimator.output_names:
            value = np.asarray(getattr(table[name], 'value', table[name]))
            err = np.asarray(getattr(table[f'{name}_err'], 'value',
                                     table[f'{name}_err']))
            delta = value - true[name]
            if name == 'theta_e':
                delta = delta / true[name]
            out[name] = {'median_abs_error': float(np.median(np.abs(
                delta[select]))),
                'coverage_68': float(np.mean((np.abs(value - true[name])
                                              <= err)[select]))}
        out['median_abs_e_vector'] = float(np.median(np.hypot(
            np.asarray(table['e1']) - true['e1'],
            np.asarray(table['e2']) - true['e2'])[select]))
        out['median_abs_gamma_vector'] = float(np.median(np.hypot(
            np.asarray(table['gamma1']) - true['gamma1'],
            np.asarray(table['gamma2']) - true['gamma2'])[select]))
        return out

    everything = np.ones(len(images), bool)
    metrics = {'all': summary(everything), 'cut': summary(cut),
               'by_snr': [{'snr_min': lo, 'snr_max': hi,
                           **summary((snr >= lo) & (snr < hi))}
                          for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:])],
               'seconds_per_source': seconds, 'n_samples': n_samples}
    metrics['_table'] = table
    metrics['_true'] = true
    return metrics


# -- figures -------------------------------------------------------------------


def plot_roc(scores, truth, path, title=''):
    """ROC curves (log false-positive rate) of each band set, all and cut."""
    from matplotlib.figure import Figure

    lens = np.asarray(truth['label']) == 0
    cut = lens & (np.asarray(truth['theta_e_arcsec']) > 1.4) & (
        np.asarray(truth['snr']) > 20)
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.subplots()
    for key, p in scores.items():
        for subset, style, label in ((lens, '-', 'all lenses'),
                                     (cut, '--', 'theta_E > 1.4", S/N > 20')):
            select = subset | ~lens
            fpr, tpr = roc_curve(subset[select], p[select])
            axes.plot(np.maximum(fpr, 1e-5), tpr, style,
                      label=f'{key}: {label} (AUC '
                            f'{roc_auc(subset[select], p[select]):.4f})')
    axes.axvline(0.01, color='grey', lw=0.8, ls=':')
    axes.set_xscale('log')
    axes.set_xlim(1e-4, 1)
    axes.set_xlabel('false-positive rate')
    axes.set_ylabel('true-positive rate')
    axes.set_title(title)
    axes.legend(fontsize=7, loc='lower right')
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_negatives(metrics, path, title=''):
    """False-positive rate of each class of non-lens at the 1 % threshold."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 3.8))
    axes = figure.subplots()
    keys = list(metrics)
    kinds = [row['kind'] for row in metrics[keys[0]]['by_kind']]
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        rates = [row['fpr_at_threshold'] for row in metrics[key]['by_kind']]
        axes.bar(np.arange(len(kinds)) + j * width, np.asarray(rates) * 100,
                 width, label=f'bands {key}')
    axes.set_xticks(np.arange(len(kinds)) + width * (len(keys) - 1) / 2)
    axes.set_xticklabels(kinds, rotation=30, ha='right', fontsize=8)
    axes.set_ylabel('false positives at overall FPR 1 % (%)')
    axes.axhline(1.0, color='grey', lw=0.8, ls=':')
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_parameters(metrics, truth, path, title=''):
    """Predicted against true value of each lens parameter."""
    from matplotlib.figure import Figure

    table, true = metrics['_table'], metrics['_true']
    names = ('theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'x_centroid')
    figure = Figure(figsize=(10, 6))
    axes = figure.subplots(2, 3).ravel()
    snr = np.asarray(truth['snr'])
    for ax, name in zip(axes, names):
        value = np.asarray(getattr(table[name], 'value', table[name]))
        ax.scatter(true[name], value, s=2, c=np.log10(snr), cmap='viridis',
                   alpha=0.5)
        low, high = np.nanpercentile(true[name], [0.5, 99.5])
        ax.plot([low, high], [low, high], 'k-', lw=0.8)
        ax.set_xlabel(f'true {name}' + (' (pix)' if name in (
            'theta_e', 'x_centroid') else ''))
        ax.set_ylabel('predicted')
        cover = metrics['all'][name]['coverage_68']
        ax.set_title(f'{name}: median |err| '
                     f"{metrics['all'][name]['median_abs_error']:.3g}, "
                     f'68 % cov. {cover:.2f}', fontsize=8)
    figure.suptitle(title + ' (colour: log10 S/N)', fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
