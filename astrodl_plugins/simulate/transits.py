# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated Kepler and TESS light curves for transit searches and vetters.

Each curve is one star observed at a mission's cadence (`MISSIONS`) and
holds one kind of signal (`KINDS`):

* ``planet``: one to three transiting planets (batman, Kreidberg 2015,
  quadratic limb darkening, integrated over the long cadences), with
  durations set by a drawn stellar density, and each planet's occultation
  (thermal and reflected light), phase curve and the ellipsoidal
  variation its mass raises on the star (hundreds of ppm for hot giants
  such as WASP-18 b, nothing measurable for small or distant planets);
* ``eb``: an eclipsing binary (primary 1-40 % deep, or grazing and
  V-shaped in 30 %) with a secondary eclipse and ellipsoidal variation; in
  half of them the secondary is 70-90 % as deep as the primary, at phase
  0.5, so that a period search finds half the orbital period and its odd
  and even "transits" differ; in the others it is 0-60 % as deep, at phase
  0.5 or (eccentric orbits) up to 0.05 away;
* ``beb``: the same, diluted by a brighter star (a background or blended
  EB): planet-like depths but V shapes, secondaries and odd-even
  differences;
* ``variable``: transit-free variability that fools searches: pulsations,
  strong spot modulation or a sequence of spot dips;
* ``noise``: nothing but the noise model.

