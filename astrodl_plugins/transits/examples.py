# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Training examples for the vetter: simulated light curves -> the views of
the candidates a search finds in them, with labels.

Signals injected by the simulator (planets, eclipsing binaries, blended
binaries) are found by a box search over a narrow period range around
their true period (and half of it for binaries, whose two eclipses a
search folds together), with the star's other signals masked: the
candidate then has the ephemeris, duration and depth errors of a real
search at a fraction of its cost. A candidate that does not fold the
signal's transits together (the narrow search caught noise or residual
variability instead) is left out rather than labelled. Light
curves with no periodic signal (stellar variability, noise) go through
the full search (`~astrodl_plugins.transits.search.search_transits`):
the signals it finds are the noise TCEs the vetter must reject.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import search

__all__ = ['candidate_examples', 'clean_arrays', 'flatten_curve',
           'match_candidate', 'LABELS']

#: Kind of injected signal -> class of the vetter.
LABELS = {'planet': 'planet', 'eb': 'false_positive',
          'beb': 'false_positive', 'variable': 'false_positive',
          'noise': 'false_positive'}


def clean_arrays(curve):
    """Good cadences of a simulated curve: ``(time, relative flux)``."""
    from ..core.series import QUALITY_IGNORED

    good = (np.isfinite(curve['time']) & np.isfinite(curve['flux'])
            & ((np.asarray(curve['quality'], np.int64) & ~QUALITY_IGNORED)
               == 0))
    time, flux = curve['time'][good], curve['flux'][good]
    return time, flux / np.median(flux)


def flatten_curve(time, flux, window=1.0):
    """The detrended, clipped flux `search_transits` searches."""
    return _flatten(time, flux, window)[0]


def _flatten(time, flux, window=1.0):
    flat, _, used = search.detrend(time, flux, window=window)
    return search.clip_flat(flat), used


def _remeasured(time, flux, used, candidate, others):
    """
    The flux detrended again with the candidate's and the star's other
    signals' transits left out of the trend, the others masked, and the
    candidate measured again on it -- as `search_transits` ends.
    """
    ephemeris = (candidate.period, candidate.t0, candidate.duration)
    flat = search.clip_flat(search.detrend_as(
        time, flux, used,
        mask=search.transit_windows(time, [ephemeris] + others))[0])
    flat = search.mask_transits(time, flat, others, keep=ephemeris)
    good = np.isfinite(flat)
    stats = search.measure_candidate(time[good], flat[good], *ephemeris,
                                     search.robust_std(flat[good]))
    if stats['depth'] > 0 and stats['n_transits'] > 0:
        candidate.depth, candidate.snr = stats['depth'], stats['snr']
        candidate.n_transits = stats['n_transits']
        candidate.extra.update(stats)
    return flat


def _narrow(time, flat, period, *, width=0.003, n=120, min_transits=2):
    """A candidate from a box search within ``width`` of ``period``."""
    good = np.isfinite(flat)
    t, f = time[good], flat[good]
    if len(t) < 50:
        return None
    periods = period * np.linspace(1 - width, 1 + width, n)
    best = search.box_search(t, f, periods, peak='power')
    p, t0, duration, _, _ = best
    sigma = search.robust_std(f)
    stats = search.measure_candidate(t, f, p, t0, duration, sigma)
    p, t0, stats = search.resolve_half_period(t, f, p, t0, duration, sigma,
                                              stats,
                                              min_transits=min_transits)
    if stats['n_transits'] < min_transits or stats['depth'] <= 0:
        return None
    # The SDE of a full search is not known here: NaN (not a network input).
    return search.Candidate(p, t0, duration, stats['depth'], stats['snr'],
                            np.nan, stats['n_transits'], 1, stats)


def _on_signal(candidate, signal, baseline):
    """
    Whether a candidate folds the signal's transits together: its epoch
    within half a transit duration of one of the signal's eclipses and
    its period error moving the last transit by less than that.
    """
    true, t0 = signal['period'], signal['t0']
    half = 0.5 * signal['duration']
    periods = (true, true / 2) if signal['kind'] in ('eb', 'beb') else (
        true,)
    for period in periods:  # a binary's two eclipses fold at P / 2
        k = np.round(candidate.period / period)
        if k not in (1, 2) or (k == 2 and period == true):
            continue
        drift = abs(candidate.period - k * period) * baseline / (k * period)
        offset = (candidate.t0 - t0 + 0.5 * period) % period - 0.5 * period
        if drift < half and abs(offset) < half:
            return True
    return False


