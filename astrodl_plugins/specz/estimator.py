# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``spec-redshift`` estimator: galaxy redshifts from 1-D spectra, as
classification over redshift bins (Stivaktakis et al. 2019) with
MC-dropout posteriors.

A fill-in of the *1-D* family (`~astrodl_plugins.core.series.SeriesEstimator`):
each spectrum is one row; `_prepare` resamples it onto the model's
log-wavelength grid with specutils' `FluxConservingResampler` and
normalises it (`network_input`); `_decode` turns the MC draws of the
softmax over redshift bins into the redshift of the posterior's main peak.
"""

import numpy as np

from ..core.base import Draws
from ..core.flags import SourceFlags
from ..core.series import SeriesEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from ._resample import model_grid, resample_series

__all__ = ['SpecRedshift', 'network_input', 'posterior_quantiles',
           'MULTIMODAL_THRESHOLD']

#: ``p_multimodal`` above which a row is flagged ``MULTIMODAL``.
MULTIMODAL_THRESHOLD = 0.2
#: Half-width of the posterior's main peak, in units of ``1 + z_mode``
#: (the outlier threshold of the redshift literature).
PEAK_HALF_WIDTH = 0.01
#: Fraction of the model's band a spectrum must cover not to be flagged
#: ``PARTIAL_COVERAGE``.
MIN_COVERAGE = 0.9
_ROWS_PER_CHUNK = 128
#: Standard deviation (in bins) of the Gaussian-smoothed training labels.
LABEL_SIGMA_BINS = 1.5


def network_input(flux, ivar, mask):
    """
    Spectra on the model's grid -> the network's input channels.

    Parameters
    ----------
    flux, ivar : array
        ``(n, n_pixels)`` flux densities (any unit) and their inverse
        variances (0 where unknown).
    mask : array of bool
        ``(n, n_pixels)``, True for bad pixels.

    Returns
    -------
    channels : `~numpy.ndarray`
        ``(n, n_pixels, 3)`` float32: the flux over its median absolute
        value (unit-free), 1 for good pixels, and the S/N per pixel of
        that unit level over 10; all 0 at bad pixels.
    """
    flux = np.atleast_2d(np.asarray(flux, np.float64))
    ivar = np.atleast_2d(np.asarray(ivar, np.float64))
    good = ~np.atleast_2d(np.asarray(mask, bool)) & np.isfinite(flux) & (
        np.isfinite(ivar)) & (ivar > 0)
    with np.errstate(invalid='ignore'):
        scale = np.nanmedian(np.where(good, np.abs(flux), np.nan), axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)[:, None]
    out = np.zeros(flux.shape + (3,), np.float32)
    safe_flux = np.where(good, flux, 0.0)
    safe_ivar = np.where(good, ivar, 0.0)
    out[..., 0] = np.clip(safe_flux / scale, -20, 20)
    out[..., 1] = good
    out[..., 2] = np.clip(np.sqrt(safe_ivar) * scale, 0, 100) / 10
    return out


def posterior_quantiles(posterior, z_edges, quantiles):
    """
    Quantiles of binned posteriors, interpolated within the bins.

    Parameters
    ----------
    posterior : array
        ``(n, n_bins)`` probabilities (rows summing to 1).
    z_edges : array
        ``n_bins + 1`` bin edges.
    quantiles : sequence of float
        In (0, 1).

    Returns
    -------
    values : `~numpy.ndarray`
        ``(n, len(quantiles))``.

    Examples
    --------
    >>> import numpy as np
    >>> posterior_quantiles(np.array([[0.5, 0.5]]), np.array([0., 1., 2.]),
    ...                     [0.25, 0.5])
    array([[0.5, 1. ]])
    """
    posterior = np.atleast_2d(np.asarray(posterior, np.float64))
    cdf = np.concatenate([np.zeros((len(posterior), 1)),
                          np.cumsum(posterior, axis=1)], axis=1)
    cdf /= np.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
    out = np.empty((len(posterior), len(quantiles)))
    for i, row in enumerate(cdf):
        # Strictly increasing copy for interpolation (empty bins are flat).
        out[i] = np.interp(quantiles, row + np.arange(row.size) * 1e-12,
                           z_edges)
    return out


class SpecRedshift(TrainableMixin, SeriesEstimator):
    """
    Redshifts of galaxies from their 1-D spectra, with MC-dropout posteriors.

    Each spectrum (a specutils ``Spectrum``, an `~astropy.nddata.NDData`
    with a ``meta['spectral_axis']`` Quantity, or a list of them; a 2-D
    ``Spectrum`` is a batch) has its spectral axis converted to vacuum
    Angstrom (any spectral unit; an axis without a unit is refused), its
    flux converted to a flux density per wavelength where its unit allows
    (a spectral flux density per frequency too), masked and non-finite
    pixels set aside, and is resampled onto the model's log-uniform grid
    (``wavelength_min``, ``log_step``, ``n_pixels``) with specutils'
    flux-conserving resampler, the uncertainty propagated (without one,
    a constant noise is estimated from the scatter between neighbouring
    pixels); a model pixel touching a masked input pixel is masked. The
    flux is divided by its median absolute value, so its unit does not
    matter.

    The network classifies into ``n_bins`` redshift bins of width
    ``z_step`` from ``z_min``; ``temperature_`` calibrates its softmax. The
    posterior is the mean over the MC-dropout draws of the softmax.

    One row per spectrum: ``index``; ``z``, the mean of the posterior's
    main peak (the bins within ``0.01 (1 + z_mode)`` of its mode) and
    ``z_err``, its standard deviation there (spread of the MC draws' peak
    means and their mean width, in quadrature); ``z_q16`` and ``z_q84``
    (and any ``quantiles`` asked for), quantiles of the whole posterior;
    ``z_mode``, the centre of its most probable bin; ``p_multimodal``, its
    mass outside the main peak (flag ``MULTIMODAL`` above
    `MULTIMODAL_THRESHOLD`); ``entropy`` (nats); ``coverage``, the
    fraction of the model's band the spectrum spans (flag
    ``PARTIAL_COVERAGE`` below 0.9); ``posterior``, the posterior over the
    bins (an array column; bin edges in the table meta ``z_bins``);
    ``ood_score`` (a preset with a familiarity model: above 1, flag
    ``UNFAMILIAR``, e.g. a star or a quasar) and ``flag``. A spectrum that
    cannot be measured (every pixel masked, or no good pixel within the
    model's band) has one NaN row flagged ``UNUSABLE``, or, given alone,
    raises a ValueError that says why.

    Parameters
    ----------
    wavelength_min : float, optional
        Lower edge of the model's grid (Angstrom, vacuum).
    log_step : float, optional
        Pixel width in ln(wavelength).
    n_pixels : int, optional
        Pixels of the grid.
    z_min, z_step : float, optional
        Lower edge and width of the redshift bins.
    n_bins : int, optional
        Number of redshift bins.
    widths : tuple of int, optional
        Filters of the convolutional blocks.
    dense : int, optional
        Units of the dense layer.
    dropout : float, optional
        MC-dropout rate.

    Attributes
    ----------
    model_ : `keras.Model`
        The fitted network.
    temperature_ : float
        Softmax temperature fitted on validation spectra.
    history_ : dict
        Training history.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('spec-redshift')
    >>> est.z_min, est.n_bins
    (0.9, 900)
    """

    name = 'spec-redshift'
    task = 'regression'
    version = '1.0'
    description = ('Galaxy redshifts from 1-D spectra: CNN over redshift bins '
                   'with MC-dropout posteriors (Stivaktakis et al. 2019)')
    default_preset = 'spec-redshift'
    output_names = ('z',)
    min_points = 20
    flag_names = ('MASKED', 'UNUSABLE', 'UNFAMILIAR', 'MULTIMODAL',
                  'PARTIAL_COVERAGE')

    def __init__(self, wavelength_min=12000.0, log_step=1 / 900,
                 n_pixels=414, z_min=0.9, z_step=0.001, n_bins=900,
                 widths=(32, 64, 128), dense=256, dropout=0.2):
        self.wavelength_min = wavelength_min
        self.log_step = log_step
        self.n_pixels = n_pixels
        self.z_min = z_min
        self.z_step = z_step
        self.n_bins = n_bins
        self.widths = widths
        self.dense = dense
        self.dropout = dropout

    # -- grids -----------------------------------------------------------------

    def wavelength_grid(self):
        """
        The model's pixel centres and edges (Angstrom).

        Returns
        -------
        wavelength, edges : `~numpy.ndarray`
        """
        return model_grid(self.wavelength_min, self.log_step, self.n_pixels)

    def z_edges(self):
        """The ``n_bins + 1`` redshift bin edges."""
        return self.z_min + self.z_step * np.arange(self.n_bins + 1)

    def z_centres(self):
        """The redshift bin centres."""
        edges = self.z_edges()
        return 0.5 * (edges[1:] + edges[:-1])

    # -- hooks of the 1-D family ---------------------------------------------

    @classmethod
    def read_file(cls, path):
        """
        A spectrum file read with specutils (any format it identifies:
        FITS tables and 1-D images with a spectral WCS, SDSS, ...).

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            A file specutils cannot read as a spectrum.
        """
        import os

        from ._resample import spectrum_class

        path = str(path)
        if not os.path.isfile(path):
            msg = f'spectrum file {path!r} does not exist'
            raise FileNotFoundError(msg)
        try:
            return spectrum_class().read(path)
        except Exception as exc:  # specutils raises many kinds
            msg = f'{path!r} is not a spectrum file specutils can read: {exc}'
            raise ValueError(msg) from exc

    def _usable(self, series, context):
        _, edges = self.wavelength_grid()
        reasons = [_unusable_reason(s, edges, self.min_points, f'data[{i}]'
                                    if len(series) > 1 else 'data')
                   for i, s in enumerate(series)]
        if len(series) == 1 and reasons[0]:
            msg = f'data cannot be measured: {reasons[0]}'
            raise ValueError(msg)
        return [reason is None for reason in reasons]

    def _prepare(self, rows, context):
        wavelength, edges = self.wavelength_grid()
        n = len(rows)
        flux = np.zeros((n, self.n_pixels))
        ivar = np.zeros((n, self.n_pixels))
        mask = np.ones((n, self.n_pixels), bool)
        coverage = np.zeros(n)
        for k, row in enumerate(rows):
            flux[k], ivar[k], mask[k], coverage[k] = resample_series(
                row, wavelength, edges)
        partial = coverage < MIN_COVERAGE
        context.flags[context.usable] |= np.where(
            partial, SourceFlags.PARTIAL_COVERAGE, 0).astype(
            context.flags.dtype)
        context.aux['coverage'] = coverage
        return [network_input(flux, ivar, mask)]

    def _decode(self, raw, context, rng):
        from ..classification.network import softmax

        centres, edges = self.z_centres(), self.z_edges()
        temperature = getattr(self, 'temperature_', 1.0)
        n, n_draws, _ = raw.shape
        values = np.empty((n, n_draws))
        variance = np.empty((n, n_draws))
        predictive = np.empty((n, n_draws))
        posterior = np.empty((n, self.n_bins), np.float32)
        p_multimodal = np.empty(n)
        for start in range(0, n, _ROWS_PER_CHUNK):
            rows = slice(start, start + _ROWS_PER_CHUNK)
            p = softmax(raw[rows], temperature)
            mean = p.mean(axis=1)
            posterior[rows] = mean
            mode = centres[np.argmax(mean, axis=1)]
            peak = np.abs(centres - mode[:, None]) <= (
                PEAK_HALF_WIDTH * (1 + mode[:, None]) + 1e-9)
            p_multimodal[rows] = np.clip(1 - (mean * peak).sum(-1), 0, 1)
            weights = p * peak[:, None, :]
            mass = np.clip(weights.sum(-1), 1e-30, None)
            first = (weights * centres).sum(-1) / mass
            second = (weights * centres ** 2).sum(-1) / mass
            values[rows] = first
            variance[rows] = np.clip(second - first ** 2, 0, None) \
                + self.z_step ** 2 / 12
            # One draw from each MC draw's whole posterior, uniform in its bin.
            cdf = np.cumsum(p, axis=-1)
            u_draw = rng.random(first.shape)[..., None] * cdf[..., -1:]
            index = np.minimum((cdf < u_draw).sum(-1), self.n_bins - 1)
            predictive[rows] = edges[index] + self.z_step * rng.random(
                first.shape)
        context.aux['posterior'] = posterior
        context.aux['p_multimodal'] = p_multimodal
        # The flags are gathered before the columns: set here.
        context.flags[context.usable] |= np.where(
            p_multimodal > MULTIMODAL_THRESHOLD, SourceFlags.MULTIMODAL,
            0).astype(context.flags.dtype)
        return Draws({'z': values}, {'z': variance}, {'z': predictive})

    def _extra_columns(self, columns, draws, context):
        usable = context.usable
        centres, edges = self.z_centres(), self.z_edges()
        n = len(usable)
        posterior = np.full((n, self.n_bins), np.nan, np.float32)
        posterior[usable] = context.aux['posterior']
        good = usable & np.isfinite(posterior).all(axis=1)
        mode = np.full(n, np.nan)
        p_multimodal = np.full(n, np.nan)
        p_multimodal[usable] = context.aux['p_multimodal']
        entropy = np.full(n, np.nan)
        coverage = np.full(n, np.nan)
        coverage[usable] = context.aux['coverage']
        quantiles = (0.16, 0.84) + tuple(q for q in context.quantiles or ()
                                         if q not in (0.16, 0.84))
        values = np.full((n, len(quantiles)), np.nan)
        if good.any():
            p = posterior[good].astype(np.float64)
            mode[good] = centres[np.argmax(p, axis=1)]
            entropy[good] = -np.sum(np.where(p > 0, p * np.log(
                np.where(p > 0, p, 1.0)), 0.0), axis=-1)
            values[good] = posterior_quantiles(p, edges, quantiles)
        from ..core.table import quantile_name

        out = {'z': columns['z'], 'z_err': columns['z_err']}
        for k, q in enumerate(quantiles):
            out[quantile_name('z', q)] = values[:, k]
        out.update({'z_mode': mode, 'p_multimodal': p_multimodal,
                    'entropy': entropy, 'coverage': coverage,
                    'posterior': posterior})
        return out

    def _extra_meta(self, context):
        wavelength, edges = self.wavelength_grid()
        return {
            'temperature': float(getattr(self, 'temperature_', 1.0)),
            'z_bins': {'z_min': float(self.z_min),
                       'z_step': float(self.z_step),
                       'n_bins': int(self.n_bins)},
            'z': ('mean of the posterior within 0.01 (1 + z_mode) of its '
                  'mode; z_err its standard deviation there; quantiles of '
                  'the whole posterior'),
            'posterior': 'MC-dropout mean of the calibrated softmax over the '
                         'redshift bins (z_bins)',
            'wavelength_grid': {'wavelength_min': float(edges[0]),
                                'wavelength_max': float(edges[-1]),
                                'log_step': float(self.log_step),
                                'n_pixels': int(self.n_pixels),
                                'unit': 'Angstrom (vacuum)'},
            'resampler': 'specutils FluxConservingResampler',
            'entropy_unit': 'nat',
        }

    # -- state ---------------------------------------------------------------

    def _get_state(self):
        return {'temperature': float(getattr(self, 'temperature_', 1.0))}

    def _set_state(self, state):
        self.temperature_ = float(state.get('temperature', 1.0))

    # -- training --------------------------------------------------------------

    def _training_data(self, flux, z, ivar, mask):
        """
        ``(channels, bins)``: ``flux``, ``ivar`` and ``mask`` are
        ``(n, n_pixels)`` arrays on the model's grid (`wavelength_grid`),
        ``z`` the true redshifts (within the bins).
        """
        flux = np.asarray(flux, np.float64)
        if flux.ndim != 2 or flux.shape[1] != self.n_pixels:
            msg = (f'flux must have shape (n, {self.n_pixels}) (the model '
                   f'grid), got {flux.shape}')
            raise ValueError(msg)
        for name, value in (('ivar', ivar), ('mask', mask)):
            if np.shape(value) != flux.shape:
                msg = f'{name} must have shape {flux.shape}, got {np.shape(value)}'
                raise ValueError(msg)
        z = np.asarray(getattr(z, 'value', z), np.float64)
        edges = self.z_edges()
        if z.shape != (len(flux),) or not np.all((z >= edges[0])
                                                 & (z < edges[-1])):
            msg = (f'z must hold one redshift per spectrum in '
                   f'[{edges[0]:g}, {edges[-1]:g})')
            raise ValueError(msg)
        bins = np.clip(np.floor((z - self.z_min) / self.z_step).astype(
            np.int64), 0, self.n_bins - 1)
        return network_input(flux, ivar, mask), bins

    def _training_tasks(self, train, validation, *, new, augment, seed):
        import keras

        def soft(targets):
            # Gaussian label smoothing over neighbouring bins: a bin's
            # neighbours are nearly as right (the resolution is coarser).
            offsets = np.arange(self.n_bins)[None, :] - targets[:, None]
            weights = np.exp(-0.5 * (offsets / LABEL_SIGMA_BINS) ** 2)
            return (weights / weights.sum(1, keepdims=True)).astype(
                np.float32)

        def prepare_validation(inputs, targets, rng):
            return inputs, soft(targets)

        def prepare(inputs, targets, rng):
            (x,) = inputs
            if augment:
                # Mask a random chunk of some spectra (gaps, partial
                # coverage, detector edges).
                x = x.copy()
                n, n_pixels, _ = x.shape
                chosen = np.flatnonzero(rng.random(n) < 0.3)
                lengths = rng.integers(1, n_pixels // 8, len(chosen))
                starts = rng.integers(0, n_pixels, len(chosen))
                for row, start, length in zip(chosen, starts, lengths):
                    x[row, start:start + length] = 0.0
            return [x], soft(targets)

        if new:
            self.temperature_ = 1.0
        return [TrainingTask(
            'model', self.build, train=([train[0]], train[1]),
            validation=([validation[0]], validation[1]),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            prepare=prepare, prepare_validation=prepare_validation,
            epochs=30, batch_size=128, patience=5,
            learning_rate=1e-3)]

    def build(self):
        """A new (untrained) redshift network."""
        from .network import build_redshift_network

        return build_redshift_network(self.n_pixels, self.n_bins,
                                      widths=tuple(self.widths),
                                      dense=self.dense, dropout=self.dropout)


def _unusable_reason(series, edges, min_points, name):
    """
    Why a spectrum cannot be measured, or None; raises for an input that
    is wrong rather than bad (no spectral axis, no unit).
    """
    from ._resample import spectral_axis_angstrom

    wavelength = spectral_axis_angstrom(series, name)
    good = ~series.mask & np.isfinite(wavelength)
    if not good.any():
        return 'every pixel is masked or not finite'
    inside = good & (wavelength >= edges[0]) & (wavelength <= edges[-1])
    n_inside = int(np.count_nonzero(inside))
    if n_inside < min_points:
        low, high = np.nanmin(wavelength[good]), np.nanmax(wavelength[good])
        return (f'{n_inside} good pixels within the model\'s band '
                f'{edges[0]:.0f}-{edges[-1]:.0f} Angstrom (the spectrum '
                f'spans {low:.0f}-{high:.0f} Angstrom), fewer than '
                f'{min_points}')
    return None

