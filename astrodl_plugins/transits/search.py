# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The classical half of the transit pipeline: detrend, search, fold.

`detrend` flattens a light curve with wotan's time-windowed biweight
(Hippke et al. 2019), or, for stars whose variability the biweight's
window cannot follow (fast rotators), with wotan's robust spline on a
shorter knot spacing; `search_transits` runs astropy's `BoxLeastSquares`
(or transitleastsquares, ``method='tls'``) on the Ofir (2014) period grid
of transitleastsquares -- sampled in frequency as transits need, not the
uniform grid of ``BoxLeastSquares.autoperiod`` that can exhaust memory
(astropy issue #14150) -- and masks each candidate's transits to search
again; `transit_views` folds the light curve into the global, local,
odd, even and secondary views the vetting network reads (Shallue &
Vanderburg 2018; Valizadegan et al. 2022).

Times are in days, fluxes relative (median 1).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ['SEARCH_DEFAULTS', 'Candidate', 'detrend', 'period_grid',
           'search_transits', 'transit_views', 'VIEW_NAMES', 'SCALAR_NAMES',
           'expected_duration', 'box_search', 'tls_search',
           'measure_candidate', 'resolve_half_period', 'alternating',
           'robust_std', 'outlier_driven', 'remove_signal', 'detrend_as',
           'transit_windows', 'clip_flat',
           'mask_others', 'mask_transits']

#: The search settings (`search_transits` keywords), recorded in the meta.
SEARCH_DEFAULTS = {
    'method': 'bls',
    'window': 1.0,
    'spline_window': 0.3,
    'period_min': 0.5,
    'period_max': 30.0,
    'min_transits': 2,
    'max_candidates': 5,
    'min_sde': 7.0,
    'min_snr': 6.0,
    'oversample': 3,
    'search_cadence': 10.0,
}

#: `detrend` switches to the spline when it brings the scatter of 1-hour
#: means below this fraction of the biweight's.
SPLINE_GAIN = 0.7

#: A signal whose median in-transit point is less than this fraction of
#: its mean depth below the out-of-transit level is carried by a few
#: outlying cadences, not by transits (`outlier_driven`).
MIN_MEDIAN_DEPTH = 0.3

#: A signal with at least this fraction of its transits (epochs with
#: data) missing -- less than half its depth, at 5 sigma -- is a few
#: events folded together, not a periodic signal (`outlier_driven`).
MAX_MISSING = 1 / 3

#: A signal whose transit mask would remove more than this fraction of
#: the data left (variability folded at a short period) is subtracted
#: instead (`remove_signal`).
MAX_MASKED_FRACTION = 0.2

#: Transit durations the box search tries, hours.
_DURATIONS_HOURS = np.array([0.5, 0.8, 1.25, 2.0, 3.0, 4.5, 7.0, 10.0,
                             14.0])

#: Names of the views (one channel each), in network order.
VIEW_NAMES = ('global', 'local', 'odd', 'even', 'secondary')
#: Names of the scalar features, in network order.
SCALAR_NAMES = ('log_period', 'log_duration', 'log_depth', 'log_snr',
                'log_density_ratio', 'log_transits',
                'secondary_ratio', 'odd_even_sigma', 'log_noise_ratio')


@dataclass
class Candidate:
    """
    One periodic transit-like signal found by `search_transits`.

    Attributes
    ----------
    period, t0, duration : float
        Days (``t0``: a mid-transit time, in the light curve's days).
    depth : float
        Relative depth of the box (0.001 is 1000 ppm).
    snr : float
        Depth over its uncertainty from the out-of-transit scatter and the
        number of in-transit points.
    sde : float
        Signal detection efficiency of the periodogram peak.
    n_transits : int
        Transits with data.
    number : int
        1 for the first candidate of a light curve, 2 for the next...
    extra : dict
        Search statistics (odd/even depths, secondary) and the
        ``detrending`` applied.
    """

    period: float
    t0: float
    duration: float
    depth: float
    snr: float
    sde: float
    n_transits: int
    number: int = 1
    extra: dict = field(default_factory=dict)


def expected_duration(period, density=1.0):
    """
    Duration (days) of a central transit of a small planet on a circular
    orbit of ``period`` days around a star of ``density`` (solar units).
    """
    # a/R* = (G rho P^2 / 3 pi)^(1/3); T14 ~ P / (pi a/R*).
    g_rho_sun = 6.674e-11 * 1408.0
    seconds = np.asarray(period, np.float64) * 86400.0
    a_rs = (g_rho_sun * density * seconds ** 2 / (3 * np.pi)) ** (1 / 3)
    return period / (np.pi * a_rs)


def detrend(time, flux, *, window=1.0, method='biweight',
            spline_window=0.3, mask=None):
    """
    Flatten a light curve with wotan.

    The trend is wotan's time-windowed ``method`` (the biweight) over
    ``window`` days, which keeps transits up to a third of the window
    whole (Hippke et al. 2019). A star varying faster than that window
    can follow -- spot modulation of a fast rotator, pulsations over a day
    or less -- leaves its variability in the flattened flux, where the
    search finds it before any planet. For those, and only those, a
    robust spline (wotan's ``'hspline'``: Huber loss, knots every
    ``spline_window`` days) is used instead: when it brings the scatter
    of 1-hour means (robust standard deviation) below `SPLINE_GAIN` of
    the biweight's. A quiet star keeps the biweight, whose window spares
    long transits.

    Parameters
    ----------
    time, flux : array
        Days and relative flux (masked points removed).
    window : float, optional
        Window length in days (three times the longest transit to keep,
        Hippke et al. 2019).
    method : str, optional
        A wotan ``flatten`` method (``'biweight'``, ``'median'``...).
    spline_window : float or None, optional
        Knot spacing of the spline for fast variability, days; `None`
        keeps ``method`` for every light curve.
    mask : array of bool, optional
        Points the trend is not fitted to (known transits), as wotan's
        ``mask``; it is still evaluated there.

    Returns
    -------
    flat, trend : `~numpy.ndarray`
        Flux over the trend, and the trend (NaN where wotan had too few
        points).
    used : str
        The detrending applied, e.g. ``'biweight 1 d'`` or
        ``'hspline 0.3 d'``.
    """
    from wotan import flatten

    def run(name, length):
        flat, trend = flatten(time, flux, method=name, window_length=length,
                              break_tolerance=length / 2, edge_cutoff=0.0,
                              return_trend=True, mask=mask)
        return (np.asarray(flat, np.float64), np.asarray(trend, np.float64),
                f'{name} {length:g} d')

    first = run(method, window)
    if spline_window is None or spline_window >= window:
        return first
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # scipy's spline on short segments
        second = run('hspline', spline_window)
    scatter = [_hourly_scatter(time, candidate[0]) for candidate in
               (first, second)]
    if scatter[1] < SPLINE_GAIN * scatter[0]:
        return second
    return first


def detrend_as(time, flux, used, mask=None):
    """
    ``flux`` detrended as `detrend` reported it did (its ``used``, e.g.
    ``'hspline 0.3 d'``), with ``mask`` (points the trend is not fitted
    to): ``(flat, trend)``.
    """
    parts = str(used).split()
    if len(parts) == 3 and parts[2] == 'd':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return detrend(time, flux, method=parts[0],
                           window=float(parts[1]), spline_window=None,
                           mask=mask)[:2]
    return detrend(time, flux, mask=mask)[:2]


def transit_windows(time, ephemerides, factor=3.0, max_fraction=None):
    """
    Points within ``factor`` half-durations of the transits of
    ``ephemerides`` (``(period, t0, duration)``, days), for the detrending
    not to fit them; an ephemeris whose windows would cover more than
    ``max_fraction`` (default `MAX_MASKED_FRACTION`) of the points --
    variability folded at a short period -- is left out.
    """
    if max_fraction is None:
        max_fraction = MAX_MASKED_FRACTION
    masked = np.zeros(len(time), bool)
    for period, t0, duration in ephemerides:
        window = _in_transit(time, period, t0, duration, factor)
        if np.count_nonzero(window) <= max_fraction * len(time):
            masked |= window
    return masked


def _hourly_scatter(time, flat):
    """Robust standard deviation of 1-hour means of ``flat``."""
    good = np.isfinite(flat)
    if np.count_nonzero(good) < 10:
        return np.nan
    _, means = _bin_series(time[good], flat[good], 1 / 24)
    return robust_std(means)


def robust_std(values):
    """Standard deviation from the median absolute deviation."""
    values = values[np.isfinite(values)]
    if not values.size:
        return np.nan
    return 1.4826 * np.median(np.abs(values - np.median(values)))


def period_grid(baseline, *, period_min=0.5, period_max=30.0,
                min_transits=2, oversample=3):
    """
    Trial periods (days) sampled as Ofir (2014) prescribes, from
    transitleastsquares' ``period_grid`` for a solar-density star,
    extended at the same frequency step below its shortest period (the
    orbit of three solar radii, 0.6 days) down to ``period_min``.

    Parameters
    ----------
    baseline : float
        Time span of the light curve, days.
    period_min, period_max : float, optional
        Period range, days; periods giving fewer than ``min_transits``
        transits in the baseline are left out.
    oversample : int, optional
        Frequency oversampling factor.

    Returns
    -------
    `~numpy.ndarray`
        Increasing periods.
    """
    from transitleastsquares import period_grid as ofir_grid

    period_max = min(period_max, baseline / min_transits)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        grid = ofir_grid(1.0, 1.0, baseline, period_min=period_min,
                         period_max=period_max, oversampling_factor=oversample,
                         n_transits_min=min_transits)
    grid = np.sort(np.asarray(grid, np.float64))
    # transitleastsquares stops at the orbit of three solar radii (0.6 d):
    # planets of denser stars orbit faster. The grid is uniform in
    # frequency**(1/3): extend it, at its own step, down to period_min.
    if len(grid) > 1 and grid[0] > period_min:
        x = grid ** (-1 / 3)
        step = float(np.median(np.abs(np.diff(x))))
        extra = np.arange(x.max() + step, period_min ** (-1 / 3) + step / 2,
                          step)
        grid = np.sort(np.concatenate([grid, extra ** -3]))
        grid = grid[grid >= period_min * (1 - 1e-9)]
    return grid


def _bin_series(time, flux, cadence):
    """Mean flux in bins of ``cadence`` days (empty bins dropped)."""
    index = np.floor((time - time[0]) / cadence).astype(np.int64)
    counts = np.bincount(index)
    good = counts > 0
    sums = np.bincount(index, flux)[good]
    tsum = np.bincount(index, time)[good]
    return tsum / counts[good], sums / counts[good]


def _sde(power):
    """Signal detection efficiency of a periodogram (after a running median)."""
    from scipy.ndimage import median_filter

    power = np.asarray(power, np.float64)
    size = max(3, (len(power) // 100) | 1)
    trend = median_filter(power, size=size, mode='nearest')
    flat = power - trend
    std = np.std(flat)
    if not np.isfinite(std) or std <= 0:
        return np.zeros_like(flat)
    return (flat - np.mean(flat)) / std


def box_search(time, flux, periods, *, peak='sde'):
    """
    Best ``(period, t0, duration, depth, sde)`` of astropy's box least
    squares over ``periods`` (days), trying the durations of
    ``_DURATIONS_HOURS`` that suit each range of periods.

    ``peak='sde'`` picks the highest peak of the periodogram over its
    running median (a wide search); ``'power'`` the highest power (a
    narrow grid around a known peak, where the SDE means nothing).
    """
    from astropy.timeseries import BoxLeastSquares

    bls = BoxLeastSquares(time, flux)
    powers = np.full(len(periods), -np.inf)
    best = {}
    # Durations shorter than each period chunk's shortest period.
    edges = np.unique(np.concatenate([[periods[0]], [1.0, 3.0, 10.0],
                                      [periods[-1]]]))
    edges = edges[(edges >= periods[0]) & (edges <= periods[-1])]
    for low, high in zip(edges[:-1], edges[1:]):
        chunk = (periods >= low) & (periods <= high)
        if not chunk.any():
            continue
        shortest = periods[chunk][0]
        fast = expected_duration(shortest, 30.0) * 0.5
        slow = expected_duration(periods[chunk][-1], 0.05) * 1.2
        durations = _DURATIONS_HOURS / 24.0
        durations = durations[(durations >= min(fast, durations[0] * 1.01))
                              & (durations <= slow)
                              & (durations < 0.3 * shortest)]
        if not durations.size:
            durations = np.array([min(0.25 * shortest, 0.5 / 24)])
        result = bls.power(periods[chunk], durations, objective='likelihood',
                           oversample=5)
        power = np.asarray(result.power, np.float64)
        keep = power > powers[chunk]
        powers[chunk] = np.where(keep, power, powers[chunk])
        for key in ('transit_time', 'duration', 'depth'):
            values = np.asarray(getattr(result, key), np.float64)
            old = best.get(key, np.full(len(periods), np.nan))
            old[chunk] = np.where(keep, values, old[chunk])
            best[key] = old
    powers[~np.isfinite(powers)] = 0.0
    sde = _sde(powers)
    k = int(np.argmax(sde if peak == 'sde' else powers))
    return (float(periods[k]), float(best['transit_time'][k]),
            float(best['duration'][k]), float(best['depth'][k]),
            float(sde[k]))


def tls_search(time, flux, periods):
    """
    Best ``(period, t0, duration, depth, sde)`` of transitleastsquares
    between the first and last of ``periods`` (days).
    """
    from transitleastsquares import transitleastsquares

    model = transitleastsquares(time, flux)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = model.power(period_min=periods[0], period_max=periods[-1],
                             use_threads=1, show_progress_bar=False,
                             oversampling_factor=3)
    if not np.isfinite(result.period):
        return np.nan, np.nan, np.nan, np.nan, 0.0
    return (float(result.period), float(result.T0), float(result.duration),
            float(1.0 - result.depth), float(result.SDE))


def _in_transit(time, period, t0, duration, factor=1.0):
    """Points within ``factor`` half-durations of a mid-transit."""
    phase = (time - t0 + 0.5 * period) % period - 0.5 * period
    return np.abs(phase) < 0.5 * duration * factor


def _epochs(time, period, t0):
    return np.round((time - t0) / period).astype(np.int64)


def measure_candidate(time, flux, period, t0, duration, sigma):
    """
    Depth, S/N, transit count and the odd/even and secondary statistics
    of a signal at ``(period, t0, duration)``.

    Returns
    -------
    dict
        ``depth``, ``depth_err``, ``depth_median`` (the depth of the
        median in-transit point), ``n_missing`` (transits with data
        showing less than half the depth, at 5 sigma), ``n_in_transit``
        (points),
        ``snr``, ``n_transits``,
        ``depth_odd``, ``depth_even``, ``odd_even_sigma``, ``n_odd`` and
        ``n_even`` (in-transit points of odd and even transits),
        ``secondary_depth``, ``secondary_phase``.
    """
    inside = _in_transit(time, period, t0, duration, 0.8)
    near = _in_transit(time, period, t0, duration, 3.0)
    out = ~near
    level = np.median(flux[out]) if out.any() else 1.0
    n_in = int(np.count_nonzero(inside))
    depth = level - np.mean(flux[inside]) if n_in else 0.0
    depth_median = level - np.median(flux[inside]) if n_in else 0.0
    depth_err = sigma / np.sqrt(max(n_in, 1))
    epochs = _epochs(time, period, t0)
    labels, per_epoch = np.unique(epochs[inside], return_inverse=True)
    n_transits = len(labels)
    # Transits (epochs with data) showing less than half the depth, at
    # 5 sigma: a periodic signal has none.
    if n_in:
        counts = np.bincount(per_epoch)
        drops = np.bincount(per_epoch, level - flux[inside]) / counts
        missing = np.count_nonzero(
            drops < np.minimum(0.5 * depth, depth - 5 * sigma
                               / np.sqrt(counts)))
    else:
        missing = 0
    stats = {'depth': float(depth), 'depth_err': float(depth_err),
             'depth_median': float(depth_median),
             'n_missing': int(missing), 'n_in_transit': n_in,
             'snr': float(depth / depth_err) if depth_err > 0 else 0.0,
             'n_transits': n_transits}
    depths = []
    for parity, name in ((1, 'n_odd'), (0, 'n_even')):
        sel = inside & (epochs % 2 == parity)
        n = int(np.count_nonzero(sel))
        stats[name] = n
        depths.append((level - np.mean(flux[sel]), sigma / np.sqrt(n))
                      if n else (np.nan, np.inf))
    (odd, odd_err), (even, even_err) = depths
    stats['depth_odd'], stats['depth_even'] = float(odd), float(even)
    with np.errstate(invalid='ignore'):
        diff = abs(odd - even) / np.hypot(odd_err, even_err)
    stats['odd_even_sigma'] = float(diff) if np.isfinite(diff) else 0.0
    # The deepest box of the transit's duration away from the transit.
    phase = ((time - t0) / period) % 1.0
    trials = np.linspace(0.1, 0.9, 161)
    half = 0.5 * duration / period
    best_depth, best_phase = 0.0, 0.5
    order = np.argsort(phase)
    sorted_phase, sorted_flux = phase[order], flux[order]
    cumulative = np.concatenate([[0.0], np.cumsum(sorted_flux)])
    lo = np.searchsorted(sorted_phase, trials - half)
    hi = np.searchsorted(sorted_phase, trials + half)
    counts = hi - lo
    with np.errstate(invalid='ignore', divide='ignore'):
        means = (cumulative[hi] - cumulative[lo]) / counts
    dips = np.where(counts > 0, level - means, -np.inf)
    if np.isfinite(dips).any():
        k = int(np.argmax(dips))
        best_depth, best_phase = float(dips[k]), float(trials[k])
    stats['secondary_depth'] = best_depth
    stats['secondary_phase'] = best_phase
    return stats


def alternating(stats, *, min_sigma=5.0, max_ratio=0.3):
    """
    Whether a candidate's odd and even transits differ as those of a
    doubled period do: by ``min_sigma``, the shallower below ``max_ratio``
    of the deeper.

    Parameters
    ----------
    stats : dict
        What `measure_candidate` returned (``depth_odd``, ``depth_even``,
        ``odd_even_sigma``).

    Returns
    -------
    bool
    """
    odd, even = stats.get('depth_odd', np.nan), stats.get('depth_even',
                                                          np.nan)
    if not np.isfinite(odd) or not np.isfinite(even):
        return False
    deep, shallow = max(odd, even), min(odd, even)
    return bool(deep > 0 and stats.get('odd_even_sigma', 0.0) >= min_sigma
                and shallow <= max_ratio * deep)


def resolve_half_period(time, flux, period, t0, duration, sigma, stats, *,
                        min_transits=2, min_sigma=5.0, max_ratio=0.3):
    """
    Twice the period when only every other transit is there.

    A planet whose period is beyond the search range, or an eclipsing
    binary with a shallow secondary, folds at half its period: one parity
    of transits holds the signal, the other (almost) nothing. When the odd
    and even depths differ by ``min_sigma`` and the shallower is below
    ``max_ratio`` of the deeper, the signal is measured again at twice the
    period, on the deeper parity, if it still has ``min_transits``
    transits with data.

    Parameters
    ----------
    time, flux, period, t0, duration, sigma
        As for `measure_candidate`.
    stats : dict
        What `measure_candidate` returned for ``period`` and ``t0``.

    Returns
    -------
    period, t0 : float
    stats : dict
        Those of the doubled period (with ``'doubled': True``), or the
        ones given.
    """
    if not alternating(stats, min_sigma=min_sigma, max_ratio=max_ratio):
        return period, t0, stats
    odd, even = stats['depth_odd'], stats['depth_even']
    # Odd epochs (t0 + P, t0 + 3P...) hold the deeper transits: start there.
    start = t0 + period if odd > even else t0
    doubled = measure_candidate(time, flux, 2 * period, start, duration,
                                sigma)
    if doubled['n_transits'] < min_transits:
        return period, t0, stats
    doubled['doubled'] = True
    return 2 * period, start, doubled


def search_transits(time, flux, *, method='bls', window=1.0,
                    spline_window=0.3, period_min=0.5,
                    period_max=30.0, min_transits=2, max_candidates=5,
                    min_sde=7.0, min_snr=6.0, oversample=3,
                    search_cadence=10.0):
    """
    Find periodic transit-like signals, strongest first.

    The light curve is detrended (`detrend`: the biweight, or a robust
    spline for variability faster than its window), upward outliers (flares,
    cosmic rays) above 4 sigma are dropped, short cadences are binned to
    ``search_cadence`` minutes for the search, and each signal's transits
    are masked before searching again.

    Parameters
    ----------
    time, flux : array
        Days and flux (good points only; any positive unit).
    method : {'bls', 'tls'}, optional
        astropy's `~astropy.timeseries.BoxLeastSquares` or
        transitleastsquares.
    window : float, optional
        Detrending window, days.
    spline_window : float or None, optional
        Knot spacing of the spline for fast variability, days (`detrend`).
    period_min, period_max : float, optional
        Period range, days.
    min_transits : int, optional
        Fewest transits with data a candidate needs.
    max_candidates : int, optional
        Most signals to return.
    min_sde, min_snr : float, optional
        A signal below either ends the search.
    oversample : int, optional
        Oversampling of the period grid.
    search_cadence : float, optional
        Minutes; shorter cadences are binned to it for the search.

    Returns
    -------
    candidates : list of `Candidate`
    flat : `~numpy.ndarray`
        The detrended flux (NaN at dropped points), for the views.
    """
    time = np.asarray(time, np.float64)
    flux = np.asarray(flux, np.float64)
    flux = flux / np.nanmedian(flux)
    flat, _, used = detrend(time, flux, window=window,
                            spline_window=spline_window)
    flat = clip_flat(flat)
    good = np.isfinite(flat)
    baseline = float(time[good].max() - time[good].min()) if good.any() \
        else 0.0
    periods = period_grid(baseline, period_min=period_min,
                          period_max=period_max, min_transits=min_transits,
                          oversample=oversample) if baseline > 0 else []
    candidates = []
    active = good.copy()
    work = flat.copy()  # with the signals found so far subtracted
    dropped = np.zeros(len(time), bool)  # outlying cadences
    # Vetoed signals (a few outlying cadences) do not count as
    # candidates, but each costs a search: at most as many again.
    for _ in range(2 * max_candidates):
        if len(candidates) >= max_candidates or len(periods) <= 10:
            break
        t, f = time[active], work[active]
        if len(t) < 50:
            break
        cadence = np.median(np.diff(t))
        if cadence < search_cadence / 1440.0 * 0.8:
            t, f = _bin_series(t, f, search_cadence / 1440.0)
        if method == 'tls':
            period, t0, duration, depth, sde = tls_search(t, f, periods)
        else:
            period, t0, duration, depth, sde = box_search(t, f, periods)
        if not np.isfinite(period) or sde < min_sde:
            break
        if method == 'bls':
            # Refine on a fine grid around the peak (the coarse grid's
            # step is up to a few 1e-4 of the period).
            k = int(np.searchsorted(periods, period))
            step = periods[min(k + 1, len(periods) - 1)] - periods[max(k - 1,
                                                                        0)]
            fine = np.linspace(period - step, period + step, 81)
            period, t0, duration, depth, _ = box_search(t, f, fine,
                                                        peak='power')
        sigma = robust_std(work[active])
        stats = measure_candidate(time[active], work[active], period, t0,
                                  duration, sigma)
        period, t0, stats = resolve_half_period(
            time[active], work[active], period, t0, duration, sigma, stats,
            min_transits=min_transits)
        if stats['snr'] < min_snr or stats['depth'] <= 0:
            break
        if outlier_driven(stats):
            # A few outlying cadences, not transits: drop them, go on.
            dropped |= _in_transit(time, period, t0, duration)
            active &= ~dropped
            continue
        # The same period as a candidate already found: what the mask
        # left of that signal (its ingress and egress), not a new one.
        repeat = any(abs(period / c.period - 1) < 0.01 for c in candidates)
        candidate = Candidate(period, t0, duration, stats['depth'],
                              stats['snr'], sde, stats['n_transits'],
                              len(candidates) + 1, stats)
        if stats['n_transits'] >= min_transits and not repeat:
            stats['detrending'] = used
            candidates.append(candidate)
        work, active = remove_signal(time, work, active, candidate)
    if candidates:
        flat = _remeasure(time, flux, candidates, used, dropped)
    return candidates, np.where(dropped, np.nan, flat)


def _remeasure(time, flux, candidates, used, dropped):
    """
    The light curve detrended again with the candidates' transits masked
    (a spline or a biweight fitted through a deep transit eats part of
    it), and each candidate measured again on it, with the others masked
    as its views will have them: the new flattened flux.
    """
    windows = transit_windows(time, [(c.period, c.t0, c.duration)
                                     for c in candidates])
    flat = clip_flat(detrend_as(time, flux, used, mask=windows)[0])
    flat[dropped] = np.nan
    for c in candidates:
        seen = mask_others(time, flat, c, candidates)
        good = np.isfinite(seen)
        stats = measure_candidate(time[good], seen[good], c.period, c.t0,
                                  c.duration, robust_std(seen[good]))
        if stats['depth'] > 0 and stats['n_transits'] > 0:
            c.depth, c.snr = stats['depth'], stats['snr']
            c.n_transits = stats['n_transits']
            c.extra.update(stats)
    return flat


def clip_flat(flat, upper=4.0):
    """
    ``flat`` with NaN at points ``upper`` sigma above its median (flares,
    cosmic rays): what the search searches.
    """
    sigma = robust_std(flat)
    good = np.isfinite(flat) & (flat < np.nanmedian(flat) + upper * sigma)
    return np.where(good, flat, np.nan)


def outlier_driven(stats, min_median_depth=None, max_missing=None):
    """
    Whether a signal is carried by a few outlying cadences rather than
    by transits.

    A transit is several low points at each of its epochs. Corrupted
    cadences (or a single deep event) that a period happens to fold
    together are not: fewer than three in-transit points; or the median
    in-transit point less than ``min_median_depth`` (default
    `MIN_MEDIAN_DEPTH`) of the mean depth below the level; or, with three
    transits or more, at least ``max_missing`` (default `MAX_MISSING`) of
    them showing less than half the depth, at 5 sigma (``n_missing``).

    Parameters
    ----------
    stats : dict
        What `measure_candidate` returned.

    Returns
    -------
    bool
    """
    if min_median_depth is None:
        min_median_depth = MIN_MEDIAN_DEPTH
    if max_missing is None:
        max_missing = MAX_MISSING
    depth = stats.get('depth', 0.0)
    if not depth > 0:
        return False
    if stats.get('n_in_transit', 3) < 3:
        return True
    if stats.get('depth_median', depth) < min_median_depth * depth:
        return True
    # Two transits of different depths are left to PERIOD_ALIAS
    # (`alternating`): two bodies' single transits paired, or 2P.
    n_transits = stats.get('n_transits', 0)
    missing = stats.get('n_missing', 0)
    return bool(n_transits >= 3 and missing > 0
                and missing >= max_missing * n_transits)


def _profile(time, flux, period, t0, duration):
    """
    The mean of ``flux`` folded at ``period`` in phase bins of a quarter
    of ``duration`` (at least 20 bins), minus its median: ``(edges,
    values)``, edges in days from mid-transit.
    """
    n_bins = int(np.clip(round(4 * period / duration), 20, 2000))
    edges = np.linspace(-0.5 * period, 0.5 * period, n_bins + 1)
    phase = (time - t0 + 0.5 * period) % period - 0.5 * period
    index = np.clip(np.searchsorted(edges, phase, side='right') - 1, 0,
                    n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sums = np.bincount(index, flux, minlength=n_bins)
    level = np.median(flux)
    with np.errstate(invalid='ignore', divide='ignore'):
        values = np.where(counts > 0, sums / counts - level, 0.0)
    return edges, values


def _subtract(time, flux, candidate):
    """``flux`` minus a candidate's folded profile (``extra['profile']``)."""
    edges, values = candidate.extra['profile']
    period, t0 = candidate.period, candidate.t0
    phase = (time - t0 + 0.5 * period) % period - 0.5 * period
    index = np.clip(np.searchsorted(edges, phase, side='right') - 1, 0,
                    len(values) - 1)
    return flux - values[index]


def remove_signal(time, flux, active, candidate, factor=3.0):
    """
    A found signal taken out of the light curve before searching again.

    Its transits (within ``factor`` half-durations) are masked, unless
    that would remove more than `MAX_MASKED_FRACTION` of the data left --
    a short period and a long duration, as residual variability folds
    into: the signal's folded profile is then subtracted (stored in
    ``candidate.extra['profile']``), and the data stay for the signals
    still to be found.

    Parameters
    ----------
    time, flux : array
        Days and detrended flux.
    active : array of bool
        The points still searched.
    candidate : `Candidate`

    Returns
    -------
    flux, active : `~numpy.ndarray`
        New arrays (the inputs are not changed).
    """
    period, t0, duration = candidate.period, candidate.t0, candidate.duration
    window = _in_transit(time, period, t0, duration, factor)
    n_active = np.count_nonzero(active)
    if np.count_nonzero(window & active) <= MAX_MASKED_FRACTION * n_active:
        return flux, active & ~window
    candidate.extra['profile'] = _profile(time[active], flux[active],
                                          period, t0, duration)
    out = np.array(flux, np.float64, copy=True)
    out[active] = _subtract(time[active], flux[active], candidate)
    return out, active.copy()


def mask_transits(time, flux, ephemerides, factor=3.0, *, keep=None,
                  keep_durations=4.0):
    """
    ``flux`` with NaN within ``factor`` half-durations of the transits of
    ``ephemerides``, an iterable of ``(period, t0, duration)`` in days
    (``flux`` itself when nothing is masked).

    ``keep``, one more ``(period, t0, duration)``: the signal being looked
    at. An ephemeris whose mask would hide most of its in-transit points
    -- a signal at half its period, its own occultation -- is not masked
    within ``keep_durations`` durations of its transits (a transit of
    another planet that falls on one of them now and then still is).
    """
    masked = np.zeros(len(time), bool)
    if keep is not None:
        own = _in_transit(time, *keep)
        zone = _in_transit(time, *keep, 2.0 * keep_durations)
    for period, t0, duration in ephemerides:
        window = _in_transit(time, period, t0, duration, factor)
        if keep is not None and np.count_nonzero(window & own) > 0.5 * (
                np.count_nonzero(own)):
            window &= ~zone
        masked |= window
    return np.where(masked, np.nan, flux) if masked.any() else flux


def mask_others(time, flat, candidate, candidates, factor=3.0,
                keep_durations=4.0):
    """
    ``flat`` with the transits of the light curve's other ``candidates``
    masked (`mask_transits`), so that one candidate's views show its own
    transits only, as the training examples do; the candidate's own
    transits, within ``keep_durations`` durations (the span of its local
    view), stay. A candidate the search subtracted rather than masked
    (`remove_signal`) is subtracted here too.
    """
    others = [c for c in candidates if c is not candidate]
    subtracted = [c for c in others if 'profile' in c.extra]
    if subtracted:
        flat = np.array(flat, np.float64, copy=True)
        good = np.isfinite(flat)
        for c in subtracted:
            flat[good] = _subtract(time[good], flat[good], c)
    return mask_transits(time, flat, [(c.period, c.t0, c.duration)
                                      for c in others
                                      if 'profile' not in c.extra], factor,
                         keep=(candidate.period, candidate.t0,
                               candidate.duration),
                         keep_durations=keep_durations)


def _binned(x, y, centres, half_width):
    """Mean of ``y`` within ``half_width`` of each centre (NaN if none)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    cumulative = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.searchsorted(x, centres - half_width)
    hi = np.searchsorted(x, centres + half_width)
    counts = hi - lo
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(counts > 0,
                        (cumulative[hi] - cumulative[lo]) / counts, np.nan)


def _fill(view):
    """Empty bins interpolated from their neighbours (0 if all empty)."""
    bad = ~np.isfinite(view)
    if bad.all():
        return np.zeros_like(view)
    if bad.any():
        index = np.arange(len(view))
        view[bad] = np.interp(index[bad], index[~bad], view[~bad])
    return view


def transit_views(time, flat, candidate, *, n_global=2001, n_local=201,
                  local_durations=4.0, clip=5.0):
    """
    The folded views of a candidate and its scalar features.

    Views (``VIEW_NAMES``): the whole orbit folded at the period
    (``n_global`` bins), the transit within ``local_durations`` durations
    either side (``n_local`` bins), the same for odd and even transits,
    and around the deepest dip away from the transit (secondary). Each is
    ``(flux - 1) / depth`` (the transit reaches -1), clipped to
    ``+-clip``.

    Parameters
    ----------
    time, flat : array
        Days and detrended relative flux (NaN points ignored).
    candidate : `Candidate`

    Returns
    -------
    global_view : `~numpy.ndarray`
        ``(n_global,)``.
    local_views : `~numpy.ndarray`
        ``(n_local, 4)``: local, odd, even and secondary.
    scalars : `~numpy.ndarray`
        ``(len(SCALAR_NAMES),)``.
    """
    good = np.isfinite(flat)
    time, flat = time[good], flat[good]
    period, t0, duration = candidate.period, candidate.t0, candidate.duration
    depth = max(candidate.depth, 1e-6)
    values = (flat - 1.0) / depth
    phase = (time - t0 + 0.5 * period) % period - 0.5 * period
    cadence = np.median(np.diff(time)) if len(time) > 1 else duration
    width = period / n_global
    centres = (np.arange(n_global) + 0.5) * width - 0.5 * period
    global_view = _fill(_binned(phase, values, centres,
                                max(0.5 * width, 0.5 * cadence)))
    span = local_durations * duration
    local_width = 2 * span / n_local
    local_centres = (np.arange(n_local) + 0.5) * local_width - span
    half = max(0.5 * local_width, 0.08 * duration, 0.5 * cadence)
    epochs = _epochs(time, period, t0)
    extra = candidate.extra
    secondary_phase = extra.get('secondary_phase', 0.5)
    shifted = ((time - t0 - secondary_phase * period + 0.5 * period)
               % period - 0.5 * period)
    local = [_binned(phase, values, local_centres, half),
             _binned(phase[epochs % 2 == 1], values[epochs % 2 == 1],
                     local_centres, half),
             _binned(phase[epochs % 2 == 0], values[epochs % 2 == 0],
                     local_centres, half),
             _binned(shifted, values, local_centres, half)]
    local_views = np.stack([_fill(view) for view in local], axis=-1)
    out_of_transit = np.abs(phase) > 2 * duration
    noise = robust_std(flat[out_of_transit]) if out_of_transit.any() \
        else np.nan
    per_bin = noise / np.sqrt(max(1.0, 2 * half / cadence
                                  * max(candidate.n_transits, 1)))
    scalars = np.array([
        np.log10(period),
        np.log10(duration * 24),
        np.log10(depth * 1e6),
        np.log10(max(candidate.snr, 1e-3)),
        np.log10(duration / expected_duration(period)),
        np.log10(max(candidate.n_transits, 1)),
        np.clip(extra.get('secondary_depth', 0.0) / depth, -2, 2),
        np.clip(extra.get('odd_even_sigma', 0.0), 0, 30) / 10,
        np.log10(max(per_bin, 1e-8) / depth),
    ], np.float32)
    return (np.clip(global_view, -clip, clip).astype(np.float32),
            np.clip(local_views, -clip, clip).astype(np.float32),
            np.nan_to_num(scalars, nan=0.0, posinf=0.0, neginf=0.0))
