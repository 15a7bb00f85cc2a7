# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Calibration and held-out metrics of the redshift estimator."""

import numpy as np

__all__ = ['redshift_metrics', 'calibrate_temperature', 'evaluate_redshifts',
           'ood_rates', 'plot_pred_vs_true', 'plot_posteriors']

#: Bands of continuum S/N per pixel and of emission-line S/N (the truth's
#: ``snr`` and ``line_snr``) of the card's tables.
SNR_BANDS = (1, 2, 3, 5, 10, 20, 50)
LINE_SNR_BANDS = (0, 5, 10, 30, 100, np.inf)
EW_BANDS = (0, 1, 10, 30, 100, np.inf)


def redshift_metrics(z, z_true, low=None, high=None):
    """
    sigma_NMAD of dz / (1 + z), outlier fraction and 68 % coverage.

    Parameters
    ----------
    z, z_true : array
        Estimated and true redshifts.
    low, high : array, optional
        The 68 % interval (``z_q16``, ``z_q84``).

    Returns
    -------
    metrics : dict
        ``n``, ``sigma_nmad`` (1.4826 times the median absolute deviation
        of ``dz / (1 + z_true)`` from its median), ``bias`` (its median),
        ``outlier_fraction`` (``|dz| > 0.01 (1 + z_true)``) and, with the
        interval, ``coverage_68``.

    Examples
    --------
    >>> m = redshift_metrics([1.0, 1.5, 2.0], [1.0, 1.5, 1.0])
    >>> m['n'], round(m['outlier_fraction'], 3)
    (3, 0.333)
    """
    z = np.asarray(z, np.float64)
    z_true = np.asarray(z_true, np.float64)
    dz = (z - z_true) / (1 + z_true)
    if not dz.size:
        return {'n': 0}
    median = np.median(dz)
    out = {'n': int(dz.size),
           'sigma_nmad': float(1.4826 * np.median(np.abs(dz - median))),
           'bias': float(median),
           'outlier_fraction': float(np.mean(np.abs(dz) > 0.01))}
    if low is not None:
        inside = (np.asarray(low) <= z_true) & (z_true <= np.asarray(high))
        out['coverage_68'] = float(np.mean(inside))
    return out


def _network_input(data):
    from .estimator import network_input

    flux, ivar, mask, _ = data
    return [network_input(flux, ivar, mask)]


def calibrate_temperature(estimator, validation, *, n_samples=10, seed=0,
                          n_max=3000):
    """
    Fit ``estimator.temperature_`` on validation spectra: the temperature
    minimizing the negative log-likelihood of the true bin under the MC-mean
    softmax (Guo et al. 2017, per draw).

    Returns
    -------
    dict
        ``temperature``, ``validation_nll_before`` and ``_after``.
    """
    from ..classification.network import softmax

    data = tuple(item[:n_max] for item in validation)
    logits = estimator.mc_engine().sample(_network_input(data), n_samples,
                                          seed=seed, batch_size=256)
    z = np.asarray(data[3]['z'])
    bins = np.clip(np.floor((z - estimator.z_min) / estimator.z_step)
                   .astype(int), 0, estimator.n_bins - 1)

    def nll(t):
        total = 0.0
        for start in range(0, len(bins), 250):
            rows = slice(start, start + 250)
            p = softmax(logits[rows], t).mean(1)
            total -= np.sum(np.log(np.clip(
                p[np.arange(len(p)), bins[rows]], 1e-12, None)))
        return total / len(bins)

    grid = np.geomspace(0.5, 4.0, 19)
    best = grid[np.argmin([nll(t) for t in grid])]
    fine = best * np.geomspace(0.92, 1.08, 9)
    temperature = float(fine[np.argmin([nll(t) for t in fine])])
    estimator.temperature_ = temperature
    return {'temperature': temperature, 'validation_nll_before': nll(1.0),
            'validation_nll_after': nll(temperature),
            'n_validation_spectra': len(bins)}


def _as_nddata(data):
    from astropy import units as u
    from astropy.nddata import InverseVariance, NDData

    from ..simulate.spectra import SPECTRUM_FLUX_UNIT, spectral_grid

    flux, ivar, mask, truth = data
    axis = spectral_grid(truth.meta.get('setup', 'nisp'))[0] * u.AA
    return [NDData(flux[i], uncertainty=InverseVariance(ivar[i]),
                   mask=mask[i], unit=SPECTRUM_FLUX_UNIT,
                   meta={'spectral_axis': axis}) for i in range(len(flux))]


def _band_rows(table, truth, key, bands, fmt):
    rows = []
    value = np.asarray(truth[key], np.float64)
    for low, high in zip(bands[:-1], bands[1:]):
        chosen = (value >= low) & (value < high)
        m = _metrics_of(table, truth, chosen)
        label = f'{fmt(low)}-{fmt(high)}' if np.isfinite(high) else \
            f'>={fmt(low)}'
        rows.append([label, m['n'], *(_fmt(m.get(k)) for k in (
            'sigma_nmad', 'outlier_fraction', 'coverage_68'))])
    return rows


def _fmt(value):
    return '' if value is None else f'{value:.4f}'


def _metrics_of(table, truth, chosen):
    chosen = np.asarray(chosen, bool) & np.isfinite(np.asarray(table['z']))
    return redshift_metrics(np.asarray(table['z'])[chosen],
                            np.asarray(truth['z'])[chosen],
                            np.asarray(table['z_q16'])[chosen],
                            np.asarray(table['z_q84'])[chosen])