Every curve gets the noise model: white noise, granulation (red noise),
rotation (70 % of stars), flares (20 %), and the systematics of the
spacecraft: momentum dumps (flagged ``DESAT``), data gaps (Kepler's
monthly downlinks, TESS's mid-sector gaps), thermal ramps after each gap,
a slow trend, cosmic rays and corrupted, flagged cadences (`QualityFlags`).

Conventions: times are in days since the mission's epoch (Kepler's BKJD
= BJD - 2454833, TESS's BTJD = BJD - 2457000); depths and noise levels are
in ppm; durations in hours.
"""

import numpy as np
from astropy.nddata.bitmask import BitFlagNameMap
from astropy.table import QTable
from scipy.signal import lfilter

from .common import check_fractions, loguniform, require_batman

__all__ = ['MISSIONS', 'KINDS', 'QualityFlags', 'simulate_light_curve_arrays',
           'simulate_light_curves', 'transit_model']

__doctest_requires__ = {('simulate_light_curve_arrays', 'simulate_light_curves',
                         'transit_model'): ['batman']}

#: Missions and their cadences: ``cadence`` in minutes, default
#: ``baseline`` in days, ``supersample`` (batman's supersampling of an
#: exposure), default white ``noise_range`` (ppm per cadence), ``bjd_offset``
#: (BJD of the time origin), ``start_range`` of the first time (days since
#: the origin) and ``gap_interval`` (days between data gaps).
MISSIONS = {
    'kepler-long': {'mission': 'Kepler', 'cadence': 29.4244, 'baseline': 90.0,
                    'supersample': 7, 'noise_range': (30.0, 1500.0),
                    'bjd_offset': 2454833.0, 'start_range': (130.0, 1500.0),
                    'gap_interval': 30.0},
    'kepler-short': {'mission': 'Kepler', 'cadence': 0.980813,
                     'baseline': 30.0, 'supersample': 1,
                     'noise_range': (165.0, 8200.0), 'bjd_offset': 2454833.0,
                     'start_range': (130.0, 1500.0), 'gap_interval': 30.0},
    'tess-2min': {'mission': 'TESS', 'cadence': 2.0, 'baseline': 27.4,
                  'supersample': 1, 'noise_range': (200.0, 10000.0),
                  'bjd_offset': 2457000.0, 'start_range': (1325.0, 3000.0),
                  'gap_interval': 13.7},
    'tess-30min': {'mission': 'TESS', 'cadence': 30.0, 'baseline': 27.4,
                   'supersample': 7, 'noise_range': (50.0, 2600.0),
                   'bjd_offset': 2457000.0, 'start_range': (1325.0, 3000.0),
                   'gap_interval': 13.7},
}

#: Kinds of curve, by the signal injected.
KINDS = ('planet', 'eb', 'beb', 'variable', 'noise')

_FRACTIONS = {'planet': 0.4, 'eb': 0.15, 'beb': 0.15, 'variable': 0.1,
              'noise': 0.2}
# a / R* on a 1-day orbit around a star of solar density: Kepler's third law,
# a / R* = (G rho P^2 / (3 pi))^(1/3).
_A_RS_1DAY = 4.208278
_SIGNAL_COLUMNS = (('curve', np.int64), ('kind', 'U8'), ('period', float),
                   ('t0', float), ('duration', float), ('depth', float),
                   ('rp_rs', float), ('a_rs', float), ('impact', float),
                   ('secondary_depth', float), ('odd_even', float),
                   ('dilution', float), ('snr', float),
                   ('n_transits', np.int64), ('search_period', float))


class QualityFlags(BitFlagNameMap):
    """Bits of the ``quality`` column (those of Kepler and TESS) set here."""

    ATTITUDE_TWEAK = 1, 'attitude tweak (flux corrupted)'
    COARSE_POINT = 4, 'spacecraft in coarse point (flux corrupted)'
    ARGABRIGHTENING = 16, 'Argabrightening event (flux corrupted)'
    DESAT = 32, 'reaction wheel desaturation (momentum dump)'
    MANUAL_EXCLUDE = 128, 'excluded: here, a cosmic-ray outlier'
    IMPULSIVE_OUTLIER = 512, 'impulsive outlier (flux corrupted)'
    STRAYLIGHT = 2048, 'scattered light (flux corrupted)'


_CORRUPT_BITS = np.array([1, 4, 16, 512, 2048], dtype=np.int32)


def transit_model(time, *, period, t0, rp_rs, a_rs, impact, u=(0.4, 0.25),
                  secondary_depth=0.0, secondary_phase=0.5, supersample=1,
                  exposure=None):
    """
    Relative flux of a transiting body on a circular orbit, 1 out of transit.

    The transit is batman's (quadratic limb darkening); the optional
    secondary eclipse is batman's ``secondary`` model (a uniform disk
    occulted by the star), scaled to ``secondary_depth`` at mid-eclipse.

    Parameters
    ----------
    time : array-like
        Times, days.
    period, t0 : float
        Orbital period and a mid-transit time, days.
    rp_rs, a_rs, impact : float
        Radius ratio, semi-major axis in stellar radii and impact parameter.
    u : tuple of float, optional
        Quadratic limb-darkening coefficients.
    secondary_depth : float, optional
        Relative depth of the secondary eclipse at mid-eclipse (0: none).
    secondary_phase : float, optional
        Orbital phase of the secondary eclipse (0.5 on a circular orbit).
    supersample : int, optional
        Sub-exposures averaged per time (batman's ``supersample_factor``).
    exposure : float, optional
        Exposure time, days (with ``supersample`` > 1); default: the median
        step of ``time``.

    Returns
    -------
    flux : `~numpy.ndarray`
        Relative flux (float64), the shape of ``time``.

    Examples
    --------
    >>> import numpy as np
    >>> from astrodl_plugins.simulate.transits import transit_model
    >>> flux = transit_model(np.array([0.0, 1.0]), period=3.0, t0=0.0,
    ...                      rp_rs=0.1, a_rs=10.0, impact=0.0)
    >>> bool(0.985 < flux[0] < 0.99), float(flux[1])
    (True, 1.0)
    """
    batman = require_batman()
    time = np.asarray(time, dtype=np.float64)
    if not (period > 0 and rp_rs > 0 and a_rs > 0 and 0 <= impact < a_rs):
        msg = (f'transit_model needs period > 0, rp_rs > 0 and 0 <= impact < '
               f'a_rs; got period={period}, rp_rs={rp_rs}, a_rs={a_rs}, '
               f'impact={impact}')
        raise ValueError(msg)
    supersample = int(supersample)
    kwargs = {}
    if supersample > 1:
        if exposure is None:
            if time.size < 2:
                msg = ('transit_model needs exposure with supersample > 1 and '
                       'fewer than two times')
                raise ValueError(msg)
            exposure = float(np.median(np.diff(np.sort(time.ravel()))))
        kwargs = {'supersample_factor': supersample, 'exp_time': exposure}
    params = batman.TransitParams()
    params.t0, params.per, params.rp, params.a = t0, period, rp_rs, a_rs
    params.inc = float(np.degrees(np.arccos(impact / a_rs)))
    params.ecc, params.w = 0.0, 90.0
    params.u, params.limb_dark = [float(u[0]), float(u[1])], 'quadratic'
    flux = np.ones_like(time)
    half = _t14(period, a_rs, rp_rs, impact) / 2 + (exposure or 0.0) + 1e-3
    near = _near(time, t0, period, half)
    if near.any():
        flux[near] = batman.TransitModel(params, time[near], **kwargs
                                         ).light_curve(params)
    if secondary_depth > 0:
        params.fp, params.t_secondary = 1.0, t0 + secondary_phase * period
        near = _near(time, params.t_secondary, period, half)
        if near.any():
            occulted = 2.0 - batman.TransitModel(
                params, time[near], transittype='secondary', **kwargs
            ).light_curve(params)
            full = 2.0 - batman.TransitModel(
                params, np.array([params.t_secondary]),
                transittype='secondary').light_curve(params)[0]
            if full > 0:
                flux[near] -= secondary_depth * occulted / full
    return flux


def simulate_light_curve_arrays(n, *, seed, mission='kepler-long', baseline=None,
                                kinds=None, fractions=None,
                                depth_range=(100, 30000),
                                period_range=(0.5, 30.0), min_transits=3,
                                noise_range=None):
    """
    Simulate light curves as NumPy arrays, with the injected signals.

    Parameters
    ----------
    n : int
        Number of curves.
    seed : int or None
        Seed: the same seed gives the same curves, and curve ``i`` is the
        same whatever ``n`` (each curve draws from its own child of
        ``np.random.SeedSequence(seed)``).
    mission : str, optional
        A key of `MISSIONS`: ``'kepler-long'``, ``'kepler-short'``,
        ``'tess-2min'`` or ``'tess-30min'``.
    baseline : float, optional
        Length of the data, days; default: the mission's (90 d, one Kepler
        quarter, for ``kepler-long``; 30 d for ``kepler-short``; 27.4 d,
        one sector, for TESS).
    kinds : sequence of str, optional
        The kinds drawn (of `KINDS`); default: all.
    fractions : dict or sequence of float, optional
        Probability of each kind (a dict by kind, or a sequence aligned with
        ``kinds``), summing to 1; default: planet 0.4, eb 0.15, beb 0.15,
        variable 0.1, noise 0.2 (renormalized over ``kinds``).
    depth_range : tuple of float, optional
        Range of the planets' depths, ppm (drawn log-uniform).
    period_range : tuple of float, optional
        Range of the orbital periods, days (drawn log-uniform), cut so that
        at least ``min_transits`` transits fall within the baseline.
    min_transits : int, optional
        Least number of transits (primary eclipses) in the baseline.
    noise_range : tuple of float, optional
        Range of the white noise per cadence, ppm (drawn log-uniform);
        default: the mission's ``noise_range``.

    Returns
    -------
    curves : list of dict
        Per curve, float64 arrays ``time`` (days since the mission's epoch,
        sorted, regular cadence with gaps removed), ``flux`` (relative,
        median 1 on good cadences), ``flux_err``, int32 ``quality`` (a
        bitmask of `QualityFlags`, 0 good) and scalars ``mission``,
        ``kind`` (of the injected signal, ``'noise'`` if none),
        ``noise_ppm`` (white noise per cadence), ``cdpp_ppm`` (white and red
        noise combined over 1 hour) and ``seed`` (the seed's entropy: curve
        ``i`` is reproduced by that seed and index).
    signals : `~astropy.table.QTable`
        One row per periodic signal (none for ``noise`` and ``variable``
        curves): ``curve`` (index into ``curves``), ``kind`` (``planet``,
        ``eb`` or ``beb``), ``period`` (the true orbital period, days),
        ``t0`` (the first mid-transit or primary eclipse at or after the
        data's start, days), ``duration`` (T14 of the primary, hours),
        ``depth`` (of the primary at mid-transit as observed, i.e. diluted,
        but not smeared by the exposure; ppm), ``rp_rs``, ``a_rs``,
        ``impact``, ``secondary_depth`` (ppm, 0 if none), ``odd_even``
        (ratio of the odd, ``t0 + 2 k search_period``, to the even transit
        depths), ``dilution`` (fraction of the light from the eclipsing
        system), ``snr`` (depth / noise per cadence * sqrt(the
        number of good in-transit cadences)), ``n_transits`` (transits with
        good data) and ``search_period`` (the period a search finds: half the
        orbital period for an EB whose eclipses have similar depths, whose
        ``odd_even`` is then the primary over the secondary depth; else
        ``period``).

    Raises
    ------
    ValueError
        An unknown mission or kind, bad fractions or ranges, or a
        ``period_range`` that cannot give ``min_transits`` transits.

    Examples
    --------
    >>> from astrodl_plugins.simulate.transits import (
    ...     simulate_light_curve_arrays)
    >>> curves, signals = simulate_light_curve_arrays(
    ...     4, seed=1, kinds=['planet'])
    >>> curves[0]['flux'].dtype, curves[0]['quality'].dtype
    (dtype('float64'), dtype('int32'))
    >>> bool(len(signals) >= 4)
    True
    """
    config = _check_arguments(n, mission, baseline, kinds, fractions,
                              depth_range, period_range, min_transits,
                              noise_range)
    require_batman()  # even when no curve of this draw has a transit
    root = np.random.SeedSequence(seed)
    curves, rows = [], []
    for index, child in enumerate(root.spawn(n)):
        curve, signals = _simulate_curve(np.random.default_rng(child), config)
        curve['seed'] = root.entropy
        curves.append(curve)
        rows.extend(dict(row, curve=index) for row in signals)
    table = QTable()
    for name, dtype in _SIGNAL_COLUMNS:
        table[name] = np.array([row[name] for row in rows], dtype=dtype)
    table.meta['mission'] = mission
    return curves, table


def simulate_light_curves(n, *, seed, **kwargs):
    """
    Simulate light curves as astropy TimeSeries, with the injected signals.

    Like `simulate_light_curve_arrays` (same arguments, same curves), but
    each curve is a `~astropy.timeseries.TimeSeries` like those
    ``TimeSeries.read(format='kepler.fits')`` gives: ``time`` in BJD (an
    astropy `~astropy.time.Time`, format ``jd``, scale ``tdb``), ``flux`` and
    ``flux_err`` in electron / s (a median level drawn log-uniform between
    1e3 and 1e6 e/s) and int32 ``quality``; its meta holds ``MISSION``
    (``'Kepler'`` or ``'TESS'``), ``noise_ppm``, ``cdpp_ppm``, ``kind``,
    ``mission`` (the `MISSIONS` key) and ``seed``.

    Returns
    -------
    curves : list of `~astropy.timeseries.TimeSeries`
    signals : `~astropy.table.QTable`
        As `simulate_light_curve_arrays`, with ``t0`` a `~astropy.time.Time`
        (BJD, TDB).
    """
    from astropy import units as u
    from astropy.time import Time
    from astropy.timeseries import TimeSeries

    arrays, signals = simulate_light_curve_arrays(n, seed=seed, **kwargs)
    mission = signals.meta['mission']
    offset = MISSIONS[mission]['bjd_offset']
    unit = u.electron / u.s
    curves = []
    for index, curve in enumerate(arrays):
        # Its own generator, so the arrays match simulate_light_curve_arrays.
        child = np.random.SeedSequence(curve['seed'], spawn_key=(index, 0))
        level = loguniform(np.random.default_rng(child), 1e3, 1e6)
        time = Time(np.full(curve['time'].shape, offset), curve['time'],
                    format='jd', scale='tdb')
        meta = {'MISSION': MISSIONS[mission]['mission'], 'mission': mission,
                'noise_ppm': curve['noise_ppm'],
                'cdpp_ppm': curve['cdpp_ppm'], 'kind': curve['kind'],
                'seed': curve['seed']}
        curves.append(TimeSeries(
            time=time, data={'flux': curve['flux'] * level * unit,
                             'flux_err': curve['flux_err'] * level * unit,
                             'quality': curve['quality']}, meta=meta))
    t0 = np.asarray(signals['t0'], dtype=np.float64)
    signals['t0'] = Time(np.full(t0.shape, offset), t0, format='jd',
                         scale='tdb')
    return curves, signals


def _check_arguments(n, mission, baseline, kinds, fractions, depth_range,
                     period_range, min_transits, noise_range):
    """The arguments checked, as the configuration of every curve."""
    if mission not in MISSIONS:
        msg = f'mission must be one of {sorted(MISSIONS)}, not {mission!r}'
        raise ValueError(msg)
    if int(n) != n or n < 0:
        msg = f'n must be a non-negative integer, not {n!r}'
        raise ValueError(msg)
    spec = MISSIONS[mission]
    baseline = spec['baseline'] if baseline is None else float(baseline)
    if not baseline >= 1.0:
        msg = f'baseline must be at least 1 day, not {baseline!r}'
        raise ValueError(msg)
    kinds = KINDS if kinds is None else tuple(kinds)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        msg = (f'kinds must be distinct kinds of {KINDS}, not {kinds!r}')
        raise ValueError(msg)
    fractions = check_fractions(fractions, kinds, _FRACTIONS)
    for name, value in (('depth_range', depth_range),
                        ('period_range', period_range),
                        ('noise_range', noise_range)):
        if value is not None and not (len(value) == 2
                                      and 0 < value[0] <= value[1]):
            msg = f'{name} must be (low, high) with 0 < low <= high, not {value}'
            raise ValueError(msg)
    if int(min_transits) != min_transits or min_transits < 1:
        msg = f'min_transits must be a positive integer, not {min_transits!r}'
        raise ValueError(msg)
    step = spec['cadence'] / 1440.0
    n_cadences = int(round(baseline / step))
    span = (n_cadences - 1) * step
    longest = float(period_range[1])
    if min_transits > 1:
        longest = min(longest, span / (min_transits - 1) * (1 - 1e-6))
    if longest <= period_range[0]:
        msg = (f'period_range {tuple(period_range)} cannot give '
               f'min_transits={min_transits} transits in a baseline of '
               f'{baseline} days: the shortest period must be below '
               f'{span / max(min_transits - 1, 1):.4g} days')
        raise ValueError(msg)
    return {'mission': mission, 'spec': spec, 'step': step,
            'n_cadences': n_cadences, 'span': span, 'kinds': kinds,
            'fractions': fractions, 'depth_range': tuple(depth_range),
            'periods': (float(period_range[0]), longest),
            'min_transits': int(min_transits),
            'noise_range': tuple(noise_range or spec['noise_range'])}


def _simulate_curve(rng, config):
    """One curve and its signals, all drawn from ``rng``."""
    spec, step = config['spec'], config['step']
    start = rng.uniform(*spec['start_range'])
    full_time = start + step * np.arange(config['n_cadences'])
    keep, resumes = _gaps(rng, full_time, spec, config['span'])
    time = full_time[keep]
    kind = config['kinds'][rng.choice(len(config['kinds']),
                                      p=config['fractions'])]
    signals = _draw_signals(rng, kind, start, config)
    exposure = step if spec['supersample'] > 1 else None
    model = np.ones_like(time)
    for signal in signals:
        shape = transit_model(
            time, period=signal['period'], t0=signal['t0'],
            rp_rs=signal['rp_rs'], a_rs=signal['a_rs'],
            impact=signal['impact'], u=signal['u'],
            secondary_depth=signal['secondary_depth'] / signal['dilution']
            * 1e-6, secondary_phase=signal['secondary_phase'],
            supersample=spec['supersample'], exposure=exposure)
        # Tidal distortion: minima of light at the conjunctions.
        phase = 4 * np.pi * (time - signal['t0']) / signal['period']
        shape -= signal['ellipsoidal'] * (np.cos(phase) - 1)
        # A planet's day side, brightest at phase 0.5.
        shape += signal.get('phase_curve', 0.0) * (1 - np.cos(phase / 2)) / 2
        model *= 1 - signal['dilution'] * (1 - shape)
    sigma = loguniform(rng, *config['noise_range']) * 1e-6
    star = 1 + _rotation_and_variability(rng, time, step, kind)
    clean = model * star + _flares(rng, time, step)
    flux, quality, red = _systematics(rng, clean, time, full_time, keep,
                                      resumes, step, sigma)
    flux_err = sigma * np.sqrt(np.clip(clean, 0.05, None))
    level = np.median(flux[quality == 0])
    rows = [_signal_row(signal, time, quality, sigma) for signal in signals]
    curve = {'time': time, 'flux': flux / level, 'flux_err': flux_err / level,
             'quality': quality, 'mission': config['mission'], 'kind': kind,
             'noise_ppm': sigma * 1e6,
             'cdpp_ppm': _cdpp(sigma, red, step) * 1e6}
    return curve, rows


def _gaps(rng, time, spec, span):
    """Cadences kept and the times data resume (after each gap)."""
    start = time[0]
    if spec['mission'] == 'Kepler':  # monthly downlinks, ~1 day each
        first = start + rng.uniform(0.2, 1.0) * spec['gap_interval']
        centres = first + np.cumsum(np.concatenate([
            [0.0], rng.uniform(28.0, 32.0, int(span // 28.0) + 1)]))
    else:  # a downlink mid-sector and between sectors (every 13.7 d)
        n_gaps = int(span // spec['gap_interval']) + 1
        centres = (start + spec['gap_interval'] * np.arange(1, n_gaps + 1)
                   + rng.uniform(-0.3, 0.3, n_gaps))
    lengths = rng.uniform(0.7, 1.2, centres.size)
    keep = np.ones(time.size, dtype=bool)
    resumes = [start]
    for centre, length in zip(centres, lengths):
        inside = np.abs(time - centre) < length / 2
        if centre + length / 2 < time[-1] - 1.0 and inside.any():
            keep &= ~inside
            resumes.append(centre + length / 2)
    return keep, resumes


def _draw_signals(rng, kind, start, config):
    """The periodic signals of a curve of ``kind``."""
    signals = []
    if kind in ('eb', 'beb'):
        signals.append(_draw_eb(rng, start, config, blended=kind == 'beb'))
        n_planets = int(rng.random() < 0.2)
    elif kind == 'planet':
        n_planets = rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])
    else:
        n_planets = 0
    for _ in range(n_planets):
        taken = [s['period'] for s in signals]
        taken += [s['period'] / 2 for s in signals if s['kind'] != 'planet']
        planet = _draw_planet(rng, start, config, taken)
        if planet is not None:
            signals.append(planet)
    return signals


def _orbit(rng, start, config, density):
    """Period, first epoch and a / R* (for a stellar ``density``, solar)."""
    period = loguniform(rng, *config['periods'])
    window = min(period, config['span'] - (config['min_transits'] - 1) * period)
    t0 = start + rng.uniform(0.0, window)
    return period, t0, _A_RS_1DAY * (density * period ** 2) ** (1 / 3)


def _limb_darkening(rng):
    u1 = float(np.clip(rng.normal(0.4, 0.1), 0.05, 0.8))
    u2 = float(np.clip(rng.normal(0.25, 0.08), 0.0, 0.9 - u1))
    return u1, u2


def _central_brightness(u, impact):
    """Limb-darkened brightness at ``impact`` over the disk's mean."""
    mu = np.sqrt(max(1 - impact ** 2, 0.0))
    return ((1 - u[0] * (1 - mu) - u[1] * (1 - mu) ** 2)
            / (1 - u[0] / 3 - u[1] / 6))


def _draw_planet(rng, start, config, taken):
    """A planet whose period avoids ``taken`` and their 1:2 and 2:1."""
    for _ in range(50):
        period, t0, a_rs = _orbit(rng, start, config,
                                  loguniform(rng, 0.3, 3.0))
        ratios = period / np.asarray(taken + [np.inf])
        if not any(np.any(np.abs(ratios / r - 1) < 0.05) for r in (1, 2, 0.5)):
            break
    else:
        return None
    impact = rng.uniform(0.0, 0.9)
    u = _limb_darkening(rng)
    depth = loguniform(rng, *config['depth_range']) * 1e-6
    rp_rs = np.sqrt(depth / _central_brightness(u, impact))
    signal = {'kind': 'planet', 'period': period, 't0': t0, 'rp_rs': rp_rs,
              'a_rs': max(a_rs, 1.5 * (1 + rp_rs)), 'impact': impact, 'u': u,
              'secondary_depth': 0.0, 'secondary_phase': 0.5,
              'ellipsoidal': 0.0, 'dilution': 1.0, 'odd_even': 1.0,
              'search_period': period}
    signal['depth'] = _depth(signal)
    signal.update(_planet_light(rng, signal, config['spec']['mission']))
    return signal


def _planet_light(rng, signal, mission):
    """
    What a close-in planet adds beyond its transit (Shporer 2017): its
    occultation at phase 0.5 (thermal emission of a dayside without heat
    redistribution, plus reflected light), its phase curve and the star's
    ellipsoidal variation from the planet's mass. Negligible but for hot
    giants; WASP-18 b shows about 340 ppm and 190 ppm in TESS.
    """
    # Closer than about 2.7 stellar radii a giant would be torn apart
    # (Roche limit): such short orbits get the light of one at 2.7.
    rp_rs, a_rs = signal['rp_rs'], max(signal['a_rs'], 2.7)
    t_star = rng.uniform(4500.0, 6700.0)
    t_day = t_star * np.sqrt(1.0 / a_rs) * (2.0 / 3.0) ** 0.25
    # Planck's law at the band's centre: Kepler 0.65 micron, TESS 0.8.
    x = 0.014388 / (0.65e-6 if mission == 'Kepler' else 0.8e-6)
    thermal = np.expm1(x / t_star) / np.expm1(x / t_day)
    albedo = rng.uniform(0.0, 0.2)
    occultation = rp_rs ** 2 * thermal + albedo * (rp_rs / a_rs) ** 2
    # Giants (about Saturn's radius and up around a Sun-like star) span
    # 0.1-13 Jupiter masses; smaller planets, Earth to Neptune masses.
    if rp_rs > 0.06:
        mass_ratio = loguniform(rng, 0.1, 13.0) * 9.55e-4
    else:
        mass_ratio = loguniform(rng, 3e-6, 5e-5)
    sin_i2 = 1 - (signal['impact'] / signal['a_rs']) ** 2
    return {'secondary_depth': float(occultation * 1e6),
            'phase_curve': float(occultation * rng.uniform(0.5, 1.0)),
            'ellipsoidal': float(mass_ratio * a_rs ** -3 * sin_i2)}


def _depth(signal):
    """Depth at mid-transit, unbinned and undiluted, ppm."""
    flux = transit_model(np.array([signal['t0']]), period=signal['period'],
                         t0=signal['t0'], rp_rs=signal['rp_rs'],
                         a_rs=signal['a_rs'], impact=signal['impact'],
                         u=signal['u'])
    return (1.0 - flux[0]) * 1e6


def _draw_eb(rng, start, config, blended):
    """An eclipsing binary; diluted (a background EB) if ``blended``."""
    period, t0, _ = _orbit(rng, start, config, 1.0)
    density, mass_ratio = loguniform(rng, 0.3, 3.0), rng.uniform(0.3, 1.0)
    u = _limb_darkening(rng)
    signal = {'kind': 'beb' if blended else 'eb', 'period': period, 't0': t0,
              'u': u, 'dilution': 1.0}
    for _ in range(20):
        if rng.random() < 0.3:  # grazing: V-shaped
            rp_rs = rng.uniform(0.2, 0.6)
            impact = rng.uniform(1 - 0.9 * rp_rs, 1 + 0.2 * rp_rs)
        else:
            depth, fraction = loguniform(rng, 0.01, 0.4), rng.uniform(0, 0.9)
            rp_rs = np.sqrt(depth)
            for _ in range(3):
                impact = fraction * (1 - rp_rs)
                rp_rs = np.sqrt(depth / _central_brightness(u, impact))
            impact = fraction * (1 - rp_rs)
        a_rs = _A_RS_1DAY * (density * (1 + mass_ratio) * period ** 2) ** (1 / 3)
        signal.update(rp_rs=rp_rs, impact=impact,
                      a_rs=max(a_rs, 2.5 * (1 + rp_rs)))
        signal['depth'] = _depth(signal)
        if signal['depth'] >= 0.01e6:
            break
    depth = signal['depth']
    similar = rng.random() < 0.5
    if similar:  # a search finds half the period: odd and even differ
        ratio, phase = rng.uniform(0.7, 0.9), 0.5
        signal.update(odd_even=1 / ratio, search_period=period / 2)
    else:  # eccentric half of the time: the secondary off phase 0.5
        ratio = rng.uniform(0.0, 0.6)
        phase = 0.5 + (rng.uniform(-0.05, 0.05) if rng.random() < 0.5 else 0)
        signal.update(odd_even=1.0, search_period=period)
    if blended:
        low = max(0.001, 200.0 / depth)
        signal['dilution'] = loguniform(rng, low, min(0.1, 30000.0 / depth))
    sin_i2 = 1 - (signal['impact'] / signal['a_rs']) ** 2
    signal.update(
        depth=depth * signal['dilution'],
        secondary_depth=ratio * depth * signal['dilution'],
        secondary_phase=phase,
        ellipsoidal=mass_ratio * signal['a_rs'] ** -3 * sin_i2)
    return signal


def _signal_row(signal, time, quality, sigma):
    """A row of the signals table: the signal seen on the good data."""
    period, t0 = signal['period'], signal['t0']
    duration = _t14(period, signal['a_rs'], signal['rp_rs'], signal['impact'])
    good = quality == 0
    inside = good & _near(time, t0, period, duration / 2)
    epochs = np.round((time[inside] - t0) / period)
    row = {key: signal[key] for key in (
        'kind', 'period', 't0', 'depth', 'rp_rs', 'a_rs', 'impact',
        'secondary_depth', 'odd_even', 'dilution', 'search_period')}
    row.update(duration=duration * 24.0,
               snr=signal['depth'] * 1e-6 / sigma * np.sqrt(inside.sum()),
               n_transits=np.unique(epochs).size)
    return row


def _t14(period, a_rs, rp_rs, impact):
    """Total duration (first to fourth contact) on a circular orbit, days."""
    sin_i = np.sqrt(1 - (impact / a_rs) ** 2)
    chord = np.sqrt(max((1 + rp_rs) ** 2 - impact ** 2, 0.0))
    return period / np.pi * np.arcsin(min(chord / (a_rs * sin_i), 1.0))


def _near(time, t0, period, half_width):
    """True at times within ``half_width`` of an epoch ``t0 + k period``."""
    offset = (time - t0 + period / 2) % period - period / 2
    return np.abs(offset) < half_width


def _rotation_and_variability(rng, time, step, kind):
    """
    Relative stellar variability: rotation (70 %) and, for ``variable``,
    pulsations, strong spot modulation or spot dips.
    """
    flux = np.zeros_like(time)
    if rng.random() < 0.7:
        flux += _rotation(rng, time, loguniform(rng, 1.0, 40.0),
                          loguniform(rng, 100e-6, 20000e-6))
    if kind != 'variable':
        return flux
    style = rng.integers(3)
    if style == 0:  # pulsations, smeared by the exposure
        n_modes = rng.integers(2, 7)
        periods = loguniform(rng, 0.1, 5.0, n_modes)
        amplitudes = loguniform(rng, 50e-6, 5000e-6, n_modes)
        phases = rng.uniform(0, 2 * np.pi, n_modes)
        for period, amplitude, phase in zip(periods, amplitudes, phases):
            flux += (amplitude * np.sinc(step / period)
                     * np.sin(2 * np.pi * time / period + phase))
    elif style == 1:  # strong spot modulation of a fast rotator
        flux += _rotation(rng, time, loguniform(rng, 0.5, 10.0),
                          loguniform(rng, 3000e-6, 30000e-6))
    else:  # rotating spots: a sequence of rounded dips
        period = loguniform(rng, 0.5, 10.0)
        for _ in range(rng.integers(1, 3)):
            amplitude = loguniform(rng, 300e-6, 20000e-6) * _evolution(
                rng, time, period * rng.uniform(2.0, 8.0), 0.4)
            visible = np.cos(2 * np.pi * (time / period - rng.random()))
            flux -= amplitude * np.clip(visible, 0, None) ** rng.uniform(1, 4)
    return flux


def _evolution(rng, time, timescale, spread):
    """A slowly varying positive factor (around 1) on ``timescale``."""
    knots = np.arange(time[0] - timescale, time[-1] + 2 * timescale, timescale)
    return np.interp(time, knots, np.abs(1 + rng.normal(0, spread, knots.size)))


def _rotation(rng, time, period, amplitude):
    """
    Quasi-periodic spot modulation: harmonics whose amplitudes and phases
    evolve on a spot lifetime of a few rotations.
    """
    lifetime = period * rng.uniform(1.5, 6.0)
    knots = np.arange(time[0] - lifetime, time[-1] + 2 * lifetime, lifetime)
    flux = np.zeros_like(time)
    weights = (1.0, rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.2))
    for harmonic, weight in enumerate(weights, start=1):
        drift = np.interp(time, knots, np.cumsum(rng.normal(0, 0.4,
                                                            knots.size)))
        flux += (amplitude * weight * _evolution(rng, time, lifetime, 0.4)
                 * np.sin(2 * np.pi * harmonic * time / period + drift
                          + rng.uniform(0, 2 * np.pi)))
    return flux