def _curve_examples(job):
    """Examples of one light curve (run in a worker)."""
    curve, signals, min_snr, n_global, n_local = job
    time, flux = clean_arrays(curve)
    flat, used = _flatten(time, flux)
    baseline = float(time.max() - time.min()) if len(time) else 0.0
    found = []
    if signals:
        for signal in signals:
            # The other signals of the star are masked, as the search
            # masks each signal it has found: the example shows this one.
            others = [(o['period'], o['t0'], o['duration'])
                      for o in signals if o is not signal]
            flat_k = search.mask_transits(time, flat, others)
            periods = [signal['period']]
            if signal['kind'] in ('eb', 'beb'):
                periods.append(signal['period'] / 2)
            for trial, period in enumerate(periods):
                candidate = _narrow(time, flat_k, period)
                # Not the signal (noise, or another's transits): no label.
                if (candidate is not None and candidate.snr >= min_snr
                        and _on_signal(candidate, signal, baseline)):
                    seen = _remeasured(time, flux, used, candidate, others)
                    found.append((candidate, signal['kind'],
                                  signal['index'], seen))
    else:
        candidates, flat = search.search_transits(
            time, flux, max_candidates=2, oversample=2)
        found = [(c, curve['kind'], -1,
                  search.mask_others(time, flat, c, candidates))
                 for c in candidates]
    out = []
    for candidate, kind, signal_index, flat_k in found:
        views = search.transit_views(time, flat_k, candidate,
                                     n_global=n_global, n_local=n_local)
        out.append((views, kind, signal_index, candidate))
    return out


def candidate_examples(curves, signals, *, min_snr=6.0, n_global=2001,
                       n_local=201, n_processes=None):
    """
    The vetter's training examples from simulated light curves.

    Parameters
    ----------
    curves, signals
        What `~astrodl_plugins.simulate.transits.simulate_light_curve_arrays`
        returns.
    min_snr : float, optional
        Candidates below this S/N are left out (the search would not
        report them).
    n_processes : int, optional
        Worker processes (default: every core).

    Returns
    -------
    global_views, local_views, scalars : `~numpy.ndarray`
    truth : `~astropy.table.QTable`
        One row per example: ``label`` (class name), ``kind``, ``curve``,
        ``signal`` (row of ``signals``, -1 for noise TCEs), the
        candidate's ``period``, ``duration`` (d), ``depth``, ``snr``,
        and the injected ``true_period`` and ``true_snr``.
    """
    from astropy.table import QTable

    by_curve = {}
    for k, row in enumerate(signals):
        by_curve.setdefault(int(row['curve']), []).append(
            {'period': float(_value(row['period'])),
             't0': float(_value(row['t0'])),
             'duration': float(_value(row['duration'])) / 24.0,
             'kind': str(row['kind']), 'index': k})
    jobs = [(curve, by_curve.get(i, []), min_snr, n_global, n_local)
            for i, curve in enumerate(curves)]
    results = _map(_curve_examples, jobs, n_processes)
    rows, views = [], []
    for i, result in enumerate(results):
        for view, kind, signal_index, candidate in result:
            views.append(view)
            true = signals[signal_index] if signal_index >= 0 else None
            rows.append({
                'label': LABELS[kind], 'kind': kind, 'curve': i,
                'signal': signal_index, 'period': candidate.period,
                'duration': candidate.duration, 'depth': candidate.depth,
                'snr': candidate.snr,
                'true_period': (float(_value(true['period']))
                                if true is not None else np.nan),
                'true_snr': (float(true['snr']) if true is not None
                             else np.nan)})
    n_scalars = len(search.SCALAR_NAMES)
    if not views:
        return (np.zeros((0, n_global), np.float32),
                np.zeros((0, n_local, 4), np.float32),
                np.zeros((0, n_scalars), np.float32), QTable(rows=[]))
    global_views = np.stack([v[0] for v in views])
    local_views = np.stack([v[1] for v in views])
    scalars = np.stack([v[2] for v in views])
    return global_views, local_views, scalars, QTable(rows=rows)


def match_candidate(period, true_period, tolerance=1e-3):
    """Whether a found period is the true one within ``tolerance``."""
    return abs(period - true_period) <= tolerance * true_period


def _value(x):
    return getattr(x, 'value', x)


def _map(function, jobs, n_processes):
    """``function`` over ``jobs`` in worker processes, in order."""
    n_processes = n_processes or os.cpu_count() or 1
    if n_processes == 1 or len(jobs) < 2:
        return [function(job) for job in jobs]
    import multiprocessing
    import sys

    threaded = any(name in sys.modules for name in ('tensorflow', 'jax'))
    context = multiprocessing.get_context('forkserver' if threaded
                                          else 'fork')
    with ProcessPoolExecutor(n_processes, mp_context=context) as pool:
        return list(pool.map(function, jobs, chunksize=8))