def evaluate_redshifts(estimator, test, *, seed, n_samples=30):
    """
    Held-out metrics: the test spectra go through ``predict`` as NDData.

    Returns
    -------
    metrics : dict
        Overall and at continuum S/N >= 5: sigma_NMAD, outlier fraction,
        68 % coverage; the fraction flagged MULTIMODAL and its outlier
        fraction.
    tables : list of dict
        By continuum S/N, by emission-line S/N and by rest EW(Halpha).
    table : `~astropy.table.QTable`
        The predictions.
    """
    from astropy.table import vstack

    truth = test[3]
    spectra = _as_nddata(test)
    # In chunks: the MC draws of 900 bins for thousands of spectra would
    # not fit the memory budget at once.
    table = vstack([estimator.predict(spectra[start:start + 1000],
                                      n_samples=n_samples, seed=seed,
                                      batch_size=256)
                    for start in range(0, len(spectra), 1000)],
                   metadata_conflicts='silent')
    snr = np.asarray(truth['snr'])
    every = np.ones(len(truth), bool)
    metrics = {}
    for name, chosen in (('all', every), ('snr_ge_5', snr >= 5)):
        for key, value in _metrics_of(table, truth, chosen).items():
            metrics[f'{key}_{name}'] = value
    from ..core.flags import SourceFlags

    multimodal = (np.asarray(table['flag']) & SourceFlags.MULTIMODAL) > 0
    metrics['multimodal_fraction'] = float(np.mean(multimodal))
    clean = _metrics_of(table, truth, ~multimodal & (snr >= 5))
    metrics['outlier_fraction_snr_ge_5_not_multimodal'] = clean.get(
        'outlier_fraction')
    header = ['band', 'n', 'sigma_NMAD', 'outlier fraction', '68% coverage']
    tables = [
        {'title': 'Held-out spectra by continuum S/N per pixel',
         'header': header,
         'rows': _band_rows(table, truth, 'snr', SNR_BANDS, lambda v: f'{v:g}')},
        {'title': 'Held-out spectra by emission-line S/N (best line, '
                  'matched filter)', 'header': header,
         'rows': _band_rows(table, truth, 'line_snr', LINE_SNR_BANDS,
                            lambda v: f'{v:g}')},
        {'title': 'Held-out spectra by rest-frame EW(Halpha), Angstrom',
         'header': header,
         'rows': _band_rows(table, truth, 'ew_halpha', EW_BANDS,
                            lambda v: f'{v:g}')},
    ]
    return metrics, tables, table


def ood_rates(estimator, *, setup, seed, n=600):
    """
    Fractions of simulated stars and quasars flagged ``UNFAMILIAR`` (and of
    galaxies, the false alarms), on ``n`` spectra of each kind.
    """
    from ..core.flags import SourceFlags
    from ..simulate.spectra import simulate_spectrum_arrays

    out = {}
    for kind in ('star', 'qso', 'galaxy'):
        _, flux, ivar, mask, truth = simulate_spectrum_arrays(
            n, seed=seed, setup=setup, kinds=(kind,),
            snr_range=(5.0, 50.0))
        table = estimator.predict(_as_nddata((flux, ivar, mask, truth)),
                                  n_samples=10, seed=seed, batch_size=256)
        flagged = (np.asarray(table['flag']) & SourceFlags.UNFAMILIAR) > 0
        out[f'unfamiliar_fraction_{kind}_snr_ge_5'] = float(np.mean(flagged))
    return out


def plot_pred_vs_true(table, truth, path):
    """Estimated against true redshifts, and dz / (1 + z) against continuum S/N."""
    from matplotlib.figure import Figure

    z_true = np.asarray(truth['z'])
    z = np.asarray(table['z'])
    figure = Figure(figsize=(9, 4), layout='constrained')
    left, right = figure.subplots(1, 2)
    left.scatter(z_true, z, s=2, alpha=0.4)
    left.plot([z_true.min(), z_true.max()], [z_true.min(), z_true.max()],
              color='k', lw=0.8)
    left.set_xlabel('true z')
    left.set_ylabel('estimated z')
    right.scatter(np.asarray(truth['snr']), (z - z_true) / (1 + z_true),
                  s=2, alpha=0.4)
    right.set_xscale('log')
    right.set_ylim(-0.05, 0.05)
    right.axhline(0.01, color='r', lw=0.8)
    right.axhline(-0.01, color='r', lw=0.8)
    right.set_xlabel('continuum S/N per pixel')
    right.set_ylabel('dz / (1 + z)')
    figure.savefig(path, dpi=110)


def plot_posteriors(estimator, table, truth, path, n=6):
    """Posteriors of the first ``n`` held-out spectra, the truth marked."""
    from matplotlib.figure import Figure

    centres = estimator.z_centres()
    figure = Figure(figsize=(9, 5), layout='constrained')
    axes = figure.subplots(2, (n + 1) // 2).ravel()
    for k, ax in enumerate(axes[:n]):
        ax.plot(centres, np.asarray(table['posterior'][k]), lw=0.8)
        ax.axvline(float(truth['z'][k]), color='r', lw=0.8)
        ax.set_title(f"S/N {float(truth['snr'][k]):.1f}, "
                     f"p_multimodal {float(table['p_multimodal'][k]):.2f}",
                     fontsize=8)
        ax.set_xlabel('z')
    figure.savefig(path, dpi=110)