def _flares(rng, time, step):
    """Flares (20 % of stars), averaged over each exposure exactly."""
    flux = np.zeros_like(time)
    if rng.random() >= 0.2:
        return flux
    rate = loguniform(rng, 0.05, 1.0)
    count = rng.poisson(rate * (time[-1] - time[0]))
    for peak_time in rng.uniform(time[0], time[-1], count):
        amplitude = loguniform(rng, 1e-3, 5e-2)
        decay = rng.uniform(5.0, 60.0) / 1440.0
        rise = decay * rng.uniform(0.05, 0.2)
        low, high = np.searchsorted(time, [peak_time - 10 * rise - step,
                                           peak_time + 12 * decay + step])
        begin = time[low:high] - step / 2 - peak_time
        end = begin + step
        # Integrals of exp(t / rise) before the peak, exp(-t / decay) after.
        before = rise * (np.exp(np.minimum(end, 0) / rise)
                         - np.exp(np.minimum(begin, 0) / rise))
        after = decay * (np.exp(-np.maximum(begin, 0) / decay)
                         - np.exp(-np.maximum(end, 0) / decay))
        flux[low:high] += amplitude * (before + after) / step
    return flux


def _systematics(rng, clean, time, full_time, keep, resumes, step, sigma):
    """
    The observed flux: trend, ramps, momentum dumps, red and white noise,
    cosmic rays and corrupted cadences; with the quality flags.
    """
    n = time.size
    quality = np.zeros(n, dtype=np.int32)
    x = 2 * (time - full_time[0]) / (full_time[-1] - full_time[0]) - 1
    scale = loguniform(rng, 1e-4, 3e-3)
    gain = 1 + scale * (rng.normal() * x + rng.normal() * x ** 2)
    for resume in resumes:  # thermal settling after each gap
        after = np.clip(time - resume, 0, None)
        sign = -1.0 if rng.random() < 0.7 else 1.0
        gain += (sign * loguniform(rng, 1e-3, 1e-2) * (time >= resume)
                 * np.exp(-after / rng.uniform(0.2, 1.0)))
    # Momentum dumps: flagged cadences off by a few sigma, small steps after.
    interval = rng.uniform(2.5, 3.5)
    dumps = np.arange(time[0] + rng.uniform(0, interval), time[-1], interval)
    width = max(1, round(10.0 / (step * 1440.0))) * step
    offset = np.zeros(n)
    for dump in dumps:
        flagged = (time >= dump) & (time < dump + width)
        quality[flagged] |= QualityFlags.DESAT
        offset[flagged] += rng.normal(0, 3 * sigma)
        offset[time >= dump] += rng.normal(0, 0.3 * sigma)
    # Granulation: an AR(1) process on the full, gap-free grid.
    red_sigma, tau = rng.uniform(0, 1) * sigma, loguniform(rng, 0.05, 1.0)
    phi = np.exp(-step / tau)
    red = lfilter([np.sqrt(1 - phi ** 2) * red_sigma], [1, -phi],
                  rng.normal(size=full_time.size),
                  zi=[phi * red_sigma * rng.normal()])[0][keep]
    flux = clean * gain + offset + red + rng.normal(0, sigma, n)
    cosmic = np.flatnonzero(rng.random(n) < 0.001)
    flux[cosmic] += loguniform(rng, 3.0, 30.0, cosmic.size) * sigma
    quality[cosmic[rng.random(cosmic.size) < 0.5]] |= QualityFlags.MANUAL_EXCLUDE
    bad = np.flatnonzero(rng.random(n) < 0.005)
    quality[bad] |= rng.choice(_CORRUPT_BITS, bad.size)
    flux[bad] += rng.normal(0, 1, bad.size) * (
        5 * sigma + loguniform(rng, 1e-3, 3e-2, bad.size))
    return flux, quality, (red_sigma, phi)


def _cdpp(sigma, red, step):
    """White plus AR(1) noise of a 1-hour mean (relative)."""
    red_sigma, phi = red
    per_hour = 1 / 24 / step
    m = max(int(round(per_hour)), 1)
    lags = np.arange(1, m)
    red_variance = red_sigma ** 2 / m ** 2 * (
        m + 2 * np.sum((m - lags) * phi ** lags))
    return np.sqrt(sigma ** 2 / per_hour + red_variance)
