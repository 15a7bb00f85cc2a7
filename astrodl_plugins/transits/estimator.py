# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``transit`` estimator: search a light curve for periodic transits
and vet each candidate with a 1-D CNN and MC dropout.

A fill-in of the *1-D* family (`~astrodl_plugins.core.series.SeriesEstimator`):
its rows are the candidate signals that the classical search
(`~astrodl_plugins.transits.search.search_transits`: wotan, then
astropy's box least squares or transitleastsquares) finds in each light
curve, none or several per input; the network reads their folded views
and the class probabilities come from
`~astrodl_plugins.classification.ClassProbabilities`, as the image
classifiers' do.
"""

import numpy as np
from astropy import units as u

from ..classification.estimator import (
    ClassProbabilities,
    check_class_prior,
    class_indices,
)
from ..core.flags import SourceFlags
from ..core.series import SeriesEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from . import search

__all__ = ['TransitVetter', 'TRANSIT_SEARCH_OPTIONS', 'clean_series']

#: The search keywords of `TransitVetter.predict` and their defaults.
TRANSIT_SEARCH_OPTIONS = {key: value for key, value in
                          search.SEARCH_DEFAULTS.items()
                          if key not in ('oversample', 'search_cadence')}


class _Row:
    """One candidate and the light curve it was found in (for the views)."""

    def __init__(self, candidate, time, flat, time_scale):
        self.candidate = candidate
        self.time = time
        self.flat = flat
        self.time_scale = time_scale


class TransitVetter(ClassProbabilities, TrainableMixin, SeriesEstimator):
    """
    Find and vet periodic transits in light curves (Kepler, K2, TESS).

    For each light curve, `predict` masks bad cadences (NaN, and the
    ``quality`` bits Kepler and TESS set for bad data), sorts the times
    and drops repeated ones, normalises the flux (any unit), detrends it
    with wotan's biweight (``window`` days; a robust spline with knots
    every ``spline_window`` days for a star varying faster than that
    window follows, see `~astrodl_plugins.transits.search.detrend`),
    searches periods from
    ``period_min`` to ``period_max`` days (astropy's `BoxLeastSquares`,
    or transitleastsquares with ``method='tls'``) on the Ofir (2014)
    grid, and masks each signal found to search again (up to
    ``max_candidates``, while the periodogram peak has an SDE of
    ``min_sde`` and an S/N of ``min_snr``). Each candidate is folded into
    the global, local, odd, even and secondary views, which the network
    reads with scalar features (period, duration, depth...).

    One row per candidate: ``index`` (position of its light curve in
    ``data``), ``candidate`` (1 for the strongest signal of that light
    curve), ``period``, ``t0`` (a mid-transit `~astropy.time.Time`, in
    the light curve's time scale), ``duration``, ``depth`` (ppm),
    ``snr``, ``sde``, ``n_transits``, ``p_planet`` (calibrated
    MC-dropout probability that the signal is a transiting planet rather
    than an eclipsing binary, a blended binary, stellar variability or
    noise) with ``p_planet_err``, ``p_false_positive``, ``class``,
    ``entropy``, ``mutual_information``, ``ood_score`` and ``flag``. A
    light curve with no signal above the thresholds has no row; one that
    cannot be searched (all values masked, a baseline too short for two
    transits at ``period_min``, no times) has one NaN row flagged
    ``UNUSABLE``, or, given alone, raises a ValueError that says why.
    ``PERIOD_ALIAS`` flags a candidate whose transits with data all have
    the same parity (the others fall in gaps), or whose odd and even
    transits differ as a doubled period's do when too few transits were
    there to double it (`~astrodl_plugins.transits.search.alternating`):
    its true period may be twice the one given, or its transits may
    belong to different bodies. ``LOW_SNR`` flags a candidate whose S/N is below
    `reliable_snr`, where the held-out simulations show the vetter's
    calls to be unreliable.

    Parameters
    ----------
    n_global, n_local : int, optional
        Bins of the global and local views.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    class_prior : sequence or dict, optional
        Fractions of planets and false positives among the candidates
        measured (default: those of the simulated calibration set).

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('transit')
    >>> est.classes
    ('planet', 'false_positive')
    """

    name = 'transit'
    task = 'classification'
    version = '1.0'
    description = ('Transit search (wotan + box least squares) and CNN '
                   'vetting of each candidate, calibrated MC-dropout '
                   'p_planet (Shallue & Vanderburg 2018)')
    default_preset = 'transit'
    classes = ('planet', 'false_positive')
    min_points = 50
    predict_options = dict(TRANSIT_SEARCH_OPTIONS)
    flag_names = ('MASKED', 'OUT_OF_RANGE', 'UNUSABLE', 'UNFAMILIAR',
                  'PERIOD_ALIAS', 'LOW_SNR')
    #: Held-out AUC a band of S/N needs for its calls to count as reliable
    #: (`reliable_snr`).
    reliable_auc = 0.95
    range_margins = {'period': (0.0, 0.0), 'depth': (0.0, 0.0),
                     'duration': (0.25, 0.25)}

    def __init__(self, n_global=2001, n_local=201, dense=128, dropout=0.3,
                 class_prior=None):
        self.n_global = n_global
        self.n_local = n_local
        self.dense = dense
        self.dropout = dropout
        self.class_prior = class_prior

    # -- hooks of the 1-D family -------------------------------------------

    def _options(self, options):
        options = super()._options(options)
        _check_search_options(options)
        check_class_prior(self.class_prior, self.classes)
        return options

    def _usable(self, series, context):
        period_min = context.options['period_min']
        reasons = [_unusable_reason(s, self.min_points, period_min)
                   for s in series]
        if len(series) == 1 and reasons[0]:
            msg = f'data cannot be searched for transits: {reasons[0]}'
            raise ValueError(msg)
        return [reason is None for reason in reasons]

    def _rows(self, series, context):
        options = context.options
        rows = []
        for s in series:
            time, flux = clean_series(s)
            found, flat = search.search_transits(time, flux, **options)
            rows.append([_Row(c, time, search.mask_others(time, flat, c,
                                                          found),
                              s.time_scale) for c in found])
        return rows

    def _prepare(self, rows, context):
        n = len(rows)
        global_views = np.zeros((n, self.n_global, 1), np.float32)
        local_views = np.zeros((n, self.n_local, len(search.VIEW_NAMES) - 1),
                               np.float32)
        scalars = np.zeros((n, len(search.SCALAR_NAMES)), np.float32)
        for k, row in enumerate(rows):
            g, loc, sc = search.transit_views(row.time, row.flat,
                                              row.candidate,
                                              n_global=self.n_global,
                                              n_local=self.n_local)
            global_views[k, :, 0], local_views[k], scalars[k] = g, loc, sc
        candidates = [row.candidate for row in rows]
        # Every transit with data of one parity, or odd and even transits
        # as different as a doubled period's when too few transits were
        # there to double it: the period may be 2P, or the transits may
        # belong to different bodies.
        alias = np.array([c.extra.get('n_odd', 1) == 0
                          or c.extra.get('n_even', 1) == 0
                          or search.alternating(c.extra)
                          for c in candidates], bool)
        context.flags[context.usable] |= np.where(
            alias, SourceFlags.PERIOD_ALIAS, 0).astype(context.flags.dtype)
        # Weak signals, where the held-out AUC is below reliable_auc.
        reliable = self.reliable_snr()
        if reliable is not None:
            weak = np.array([c.snr < reliable for c in candidates], bool)
            context.flags[context.usable] |= np.where(
                weak, SourceFlags.LOW_SNR, 0).astype(context.flags.dtype)
        aux = context.aux
        aux['period'] = np.array([c.period for c in candidates])
        aux['depth'] = np.array([c.depth * 1e6 for c in candidates])
        aux['duration'] = np.array([c.duration * 24 for c in candidates])
        aux['t0'] = np.array([c.t0 for c in candidates])
        aux['snr'] = np.array([c.snr for c in candidates])
        aux['sde'] = np.array([c.sde for c in candidates])
        aux['n_transits'] = np.array([c.n_transits for c in candidates])
        aux['detrending'] = np.array([c.extra.get('detrending', '')
                                      for c in candidates], dtype=object)
        aux['candidate'] = np.array([c.number for c in candidates])
        aux['time_scale'] = np.array([row.time_scale or 'tdb' for row in rows])
        return [global_views, local_views, scalars]

    def reliable_snr(self):
        """
        The S/N from which the vetter's calls are reliable, or `None`.

        The lower edge of the lowest band of S/N of the model card's table
        "Held-out candidates by S/N" from which every band up has a
        held-out AUC of at least `reliable_auc`; candidates below it are
        flagged ``LOW_SNR``. `None` for a model without that table.

        Returns
        -------
        float or None
        """
        card = getattr(self, 'card_', None) or {}
        table = next((t for t in card.get('tables', [])
                      if str(t.get('title', '')).startswith(
                          'Held-out candidates by S/N')), None)
        if table is None:
            return None
        bands = []
        for row in table['rows']:
            auc = str(row[table['header'].index('AUC')])
            if auc:  # empty: a band without both classes
                bands.append((float(str(row[0]).split('-')[0]), float(auc)))
        threshold = None
        for low, auc in sorted(bands, reverse=True):
            if not auc >= self.reliable_auc:
                break
            threshold = low
        # No reliable band: every candidate is weak.
        return threshold if threshold is not None else np.inf

    def _decode(self, raw, context, rng):
        return self._probability_draws(raw)

    def _extra_columns(self, columns, draws, context):
        from astropy.time import Time

        usable = context.usable
        aux = context.aux

        def expand(values, fill=np.nan, dtype=np.float64):
            out = np.full(len(usable), fill, dtype)
            out[usable] = values
            return out

        # One Time column needs one scale: that of the light curves (TDB
        # for Kepler and TESS), else TDB.
        scales = set(aux['time_scale'].tolist())
        scale = next(iter(scales)) if len(scales) == 1 else 'tdb'
        t0 = np.array(aux['t0'], np.float64)
        if len(scales) > 1:
            for other in scales:
                rows = aux['time_scale'] == other
                t0[rows] = Time(t0[rows], format='mjd', scale=other).tdb.mjd
        # Rows of unusable light curves: a masked time.
        t0 = Time(expand(t0, 0.0), format='mjd', scale=scale)
        if not usable.all():
            t0[~usable] = np.ma.masked
        leading = {
            'candidate': expand(aux['candidate'], 0, np.int64),
            'period': expand(aux['period']) * u.day,
            't0': t0,
            'duration': expand(aux['duration']) * u.hour,
            'depth': expand(aux['depth']),
            'snr': expand(aux['snr']),
            'sde': expand(aux['sde']),
            'n_transits': expand(aux['n_transits'], 0, np.int64),
            'detrending': expand(aux['detrending'], '', object).astype(str),
        }
        return {**leading,
                **super()._extra_columns(columns, draws, context)}

    def _extra_meta(self, context):
        meta = super()._extra_meta(context)
        meta['search'] = {
            **{key: context.options[key] for key in TRANSIT_SEARCH_OPTIONS},
            'detrending': (
                f"wotan biweight, window {context.options['window']} d; "
                + ('robust spline (wotan hspline), knots every '
                   f"{context.options['spline_window']} d, for light curves "
                   'where it brings the scatter of 1-hour means below '
                   f'{search.SPLINE_GAIN} of the biweight\'s'
                   if context.options['spline_window'] is not None
                   else 'no spline')),
            'period_grid': 'Ofir (2014), transitleastsquares period_grid',
            'quality': 'cadences with quality bits other than '
                       'QUALITY_IGNORED masked'}
        meta['depth_unit'] = 'ppm'
        reliable = self.reliable_snr()
        if reliable is not None:
            meta['reliable_snr'] = float(reliable)
        return meta

    # -- training ------------------------------------------------------------

    def _training_data(self, global_views, labels, local_views, scalars):
        """
        ``(global_views, labels, local_views, scalars)``: views as
        `transit_views` makes them, labels as class names or indices.
        """
        global_views = np.asarray(global_views, np.float32)
        if global_views.ndim == 2:
            global_views = global_views[..., None]
        targets = class_indices(labels, self.classes)
        return (global_views, targets,
                np.asarray(local_views, np.float32),
                np.asarray(scalars, np.float32))

    def _training_tasks(self, train, validation, *, new, augment, seed):
        import keras

        def prepare(inputs, targets, rng):
            global_views, local_views, scalars = inputs
            if augment:
                # Mirror the views in time: a transit is symmetric, and
                # so should its vetting be.
                flip = rng.random(len(targets)) < 0.5
                global_views = np.where(flip[:, None, None],
                                        global_views[:, ::-1],
                                        global_views)
                local_views = np.where(flip[:, None, None],
                                       local_views[:, ::-1], local_views)
            return [global_views, local_views, scalars], targets

        def order(data):
            global_views, targets, local_views, scalars = data
            return [global_views, local_views, scalars], targets

        if new:
            self.temperature_ = 1.0
        return [TrainingTask(
            'model', self.build, train=order(train),
            validation=order(validation),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            prepare=prepare, epochs=20, batch_size=128, patience=4,
            learning_rate=1e-3)]

    def build(self):
        """A new (untrained) vetting network."""
        from .network import build_vetter

        return build_vetter(self.n_global, self.n_local, dense=self.dense,
                            dropout=self.dropout)


def _check_search_options(options):
    """The search keywords of ``predict``, checked (clear errors)."""
    if options['method'] not in ('bls', 'tls'):
        msg = f"method must be 'bls' or 'tls', got {options['method']!r}"
        raise ValueError(msg)
    for key in ('window', 'spline_window', 'period_min', 'period_max',
                'min_sde', 'min_snr'):
        value = options[key]
        if key == 'spline_window' and value is None:
            continue
        if isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)) or not (
                np.isfinite(value)) or (value <= 0 and key != 'min_sde'):
            msg = f'{key} must be a positive number, got {value!r}'
            if key == 'spline_window':
                msg += ' (or None: no spline)'
            raise ValueError(msg)
    if options['period_max'] <= options['period_min']:
        msg = (f"period_max ({options['period_max']}) must exceed "
               f"period_min ({options['period_min']})")
        raise ValueError(msg)
    for key in ('min_transits', 'max_candidates'):
        value = options[key]
        if isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < (2 if key ==
                                                      'min_transits' else 1):
            low = 2 if key == 'min_transits' else 1
            msg = f'{key} must be an integer >= {low}, got {value!r}'
            raise ValueError(msg)


def _unusable_reason(series, min_points, period_min):
    """Why a light curve cannot be searched, or None."""
    if series.coordinate is None:
        return ('it has no times: give an astropy TimeSeries (or a '
                'lightkurve LightCurve) with a time column')
    good = ~series.mask & np.isfinite(series.coordinate)
    n_good = int(np.count_nonzero(good))
    if n_good < min_points:
        return (f'{n_good} good cadences (finite flux and time, no bad '
                f'quality bit), fewer than {min_points}')
    values = series.values[good]
    if np.nanmedian(values) <= 0:
        return ('its median flux is not positive: give fluxes (any unit), '
                'not magnitudes or a flux already minus its median')
    times = series.coordinate[good]
    baseline = float(np.ptp(times))
    if baseline <= 0:
        return 'all good cadences have the same time'
    if baseline < period_min:
        return (f'its good cadences span {baseline:.3g} days, too short for '
                f'two transits at period_min={period_min:g} days')
    return None


def clean_series(series):
    """
    The good cadences of a `~astrodl_plugins.core.series.Series` sorted in
    time, repeated times dropped: ``(time, flux / median)``.
    """
    good = ~series.mask & np.isfinite(series.coordinate)
    time = series.coordinate[good]
    flux = series.values[good]
    order = np.argsort(time, kind='stable')
    time, flux = time[order], flux[order]
    keep = np.concatenate([[True], np.diff(time) > 0])
    time, flux = time[keep], flux[keep]
    return time, flux / np.median(flux)
